"""The algorithms. Each takes a Problem and returns a boolean selection plus stats."""

from __future__ import annotations

import numpy as np

from ._dive import dive, mixed_milp
from ._lp import Lanes, LpResult, build_lanes, lane_mode, lp_relaxation, run_forked, solve_milp_guarded
from ._model import BoolArray, Problem
from ._search import Deadline, State

__all__ = ["run"]

Stats = dict[str, object]

# An LP fraction at or above this counts as "settle" when rounding; the exact integer check and
# repair afterwards absorb whatever the float tolerance let through.
_ROUND_UP = 1.0 - 1e-7
_IMPROVE_ROUNDS_MAX = 6
MILP_ITEMS_MAX = 15_000  # up to this, HiGHS gets the whole problem
# HiGHS stops at this relative gap inside the optimiser: far inside the 1% that matters, and a
# search that ends on its gap rather than the clock gives the same answer on every run
OPT_GAP = 1e-4
MIXED_ITEMS_MAX = 300_000  # above this, the dive alone (HiGHS cannot finish the mixed model in time)
MIXED_GROW = True
MIXED_SHARE = 0.85  # the mixed model is the best start from 15k to 300k payments
MIXED_BINARIES = 4_000  # above MILP_ITEMS_MAX, the largest payments get binaries, the rest stay continuous


def _finish(st: State, deadline: Deadline, stats: Stats, *, swaps: bool,
            rounds_max: int = _IMPROVE_ROUNDS_MAX, inserts_max: int | None = None) -> None:
    """Local search: greedy fill, then rounds of 1-for-1 swaps, fill, and (unconstrained only)
    insert-and-repair moves, until a round finds nothing or time runs out."""
    added = st.add_pass(deadline)
    rounds = 0
    swapped = 0
    inserted = 0
    while swaps and rounds < rounds_max and not deadline.passed():
        rounds += 1
        n_sw, _ = st.swap_pass(deadline)
        swapped += n_sw
        more = st.add_pass(deadline)
        added += more
        gain = 0
        if st.lanes_mode == "none" and not deadline.passed():
            unsel = np.flatnonzero(~st.selected())
            # most valuable first; ties by index keep it deterministic
            cand = unsel[np.argsort(-st.p.value[unsel], kind="stable")][:inserts_max].tolist()
            gain = st.insert_pass(deadline, cand)
            inserted += gain
            more += st.add_pass(deadline)
        if n_sw == 0 and more == 0 and gain == 0:
            break
    stats["greedy_added"] = int(stats.get("greedy_added", 0)) + added  # type: ignore[call-overload]
    stats["swaps"] = int(stats.get("swaps", 0)) + swapped  # type: ignore[call-overload]
    stats["insert_gain"] = int(stats.get("insert_gain", 0)) + inserted  # type: ignore[call-overload]


def _polish(p: Problem, lanes: Lanes, mode: str, sel: BoolArray, deadline: Deadline, stats: Stats) -> BoolArray:
    st = State(p, lanes, sel, mode)
    st.repair("fit", None)  # always finishes: the result must be feasible whatever the clock says
    _finish(st, deadline, stats, swaps=True)
    return st.selected()


