"""The liquidity solver: feasibility, determinism, gridlock, T2 partial, ordering options."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setara.liquidity import ALGORITHMS, Item, is_feasible, solve
from setara.liquidity.generator import generate

# the MILP stages are exercised separately: property runs stay fast
FAST = tuple(a for a in ALGORITHMS if a != "milp")


def pay(pid: str, deb: int, cred: int, amount: int, priority: int = 1, order: int = 0) -> Item:
    return Item(pid, ((deb, -amount), (cred, amount)), amount, priority, order)


@st.composite
def instances(draw: st.DrawFn) -> tuple[list[int], list[Item]]:
    m = draw(st.integers(2, 6))
    available = draw(st.lists(st.integers(0, 50), min_size=m, max_size=m))
    n = draw(st.integers(0, 14))
    items: list[Item] = []
    for i in range(n):
        d = draw(st.integers(0, m - 1))
        c = draw(st.integers(0, m - 1).filter(lambda x, d=d: x != d))
        a = draw(st.integers(1, 60))
        if draw(st.integers(0, 9)) == 0 and m >= 4:
            # a linked pair (PvP-like): two debits, two credits, settle together or not at all
            d2, c2 = (d + 2) % m, (c + 2) % m
            effects = ((d, -a), (c, a), (d2, -a // 2 - 1), (c2, a // 2 + 1))
            items.append(Item(f"x{i}", effects, a, draw(st.integers(0, 1)), draw(st.integers(0, 5))))
        else:
            items.append(pay(f"p{i}", d, c, a, draw(st.integers(0, 1)), draw(st.integers(0, 5))))
    return available, items


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inst=instances(), alg=st.sampled_from(FAST), rp=st.booleans(), ff=st.booleans())
def test_always_feasible_unique_deterministic(inst: tuple[list[int], list[Item]], alg: str, rp: bool,
                                              ff: bool) -> None:
    available, items = inst
    a = solve(available, items, alg, respect_priority=rp, fifo=ff, time_limit_s=5.0)
    b = solve(available, items, alg, respect_priority=rp, fifo=ff, time_limit_s=5.0)
    assert is_feasible(available, items, a.selected)
    assert len(set(a.selected)) == len(a.selected)
    assert a.selected == b.selected
    order = [it.id for it in items if it.id in set(a.selected)]
    assert list(a.selected) == order  # input order
    assert a.settled_value == sum(it.value for it in items if it.id in set(a.selected))
    if a.lp_bound is not None:
        assert a.lp_bound >= a.settled_value - 1e-6


def _ordering_ok(items: list[Item], selected: set[str], rp: bool, ff: bool) -> bool:
    def debtors(it: Item) -> list[int]:
        net: dict[int, int] = {}
        for acc, d in it.effects:
            net[acc] = net.get(acc, 0) + d
        return [acc for acc, d in net.items() if d < 0]

    for i in items:
        for j in items:
            if i.id == j.id or i.id in selected or j.id not in selected:
                continue
            # i unsettled, j settled: j must not be behind i in a shared debtor queue
            if not set(debtors(i)) & set(debtors(j)):
                continue
            ki = (i.priority, i.order, items.index(i))
            kj = (j.priority, j.order, items.index(j))
            if rp and i.priority < j.priority:
                return False
            if ff and rp and ki < kj:
                return False
            if ff and not rp and i.priority == j.priority and ki < kj:
                return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inst=instances(), rp=st.booleans(), ff=st.booleans())
def test_options_honoured(inst: tuple[list[int], list[Item]], rp: bool, ff: bool) -> None:
    available, items = inst
    for alg in ("optimise", "bilateral", "lp-round"):
        s = solve(available, items, alg, respect_priority=rp, fifo=ff, time_limit_s=5.0)
        assert _ordering_ok(items, set(s.selected), rp, ff), (alg, s.selected)
    for alg in ("partial", "fifo"):  # T2's queue order is built in
        s = solve(available, items, alg, time_limit_s=5.0)
        assert _ordering_ok(items, set(s.selected), True, True), (alg, s.selected)


def test_gridlock_ring_resolved() -> None:
    items = [pay("ab", 0, 1, 100), pay("bc", 1, 2, 100), pay("ca", 2, 0, 100)]
    for alg in ("optimise", "all-or-nothing", "partial", "milp", "lp-round"):
        s = solve([0, 0, 0], items, alg, time_limit_s=10.0)
        assert s.selected == ("ab", "bc", "ca"), alg
        assert s.settled_value == 300
    # plain FIFO queue processing cannot break a gridlock: that is why the others exist
    assert solve([0, 0, 0], items, "fifo").selected == ()


def test_ring_with_extra_payment_settles_ring() -> None:
    items = [pay("ab", 0, 1, 100), pay("bc", 1, 2, 100), pay("ca", 2, 0, 100), pay("ad", 0, 3, 50, order=9)]
    s = solve([0, 0, 0, 0], items)
    assert set(s.selected) == {"ab", "bc", "ca"}
    assert solve([0, 0, 0, 0], items, "all-or-nothing").selected == ()


def test_t2_partial_removes_last_queued_of_largest_shortfall() -> None:
    # A owes B 60 + 50 (queued in that order) and has 20; B pays C 30, C pays A 10.
    items = [
        pay("a1", 0, 1, 60, order=1),
        pay("a2", 0, 1, 50, order=2),
        pay("b1", 1, 2, 30, order=1),
        pay("c1", 2, 0, 10, order=1),
    ]
    # all: A = 20 - 110 + 10 = -80 (largest shortfall); remove A's last-queued a2 -> A = -30;
    # remove a1 -> A = 30, B = 0 - 30 = -30 -> remove b1 -> C = 0 - 10 + 0 = -10 -> remove c1.
    s = solve([20, 0, 0], items, "partial")
    assert s.selected == ()
    s = solve([50, 0, 0], items, "partial")
    # A = 50 - 110 + 10 = -50: drop a2 -> A = 0: B = 60 - 30 = 30, C = 30 - 10 = 20: feasible
    assert s.selected == ("a1", "b1", "c1")


def test_partial_drops_normal_before_urgent() -> None:
    items = [pay("u", 0, 1, 50, priority=0, order=5), pay("n", 0, 1, 50, priority=1, order=1)]
    s = solve([50, 0], items, "partial")
    assert s.selected == ("u",)


def test_respect_priority_and_fifo() -> None:
    # A can afford one of its payments; the big NORMAL one is worth more
    items = [pay("urgent", 0, 1, 40, priority=0, order=2), pay("normal", 0, 2, 90, priority=1, order=1)]
    assert solve([100], [], "optimise").selected == ()
    free = solve([100, 0, 0], items)
    assert free.selected == ("normal",)
    ranked = solve([100, 0, 0], items, respect_priority=True)
    assert ranked.selected == ("urgent",)
    items2 = [pay("first", 0, 1, 80, order=1), pay("second", 0, 2, 30, order=2), pay("third", 0, 1, 60, order=3)]
    assert solve([90, 0, 0], items2).settled_value == 90  # second + third beat first alone
    fifo = solve([90, 0, 0], items2, fifo=True)
    assert fifo.selected == ("first",)
    fifo2 = solve([115, 0, 0], items2, fifo=True)
    assert fifo2.selected == ("first", "second")


def test_bilateral_offsets_pair() -> None:
    items = [pay("ab", 0, 1, 100), pay("ba", 1, 0, 90), pay("cd", 2, 3, 5)]
    s = solve([10, 0, 0, 0], items, "bilateral")
    assert s.selected == ("ab", "ba")


def test_overdrawn_account_never_worse() -> None:
    items = [pay("ab", 0, 1, 10), pay("ba", 1, 0, 5)]
    s = solve([-5, 3], items)
    assert is_feasible([-5, 3], items, s.selected)
    assert "ab" not in s.selected or "ba" in s.selected


def test_invalid_input_rejected() -> None:
    with pytest.raises(ValueError):
        solve([0], [pay("x", 0, 1, 5)])  # account out of range
    with pytest.raises(ValueError):
        solve([0, 0], [pay("x", 0, 1, 5), pay("x", 1, 0, 5)])  # duplicate id
    with pytest.raises(ValueError):
        solve([0, 0], [], "magic")


def test_generated_queue_all_algorithms() -> None:
    q = generate(400, liquidity_fraction=0.05, rings=2, seed=7)
    available, items = q.items()
    results = {alg: solve(available, items, alg, time_limit_s=3.0) for alg in ALGORITHMS}
    for alg, s in results.items():
        assert is_feasible(available, items, s.selected), alg
    best = results["optimise"].settled_value
    assert best >= max(results[a].settled_value for a in ("partial", "bilateral", "fifo", "all-or-nothing"))
    bound = results["optimise"].lp_bound
    assert bound is not None and bound >= best
