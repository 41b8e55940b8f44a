"""LP diving for the unconstrained bank clearing problem.

Round after round: solve the aggregated LP (one column per debtor-creditor-ratio group, bounded by
the total of the group's payments still in play); in every group the LP leaves fractional, keep the
largest payments that fit in the LP's flow and drop the others; solve again so that the LP re-routes
liquidity around what was dropped. Nothing is ever fixed to "settle" before the end (a committed
outflow could strand a member whose inflows get rounded down later), so every LP stays feasible.
It stops when no group is fractional: each group then runs at zero or at the full total of its
remaining payments, which is an integral selection (checked exactly and repaired by the caller).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from ._model import BoolArray, IntArray, Problem

__all__ = ["DiveResult", "dive"]

_ROUNDS_MAX = 200
_REL_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class DiveResult:
    selected: BoolArray | None
    bound: float | None  # first LP optimum: the relaxation bound
    rounds: int
    seconds: float
    status: str


def _groups(p: Problem) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
    """Simple items grouped by (debtor, creditor, value/amount reduced), largest amount first
    inside a group (input order on ties). Returns (sorted simple items, group id per sorted item,
    group starts, debtor per group, creditor per group)."""
    simple = np.flatnonzero(p.simple & (p.amt > 0))
    a_s = p.amt[simple]
    v_s = p.value[simple]
    pair = p.deb[simple] * np.int64(p.n_accounts) + p.cred[simple]
    if bool((a_s == v_s).all()):
        # the usual case (value = amount): one ratio, and a stable two-key sort is enough
        idx = np.lexsort((-a_s, pair))
        key_new = pair[idx]
        items = simple[idx]
        k = len(items)
        new = np.ones(k, dtype=bool)
        if k:
            new[1:] = key_new[1:] != key_new[:-1]
    else:
        g = np.gcd(a_s, v_s)
        g[g == 0] = 1
        num, den = v_s // g, a_s // g
        idx = np.lexsort((-a_s, den, num, pair))
        items = simple[idx]
        pr, n_, dn = pair[idx], num[idx], den[idx]
        k = len(items)
        new = np.ones(k, dtype=bool)
        if k:
            new[1:] = (pr[1:] != pr[:-1]) | (n_[1:] != n_[:-1]) | (dn[1:] != dn[:-1])
    gid = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    return items, gid, starts, p.deb[items[starts]], p.cred[items[starts]]


def dive(p: Problem, time_limit_s: float) -> DiveResult:
    t0 = time.perf_counter()
    end = t0 + time_limit_s
    items, gid, starts, g_deb, g_cred = _groups(p)
    n_g = len(starts)
    g_end = np.append(starts[1:], len(items))
    amt_sorted = p.amt[items]
    val_sorted = p.value[items]
    ratio = np.zeros(n_g)
    if n_g:
        ratio = val_sorted[starts].astype(np.float64) / amt_sorted[starts].astype(np.float64)
    other = np.flatnonzero(~(p.simple & (p.amt > 0)))
    n_o = len(other)
    o_mask = np.isin(p.eff_item, other)
    o_pos = np.full(p.n, -1, dtype=np.int64)
    o_pos[other] = np.arange(n_o, dtype=np.int64) + n_g
    # scale: amounts in units of a typical payment keep the LP well conditioned
    scale = float(np.median(amt_sorted)) if len(amt_sorted) else 1.0
    if n_o:
        scale = max(scale, float(np.median(np.abs(p.eff_delta[o_mask]))))
    scale = max(scale, 1.0)
    rows = np.concatenate([g_deb, g_cred, p.eff_acc[o_mask]])
    cols = np.concatenate([np.arange(n_g), np.arange(n_g), o_pos[p.eff_item[o_mask]]])
    vals = np.concatenate([np.ones(n_g), -np.ones(n_g), -p.eff_delta[o_mask].astype(np.float64) / scale])
    a = sp.csr_matrix((vals, (rows, cols)), shape=(p.n_accounts, n_g + n_o))
    b = p.available.astype(np.float64) / scale
    c = -np.concatenate([ratio, p.value[other].astype(np.float64) / scale])
    # per group: fixed (settled) amount, undecided amount; status per sorted simple item
    fixed = np.zeros(n_g, dtype=np.int64)
    undecided = np.zeros(n_g, dtype=np.int64)
    np.add.at(undecided, gid, amt_sorted)
    status = np.full(len(items), -1, dtype=np.int8)  # -1 undecided, 0 dropped, 1 settled
    cut = np.zeros(n_g, dtype=bool)
    o_lo = np.zeros(n_o)
    o_hi = np.ones(n_o)
    bound: float | None = None
    rounds = 0
    st = "optimal"
    while True:
        rounds += 1
        left = end - time.perf_counter()
        if left <= 0.05 or rounds > _ROUNDS_MAX:
            st = "time limit" if left <= 0.05 else "round limit"
            break
        lo = np.concatenate([fixed.astype(np.float64) / scale, o_lo])
        hi = np.concatenate([(fixed + undecided).astype(np.float64) / scale, o_hi])
        res = linprog(c, A_ub=a, b_ub=b, bounds=np.column_stack([lo, hi]),
                      method="highs", options={"time_limit": float(left), "presolve": True})
        if res.status != 0 or res.x is None:
            st = f"highs status {res.status}"
            break
        if bound is None:
            bound = -float(res.fun) * scale
        y = res.x
        yg = y[:n_g] * scale
        resid = yg - fixed  # flow the LP gives to undecided payments, in minor units
        und = undecided.astype(np.float64)
        tol = np.maximum(_REL_TOL * (fixed + und), 1e-6)
        frac_g = np.flatnonzero((undecided > 0) & (resid > tol) & (resid < und - tol))
        xo = y[n_g:]
        frac_o = np.flatnonzero((o_hi > o_lo) & (xo > 1e-9) & (xo < 1 - 1e-9))
        if len(frac_g) == 0 and len(frac_o) == 0:
            break
        for gi in frac_g.tolist():
            # keep the largest undecided payments that fit in the LP's flow, drop the others
            r = int(np.floor(resid[gi] + tol[gi]))
            s, e = int(starts[gi]), int(g_end[gi])
            # the first time a group is cut, a payment the LP funds at least half of stays in play
            # (rounded up): big payments are most of the value and the next LP may fund them fully
            up = not cut[gi]
            cut[gi] = True
            for j in range(s, e):
                if status[j] != -1:
                    continue
                aj = int(amt_sorted[j])
                if aj <= r:
                    r -= aj
                elif up and 2 * r >= aj:
                    r = 0
                    up = False
                else:
                    status[j] = 0
                    undecided[gi] -= aj
        o_hi[frac_o] = 0.0  # round the fractional linked items down
    sel = np.zeros(p.n, dtype=bool)
    if bound is None:
        return DiveResult(None, None, rounds, time.perf_counter() - t0, st)
    # settle what is fixed, plus undecided payments of groups the last LP ran at full
    sel[items[status == 1]] = True
    full_g = np.zeros(n_g, dtype=bool)
    if st == "optimal":
        full_g = (undecided > 0) & (yg - fixed >= undecided - np.maximum(_REL_TOL * (fixed + undecided), 1e-6))
    take = (status == -1) & full_g[gid]
    sel[items[take]] = True
    if st == "optimal":
        sel[other[xo > 1 - 1e-9]] = True
    return DiveResult(sel, bound, rounds, time.perf_counter() - t0, st)


@dataclass(frozen=True, slots=True)
class MixedResult:
    selected: BoolArray | None
    status: str
    seconds: float
    binaries: int
    rounded: BoolArray | None  # small payments of the groups the model left fractional


def mixed_milp(p: Problem, binaries_max: int, time_limit_s: float,
               extra_binaries: BoolArray | None = None) -> MixedResult:
    """Branch and bound where only the largest payments are binary; the rest stay aggregated and
    continuous per (debtor, creditor) group, then are rounded down by keeping the largest that fit
    in each group's flow. Heavy-tailed values put most of the value, and all of the hard
    combinatorics, in the few big payments; small ones round with little loss."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    t0 = time.perf_counter()
    simple_ok = p.simple & (p.amt > 0)
    n_big = min(binaries_max, p.n)
    rank = np.lexsort((np.arange(p.n), -p.value))  # largest value first, index breaks ties
    big = np.zeros(p.n, dtype=bool)
    big[rank[:n_big]] = True
    big |= ~simple_ok
    if extra_binaries is not None:
        big |= extra_binaries
    small = np.flatnonzero(~big)
    # groups of small items, largest first within a group
    a_s = p.amt[small]
    idx = np.lexsort((small, -a_s, p.cred[small], p.deb[small]))
    items = small[idx]
    d, c = p.deb[items], p.cred[items]
    k = len(items)
    new = np.ones(k, dtype=bool)
    if k:
        new[1:] = (d[1:] != d[:-1]) | (c[1:] != c[:-1])
    gid = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    n_g = len(starts)
    total = np.zeros(n_g, dtype=np.float64)
    val = np.zeros(n_g, dtype=np.float64)
    np.add.at(total, gid, p.amt[items].astype(np.float64))
    np.add.at(val, gid, p.value[items].astype(np.float64))
    bigi = np.flatnonzero(big)
    n_b = len(bigi)
    scale = max(float(np.median(p.amt[simple_ok])) if simple_ok.any() else 1.0, 1.0)
    e_mask = big[p.eff_item]
    pos = np.full(p.n, -1, dtype=np.int64)
    pos[bigi] = np.arange(n_b, dtype=np.int64) + n_g
    gcol = np.arange(n_g)
    # group columns in [0, 1] (fraction of the group's total): coefficients are the totals
    rows = np.concatenate([d[starts], c[starts], p.eff_acc[e_mask]])
    cols = np.concatenate([gcol, gcol, pos[p.eff_item[e_mask]]])
    vals = np.concatenate([total / scale, -total / scale, -p.eff_delta[e_mask].astype(np.float64) / scale])
    a = sp.csr_matrix((vals, (rows, cols)), shape=(p.n_accounts, n_g + n_b))
    b = p.available.astype(np.float64) / scale
    cost = -np.concatenate([val, p.value[bigi].astype(np.float64)]) / scale
    integrality = np.concatenate([np.zeros(n_g), np.ones(n_b)])
    res = milp(cost, integrality=integrality, bounds=Bounds(0.0, 1.0),
               constraints=LinearConstraint(a, -np.inf, b),
               options={"time_limit": float(max(time_limit_s, 0.1)), "mip_rel_gap": 1e-4, "presolve": True})
    if res.x is None:
        return MixedResult(None, f"highs status {res.status}", time.perf_counter() - t0, n_b, None)
    x = np.asarray(res.x)
    sel = np.zeros(p.n, dtype=bool)
    sel[bigi] = x[n_g:] > 0.5
    flow = x[:n_g] * total  # minor units the MILP sends through each small group
    amt_l = p.amt[items].tolist()
    g_end = np.append(starts[1:], k).tolist()
    keep: list[int] = []
    for gi, (s, e) in enumerate(zip(starts.tolist(), g_end, strict=True)):
        r = flow[gi] * (1 + 1e-9) + 1e-6
        if r < 1:
            continue
        for j in range(s, e):
            if amt_l[j] <= r:
                keep.append(j)
                r -= amt_l[j]
    sel[items[np.array(keep, dtype=np.int64)]] = True
    frac_g = (x[:n_g] > 1e-9) & (x[:n_g] < 1 - 1e-9)
    rounded = np.zeros(p.n, dtype=bool)
    rounded[items[frac_g[gid]]] = True
    return MixedResult(sel, f"highs status {res.status}", time.perf_counter() - t0, n_b, rounded)