def optimise(p: Problem, lp: LpResult | None, mode: str, deadline: Deadline, stats: Stats,
             *, improve: bool = True) -> tuple[BoolArray, float | None]:
    """Maximise settled value. Candidates, the best of which wins (first on ties, so deterministic):
    - unconstrained, up to MILP_ITEMS_MAX items: LP dive + local search, then HiGHS branch and bound
      on the whole queue, polished by the same local search;
    - unconstrained, larger: HiGHS on the largest MIXED_BINARIES payments with the rest aggregated
      per pair, rounded and polished; then, with the time left, the LP dive + local search;
    - with ordering rules: LP rounding (item LP with queue constraints) and "everything, then drop"
      starts, each repaired in queue order and filled greedily."""
    lanes = build_lanes(p, mode)
    candidates: list[tuple[int, str, BoolArray]] = []
    bound = lp.bound if lp is not None else None

    def add(name: str, sel: BoolArray) -> None:
        candidates.append((p.settled_value(sel), name, sel))

    def run_dive(share: float) -> None:
        nonlocal bound
        dv = dive(p, max(deadline.left() * share, 0.1))
        if bound is None:
            bound = dv.bound
        stats["dive_rounds"] = dv.rounds
        stats["dive_seconds"] = round(dv.seconds, 3)
        stats["dive_status"] = dv.status
        if dv.selected is not None:
            add("lp-dive", _polish(p, lanes, mode, dv.selected, deadline.sub(0.6), stats))

    def run_mixed(share: float, binaries: int) -> None:
        avail = max(deadline.left() * share, 0.3)
        # HiGHS overruns its own limit while it wraps up; the child is killed at `avail` regardless
        mx = run_forked(lambda: mixed_milp(p, binaries, avail * 0.75), avail)
        stats["mixed_status"] = "killed at the time limit" if mx is None else mx.status
        if mx is None or mx.selected is None:
            return
        stats["mixed_seconds"] = round(mx.seconds, 3)
        add("mixed-milp", _polish(p, lanes, mode, mx.selected, deadline.sub(0.5), stats))
        if MIXED_GROW and mx.status.endswith(" 0") and deadline.left() > 4.0 and binaries < p.n:
            # solved to its gap with time to spare: twice the binaries, with what is left
            avail2 = max(deadline.left() * 0.8, 0.3)
            mx2 = run_forked(lambda: mixed_milp(p, 2 * binaries, avail2 * 0.75), avail2)
            stats["mixed2_status"] = "killed at the time limit" if mx2 is None else mx2.status
            if mx2 is not None and mx2.selected is not None:
                add("mixed-milp-2x", _polish(p, lanes, mode, mx2.selected, deadline.sub(0.6), stats))

    if mode == "none" and improve and p.n <= MILP_ITEMS_MAX:
        run_dive(0.1)
        if deadline.left() > 1.0:
            # few payments per counterparty pair make the LP a weak guide; branch and bound on the
            # whole queue finds far better combinations, and its incumbent improves steeply with
            # time on 10k-payment queues, so it gets everything but a polish reserve
            avail = max(deadline.left() - 0.8, 0.3)
            res = solve_milp_guarded(p, None, max(avail - 0.7, 0.2), OPT_GAP, kill_after_s=avail)
            stats["milp_status"] = res.status
            stats["milp_seconds"] = round(res.seconds, 3)
            if res.selected is not None:
                add("milp", _polish(p, lanes, mode, res.selected, deadline, stats))
    elif mode == "none" and improve and p.n > MIXED_ITEMS_MAX:
        # huge queues: many payments per pair, the LP is a good guide and the dive is near it
        run_dive(0.7)
    elif mode == "none" and improve:
        run_mixed(MIXED_SHARE, MIXED_BINARIES)
        if deadline.left() > 1.0 or not candidates:
            run_dive(0.5)
    else:
        if lp is not None and lp.x is not None:
            st = State(p, lanes, lp.x >= _ROUND_UP, mode)
            st.close()
            st.repair("fit", None)
            stats["lp_rounded_repairs"] = st.moves
            if improve:
                _finish(st, deadline.sub(0.5), stats, swaps=True)
            add("lp-start", st.selected())
        if improve and (not candidates or deadline.left() > 0.5):
            st = State(p, lanes, np.ones(p.n, dtype=bool), mode)
            st.repair("fit", None)
            _finish(st, deadline.sub(0.5), stats, swaps=True)
            add("all-start", st.selected())
        if improve and p.n <= MILP_ITEMS_MAX and deadline.left() > 1.0:
            # branch and bound with the queue constraints; its incumbent is closed and repaired
            # in queue order like any other start, so it can only add a better candidate
            avail = max(deadline.left() - 0.8, 0.3)
            res = solve_milp_guarded(p, build_lanes(p, mode), max(avail - 0.7, 0.2), OPT_GAP,
                                     kill_after_s=avail)
            stats["milp_status"] = res.status
            if res.selected is not None:
                st = State(p, lanes, res.selected, mode)
                st.close()
                st.repair("fit", None)
                _finish(st, deadline, stats, swaps=True)
                add("milp", st.selected())
    if not candidates:
        st = State(p, lanes, np.ones(p.n, dtype=bool), mode)
        st.repair("fit", None)
        add("all-start", st.selected())
    best = max(candidates, key=lambda c: c[0])
    stats["start"] = best[1]
    stats["starts"] = {name: v for v, name, _ in candidates}
    return best[2], bound


