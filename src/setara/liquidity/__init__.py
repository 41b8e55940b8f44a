"""Liquidity-saving solver: which queued payments can settle together without any account going below
its floor. Pure and stateless: the engine (and `setara settle`) pass balances and queue, get ids back.

    solve(available, items, algorithm="optimise") -> Solution

Algorithms (see docs/liquidity.md):
    optimise        maximise settled value: LP dive, HiGHS (whole or mixed model), local search
    heuristic       the optimiser without branch and bound or clock cut-offs: fully deterministic
    lp-round        the optimiser's LP rounding + repair alone (for comparison)
    milp            HiGHS branch and bound with a time limit (exact when it finishes; benchmarking)
    all-or-nothing  T2 algorithm 1: the whole queue or nothing
    partial         T2 algorithm 2: drop the last-queued payment of the member with the largest shortfall
    bilateral       offsetting per pair of accounts (both directions together), repeated to a fixpoint
    fifo            plain RTGS queue processing in (priority, order), no gridlock resolution

Feasibility: for every account k, available[k] + deltas of the selected items on k >= 0 (an account
given with available[k] < 0 must not end below available[k]). The selection is checked exactly in
integers before it is returned.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ._algorithms import run
from ._model import Item, Problem, Solution, build_problem, is_feasible

__all__ = ["ALGORITHMS", "Item", "Solution", "is_feasible", "solve", "solve_problem"]

ALGORITHMS: tuple[str, ...] = (
    "optimise", "heuristic", "lp-round", "milp", "all-or-nothing", "partial", "bilateral", "fifo",
)
TIME_LIMIT_S_MAX = 3600.0


def solve(
    available: Sequence[int],
    items: Sequence[Item],
    algorithm: str = "optimise",
    *,
    respect_priority: bool = False,
    fifo: bool = False,
    time_limit_s: float = 20.0,
    compute_lp_bound: bool = True,
) -> Solution:
    """Choose the items to settle now.

    respect_priority: for each debtor account, an item settles only if every more urgent item of
    that debtor settles too (so an URGENT payment is never left queued while a NORMAL one of the same
    debtor settles). fifo: within a debtor and priority, the settled items are a prefix of the queue
    order (`order`, then input position). With both, each debtor settles a prefix of its queue in
    (priority, order). partial, fifo and all-or-nothing obey both rules by construction.

    time_limit_s bounds the whole call (the LP gets part of it; a repair to feasibility always
    finishes even when the deadline has passed). Results are deterministic except where HiGHS branch
    and bound or a search stops on the clock ("milp"; "optimise" on queues where HiGHS runs to its
    limit); "heuristic" never looks at the clock, for callers that replay (the engine).
    """
    t0 = time.perf_counter()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    problem = build_problem(available, items)
    return solve_problem(problem, algorithm, respect_priority=respect_priority, fifo=fifo,
                         time_limit_s=time_limit_s, compute_lp_bound=compute_lp_bound, t0=t0)


def solve_problem(
    problem: Problem,
    algorithm: str = "optimise",
    *,
    respect_priority: bool = False,
    fifo: bool = False,
    time_limit_s: float = 20.0,
    compute_lp_bound: bool = True,
    t0: float | None = None,
) -> Solution:
    """solve() on an already built Problem (the CSV and benchmark paths build it from arrays)."""
    start = time.perf_counter() if t0 is None else t0
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    if not 0.0 < time_limit_s <= TIME_LIMIT_S_MAX:
        raise ValueError(f"time_limit_s must be in (0, {TIME_LIMIT_S_MAX}]")
    budget = max(time_limit_s - (time.perf_counter() - start), 0.05)
    sel, bound, stats = run(problem, algorithm, respect_priority=respect_priority, fifo=fifo,
                            time_limit_s=budget, compute_lp_bound=compute_lp_bound)
    assert problem.feasible(sel), "solver produced an infeasible selection"
    value = problem.settled_value(sel)
    if bound is not None:
        # The LP optimum is >= every integer solution; HiGHS's tolerances may leave it a hair below.
        bound = max(bound, float(value))
    ids = problem.ids
    selected = tuple(ids[i] for i in sel.nonzero()[0].tolist())
    return Solution(selected, value, bound, algorithm, time.perf_counter() - start, stats)
