"""LP relaxation and MILP (scipy's HiGHS) for the bank clearing problem.

Rows are accounts: -(sum of deltas of chosen items) <= available. Without ordering constraints,
simple payments with the same debtor, creditor and value/amount ratio are interchangeable in the LP,
so they are merged into one column: a 1M-payment queue becomes an LP with one column per
(debtor, creditor) pair, which HiGHS solves in well under a second. The item-level fractions are
recovered exactly (every item of a column gets the column's fraction).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from ._model import BoolArray, FloatArray, IntArray, Problem

T = TypeVar("T")

__all__ = ["LANE_MODES", "Lanes", "LpResult", "MilpResult", "build_lanes", "lane_mode", "lp_relaxation",
           "run_forked", "solve_milp", "solve_milp_guarded"]


@dataclass(frozen=True, slots=True)
class Lanes:
    """Ordering constraints as debtor queues ("lanes").

    entries (item indices) are sorted by lane, then level. Within a lane an item may settle only
    if every item of a lower level in that lane settles. With fifo the levels are unique (a prefix
    rule); with respect_priority alone the levels are the priorities.
    """

    item: IntArray
    lane: IntArray
    level: IntArray  # dense rank inside the lane, 0 = first
    lane_ptr: IntArray  # entries of lane k: lane_ptr[k]:lane_ptr[k+1]
    acc: IntArray  # the debtor account of the entry
    size: IntArray  # the debit on that account (> 0)


LANE_MODES = ("none", "priority", "fifo", "fifo+priority", "queue")


def lane_mode(*, respect_priority: bool, fifo: bool) -> str:
    if fifo:
        return "fifo+priority" if respect_priority else "fifo"
    return "priority" if respect_priority else "none"


def build_lanes(p: Problem, mode: str) -> Lanes:
    """Debtor queues for an ordering rule.

    none: one lane per debtor account, one level (no constraint); priority: levels are priorities;
    fifo: lanes are (debtor, priority), levels the queue order; fifo+priority and queue (T2's
    order): one lane per debtor ordered by (priority, order). Inside a level entries are sorted by
    the size of the debit, smallest first, then by item index.
    """
    if mode not in LANE_MODES:
        raise ValueError(f"unknown lane mode {mode!r}")
    neg = p.eff_delta < 0
    acc = p.eff_acc[neg]
    item = p.eff_item[neg]
    size = -p.eff_delta[neg]
    pri = p.priority[item]
    ordk = p.order[item]
    zeros = np.zeros(len(item), dtype=np.int64)
    if mode == "fifo":
        _, pri_rank = np.unique(pri, return_inverse=True)
        lane_key = acc * (int(pri_rank.max(initial=0)) + 1) + pri_rank.astype(np.int64)
    else:
        lane_key = acc
    if mode in ("fifo", "fifo+priority", "queue"):
        lvl_a, lvl_b = (pri if mode != "fifo" else zeros), ordk
        idx = np.lexsort((size, item, lvl_b, lvl_a, lane_key))
        unique_levels = True
    elif mode == "priority":
        lvl_a, lvl_b = pri, zeros
        idx = np.lexsort((item, size, lvl_a, lane_key))
        unique_levels = False
    else:
        lvl_a, lvl_b = zeros, zeros
        idx = np.lexsort((item, size, lane_key))
        unique_levels = False
    item = item[idx]
    lane_key = lane_key[idx]
    la, lb = lvl_a[idx], lvl_b[idx]
    n_e = len(item)
    new_lane = np.ones(n_e, dtype=bool)
    if n_e:
        new_lane[1:] = lane_key[1:] != lane_key[:-1]
    lane = np.cumsum(new_lane) - 1
    if unique_levels:
        new_level = np.ones(n_e, dtype=bool)
    else:
        new_level = new_lane.copy()
        if n_e:
            new_level[1:] |= (la[1:] != la[:-1]) | (lb[1:] != lb[:-1])
    gl = np.cumsum(new_level)
    lane_start = np.flatnonzero(new_lane)
    level = gl - gl[lane_start][lane] if n_e else gl
    lane_ptr = np.append(lane_start, n_e).astype(np.int64)
    return Lanes(item.astype(np.int64), lane.astype(np.int64), level.astype(np.int64), lane_ptr,
                 acc[idx].astype(np.int64), size[idx].astype(np.int64))


@dataclass(frozen=True, slots=True)
class LpResult:
    bound: float | None  # upper bound on the settled value, None if not computed in time
    x: FloatArray | None  # item-level fractions (guidance only)
    status: str
    seconds: float
    columns: int
    rows: int


def _scale(coef_abs: FloatArray) -> float:
    # Geometric middle of the coefficient range keeps HiGHS away from its tiny-value cut-off.
    nz = coef_abs[coef_abs > 0]
    if len(nz) == 0:
        return 1.0
    return float(np.sqrt(float(nz.min()) * float(nz.max())))


def _chain_rows(lanes: Lanes, n_cols: int) -> tuple[list[IntArray], list[IntArray], list[FloatArray], int, int]:
    """Rows x_next - x_prev <= 0 for lane levels; an auxiliary column per boundary of wide levels."""
    rows_r: list[IntArray] = []
    rows_c: list[IntArray] = []
    rows_v: list[FloatArray] = []
    n_e = len(lanes.item)
    if n_e < 2:
        return rows_r, rows_c, rows_v, 0, 0
    grp_start = np.ones(n_e, dtype=bool)
    grp_start[1:] = (lanes.lane[1:] != lanes.lane[:-1]) | (lanes.level[1:] != lanes.level[:-1])
    gid = np.cumsum(grp_start) - 1
    starts = np.flatnonzero(grp_start)
    sizes = np.diff(np.append(starts, n_e))
    glane = lanes.lane[starts]
    # boundaries between consecutive groups of the same lane
    b = np.flatnonzero(glane[1:] == glane[:-1])
    prev_g, next_g = b, b + 1
    single = (sizes[prev_g] == 1) & (sizes[next_g] == 1)
    r = 0
    ps, ns = prev_g[single], next_g[single]
    k = len(ps)
    if k:
        rr = np.arange(k, dtype=np.int64)
        rows_r += [rr, rr]
        rows_c += [lanes.item[starts[ns]], lanes.item[starts[ps]]]
        rows_v += [np.ones(k), -np.ones(k)]
        r = k
    aux = 0
    for pg, ng in zip(prev_g[~single].tolist(), next_g[~single].tolist(), strict=True):
        w = n_cols + aux
        aux += 1
        prev_items = lanes.item[starts[pg]: starts[pg] + sizes[pg]]
        next_items = lanes.item[starts[ng]: starts[ng] + sizes[ng]]
        for it in next_items.tolist():  # x_j - w <= 0
            rows_r += [np.array([r, r])]
            rows_c += [np.array([it, w])]
            rows_v += [np.array([1.0, -1.0])]
            r += 1
        for it in prev_items.tolist():  # w - x_i <= 0
            rows_r += [np.array([r, r])]
            rows_c += [np.array([w, it])]
            rows_v += [np.array([1.0, -1.0])]
            r += 1
    del gid
    return rows_r, rows_c, rows_v, r, aux


def _item_matrix(p: Problem, lanes: Lanes | None, scale: float) -> tuple[sp.csr_matrix, FloatArray, int]:
    m = p.n_accounts
    rows_r = [p.eff_acc]
    rows_c = [p.eff_item]
    rows_v = [-p.eff_delta.astype(np.float64) / scale]
    rhs = [p.available.astype(np.float64) / scale]
    aux = 0
    if lanes is not None:
        cr, cc, cv, n_rows, aux = _chain_rows(lanes, p.n)
        rows_r += [r + m for r in cr]
        rows_c += cc
        rows_v += cv
        rhs.append(np.zeros(n_rows))
    a = sp.csr_matrix(
        (np.concatenate(rows_v), (np.concatenate(rows_r), np.concatenate(rows_c))),
        shape=(m + sum(len(x) for x in rhs[1:]), p.n + aux),
    )
    return a, np.concatenate(rhs), aux


def lp_relaxation(p: Problem, lanes: Lanes | None, time_limit_s: float) -> LpResult:
    t0 = time.perf_counter()
    if p.n == 0:
        return LpResult(0.0, np.zeros(0), "empty", 0.0, 0, 0)
    if time_limit_s <= 0.05:
        return LpResult(None, None, "no time", 0.0, 0, 0)
    if lanes is None:
        return _lp_aggregated(p, time_limit_s, t0)
    scale = _scale(np.abs(p.eff_delta).astype(np.float64))
    a, b, aux = _item_matrix(p, lanes, scale)
    c = np.concatenate([-p.value.astype(np.float64) / scale, np.zeros(aux)])
    res = linprog(c, A_ub=a, b_ub=b, bounds=(0.0, 1.0), method="highs",
                  options={"time_limit": float(time_limit_s), "presolve": True})
    sec = time.perf_counter() - t0
    if res.status != 0 or res.x is None:
        return LpResult(None, None, f"highs status {res.status}", sec, a.shape[1], a.shape[0])
    return LpResult(-float(res.fun) * scale, np.clip(res.x[: p.n], 0.0, 1.0), "optimal", sec, a.shape[1],
                    a.shape[0])


def _lp_aggregated(p: Problem, time_limit_s: float, t0: float) -> LpResult:
    n = p.n
    simple = np.flatnonzero(p.simple & (p.amt > 0))
    other = np.flatnonzero(~(p.simple & (p.amt > 0)))
    # group simple items by (debtor, creditor, value/amount as a reduced fraction)
    a_s = p.amt[simple]
    v_s = p.value[simple]
    g = np.gcd(a_s, v_s)
    g[g == 0] = 1
    num = v_s // g
    den = a_s // g
    idx = np.lexsort((den, num, p.cred[simple], p.deb[simple]))
    sd, sc, sn, sdn = p.deb[simple][idx], p.cred[simple][idx], num[idx], den[idx]
    k = len(idx)
    new = np.ones(k, dtype=bool)
    if k:
        new[1:] = (sd[1:] != sd[:-1]) | (sc[1:] != sc[:-1]) | (sn[1:] != sn[:-1]) | (sdn[1:] != sdn[:-1])
    grp = np.cumsum(new) - 1
    n_g = int(grp[-1]) + 1 if k else 0
    starts = np.flatnonzero(new)
    total = np.zeros(n_g, dtype=np.float64)
    np.add.at(total, grp, a_s[idx].astype(np.float64))
    ratio = sn[starts].astype(np.float64) / sdn[starts].astype(np.float64)
    g_deb, g_cred = sd[starts], sc[starts]
    # columns: groups (fraction of the group's total), then general items (fraction of the item)
    o_mask = np.isin(p.eff_item, other)
    coef_abs = np.concatenate([total, np.abs(p.eff_delta[o_mask]).astype(np.float64)])
    scale = _scale(coef_abs)
    cols_g = np.arange(n_g, dtype=np.int64)
    o_pos = np.full(n, -1, dtype=np.int64)
    o_pos[other] = np.arange(len(other), dtype=np.int64) + n_g
    rows = np.concatenate([g_deb, g_cred, p.eff_acc[o_mask]])
    cols = np.concatenate([cols_g, cols_g, o_pos[p.eff_item[o_mask]]])
    vals = np.concatenate([total / scale, -total / scale, -p.eff_delta[o_mask].astype(np.float64) / scale])
    n_cols = n_g + len(other)
    a = sp.csr_matrix((vals, (rows, cols)), shape=(p.n_accounts, n_cols))
    c = -np.concatenate([ratio * total / scale, p.value[other].astype(np.float64) / scale])
    b = p.available.astype(np.float64) / scale
    res = linprog(c, A_ub=a, b_ub=b, bounds=(0.0, 1.0), method="highs",
                  options={"time_limit": float(time_limit_s), "presolve": True})
    sec = time.perf_counter() - t0
    if res.status != 0 or res.x is None:
        return LpResult(None, None, f"highs status {res.status}", sec, n_cols, p.n_accounts)
    xcol = np.clip(res.x, 0.0, 1.0)
    x = np.zeros(n, dtype=np.float64)
    item_grp = np.empty(k, dtype=np.int64)
    item_grp[idx] = grp
    x[simple] = xcol[item_grp]
    x[other] = xcol[n_g:]
    return LpResult(-float(res.fun) * scale, x, "optimal", sec, n_cols, p.n_accounts)


@dataclass(frozen=True, slots=True)
class MilpResult:
    selected: BoolArray | None
    status: str
    dual_bound: float | None
    seconds: float


def solve_milp(p: Problem, lanes: Lanes | None, time_limit_s: float, mip_rel_gap: float = 1e-6) -> MilpResult:
    """HiGHS branch and bound, one binary per item; returns its incumbent (rounded, unchecked)."""
    t0 = time.perf_counter()
    if p.n == 0:
        return MilpResult(np.zeros(0, dtype=bool), "empty", 0.0, 0.0)
    scale = _scale(np.abs(p.eff_delta).astype(np.float64))
    a, b, aux = _item_matrix(p, lanes, scale)
    c = np.concatenate([-p.value.astype(np.float64) / scale, np.zeros(aux)])
    integrality = np.concatenate([np.ones(p.n), np.zeros(aux)])
    res = milp(c, integrality=integrality, bounds=Bounds(0.0, 1.0),
               constraints=LinearConstraint(a, -np.inf, b),
               options={"time_limit": float(max(time_limit_s, 0.1)), "mip_rel_gap": mip_rel_gap,
                        "presolve": True})
    sec = time.perf_counter() - t0
    dual = getattr(res, "mip_dual_bound", None)
    dual_v = -float(dual) * scale if dual is not None and np.isfinite(dual) else None
    if res.x is None:
        return MilpResult(None, f"highs status {res.status}: {res.message}", dual_v, sec)
    sel = np.asarray(res.x[: p.n]) > 0.5
    return MilpResult(sel, f"highs status {res.status}", dual_v, sec)


def solve_milp_guarded(p: Problem, lanes: Lanes | None, time_limit_s: float, mip_rel_gap: float = 1e-6,
                       kill_after_s: float | None = None) -> MilpResult:
    """solve_milp in a forked child, killed shortly after time_limit_s: HiGHS does not check its
    time limit inside every phase (presolve, root LP), and a time promise must hold regardless."""
    t0 = time.perf_counter()
    kill = kill_after_s if kill_after_s is not None else time_limit_s + 0.75
    got = run_forked(lambda: solve_milp(p, lanes, time_limit_s, mip_rel_gap), kill)
    if got is None:
        return MilpResult(None, "killed at the time limit", None, time.perf_counter() - t0)
    return got


def run_forked(fn: Callable[[], T], timeout_s: float) -> T | None:
    """Run fn in a forked child and return its result, or None if it fails or overruns timeout_s
    (the child is killed). HiGHS does not check its time limit in every phase."""
    import multiprocessing as mp

    try:
        ctx = mp.get_context("fork")
    except ValueError:  # no fork on this platform: run inline and trust HiGHS's own limit
        return fn()
    recv, send = ctx.Pipe(duplex=False)

    def child() -> None:
        try:
            # HiGHS writes some diagnostics straight to fd 1; stdout belongs to the command's data
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            send.send(fn())
        except BaseException:  # report nothing, never hang the parent
            send.send(None)
        finally:
            send.close()

    proc = ctx.Process(target=child, daemon=True)
    try:
        proc.start()
    except (AssertionError, OSError):  # e.g. called from a daemon process, or out of processes
        send.close()
        recv.close()
        return fn()
    send.close()
    got: T | None = None
    if recv.poll(timeout_s):
        try:
            got = recv.recv()
        except EOFError:
            got = None
    if proc.is_alive():
        proc.kill()
    proc.join(1.0)
    recv.close()
    return got