HEURISTIC_INSERTS_MAX = 20_000
_NO_CLOCK_S = 1e9  # "heuristic" runs on work limits only; the clock never cuts it short


def heuristic(p: Problem, mode: str, stats: Stats) -> tuple[BoolArray, float | None]:
    """The optimiser without HiGHS branch and bound and without any time-based cut-off: the LP
    dive (unconstrained) or the drop-from-the-tails start (ordering rules), then local search to
    convergence. Same input, same output on any machine and load: for the replayed engine."""
    lanes = build_lanes(p, mode)
    never = Deadline(_NO_CLOCK_S)
    bound: float | None = None
    if mode == "none":
        dv = dive(p, _NO_CLOCK_S)
        stats["dive_rounds"] = dv.rounds
        stats["dive_status"] = dv.status
        bound = dv.bound
        start = dv.selected if dv.selected is not None else np.ones(p.n, dtype=bool)
        st = State(p, lanes, start, mode)
    else:
        st = State(p, lanes, np.ones(p.n, dtype=bool), mode)
    st.close()
    st.repair("fit", None)
    # work limits instead of a clock: two rounds, insert moves for the 20k most valuable
    _finish(st, never, stats, swaps=True, rounds_max=2, inserts_max=HEURISTIC_INSERTS_MAX)
    return st.selected(), bound


def all_or_nothing(p: Problem) -> BoolArray:
    sel = np.ones(p.n, dtype=bool)
    return sel if p.feasible(sel) else np.zeros(p.n, dtype=bool)


def partial(p: Problem, deadline: Deadline) -> BoolArray:
    """T2 algorithm 2: drop the last-queued, lowest-priority payment of the member with the largest
    shortfall until the rest fits."""
    st = State(p, build_lanes(p, "queue"), np.ones(p.n, dtype=bool), "queue")
    st.repair("last", None)
    return st.selected()


def fifo_rtgs(p: Problem, deadline: Deadline) -> BoolArray:
    """Plain RTGS queue: each debtor settles in (priority, order) while funds last, recirculating
    on every incoming credit. No gridlock resolution: the baseline the others improve on."""
    st = State(p, build_lanes(p, "queue"), np.zeros(p.n, dtype=bool), "queue")
    st.add_pass(deadline)
    return st.selected()


_PASSES_MAX = 64


def bilateral(p: Problem, deadline: Deadline) -> BoolArray:
    """Offsetting: for each set of accounts that items touch together (for a payment: the two
    accounts, both directions), settle all its queued items at once when the net fits; repeat
    while anything settles, since credits from one pair can fund another."""
    n = p.n
    # group key: the sorted account tuple of each item
    keys: dict[tuple[int, ...], list[int]] = {}
    ptr = p.eff_ptr.tolist()
    acc = p.eff_acc.tolist()
    for i in range(n):
        keys.setdefault(tuple(acc[ptr[i]: ptr[i + 1]]), []).append(i)
    groups = [keys[k] for k in sorted(keys)]
    slack = p.available.tolist()
    delta = p.eff_delta.tolist()
    sel = [False] * n
    for _ in range(_PASSES_MAX):
        changed = False
        for g in groups:
            if sel[g[0]]:
                continue
            net: dict[int, int] = {}
            for i in g:
                for e in range(ptr[i], ptr[i + 1]):
                    net[acc[e]] = net.get(acc[e], 0) + delta[e]
            if all(slack[a] + d >= 0 for a, d in net.items()):
                for a, d in net.items():
                    slack[a] += d
                for i in g:
                    sel[i] = True
                changed = True
        if not changed or deadline.passed():
            break
    return np.array(sel, dtype=bool)


def enforce(p: Problem, sel: BoolArray, mode: str, deadline: Deadline) -> BoolArray:
    """Bring any selection to feasibility and to the ordering rule (for algorithms that ignore it
    or for float-rounded MILP output): close gaps in the queues, then repair."""
    st = State(p, build_lanes(p, mode), sel, mode)
    st.close()
    st.repair("fit", deadline)
    return st.selected()


def milp(p: Problem, mode: str, deadline: Deadline, stats: Stats) -> BoolArray:
    lanes = build_lanes(p, mode) if mode != "none" else None
    limit = max(deadline.left(), 0.1)
    # in a child: HiGHS prints diagnostics on fd 1 (which carries the command's data) and can
    # overrun its limit by minutes on big models; half the limit again (at least 5 s) is allowed
    res = solve_milp_guarded(p, lanes, limit, kill_after_s=limit + max(5.0, 0.5 * limit))
    stats["milp_status"] = res.status
    stats["milp_dual_bound"] = res.dual_bound
    stats["milp_seconds"] = round(res.seconds, 3)
    if res.selected is None:
        return np.zeros(p.n, dtype=bool)
    sel = res.selected
    if not p.feasible(sel):
        stats["milp_repaired"] = True
        st = State(p, build_lanes(p, mode), sel, mode)
        st.close()
        st.repair("fit", None)
        st.add_pass(None)
        sel = st.selected()
    return sel


def lp_guidance(p: Problem, mode: str, time_limit_s: float) -> LpResult:
    lanes = build_lanes(p, mode) if mode != "none" else None
    return lp_relaxation(p, lanes, time_limit_s)


def run(p: Problem, algorithm: str, *, respect_priority: bool, fifo: bool, time_limit_s: float,
        compute_lp_bound: bool) -> tuple[BoolArray, float | None, Stats]:
    deadline = Deadline(time_limit_s)
    mode = lane_mode(respect_priority=respect_priority, fifo=fifo)
    stats: Stats = {"items": p.n, "accounts": p.n_accounts, "mode": mode}
    if p.n == 0:
        return np.zeros(0, dtype=bool), 0.0, stats
    lp: LpResult | None = None
    needs_lp = algorithm in ("optimise", "lp-round")
    dive_gives_bound = mode == "none" and (
        (algorithm == "optimise" and p.n > MIXED_ITEMS_MAX) or algorithm == "heuristic")
    if (needs_lp or compute_lp_bound) and not dive_gives_bound:
        # the optimiser leans on the LP; other algorithms only report it, with less of the budget
        share = 0.5 if needs_lp else 0.3
        lp = lp_guidance(p, mode, time_limit_s * share)
        stats["lp_status"] = lp.status
        stats["lp_seconds"] = round(lp.seconds, 3)
        stats["lp_columns"] = lp.columns
    bound = lp.bound if lp is not None else None
    if algorithm == "optimise":
        sel, bound = optimise(p, lp, mode, deadline, stats)
    elif algorithm == "heuristic":
        sel, bound = heuristic(p, mode, stats)
    elif algorithm == "lp-round":
        sel, _ = optimise(p, lp, mode, deadline, stats, improve=False)
    elif algorithm == "milp":
        sel = milp(p, mode, deadline, stats)
    elif algorithm == "all-or-nothing":
        sel = all_or_nothing(p)
    elif algorithm == "partial":
        sel = partial(p, deadline)
    elif algorithm == "fifo":
        sel = fifo_rtgs(p, deadline)
    elif algorithm == "bilateral":
        sel = bilateral(p, deadline)
        if mode != "none":
            sel = enforce(p, sel, mode, deadline)
    else:  # pragma: no cover - the caller validates the name
        raise ValueError(f"unknown algorithm {algorithm!r}")
    if not p.feasible(sel):  # last line of defence; never expected to trigger
        stats["final_repair"] = True
        sel = enforce(p, sel, mode, Deadline(0.0))
    return sel, (bound if compute_lp_bound else None), stats
