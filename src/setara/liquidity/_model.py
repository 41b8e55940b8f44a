"""Public value types and the array form every algorithm works on.

Money stays integral: deltas, values and availabilities are int64 arrays, and the last word on
feasibility is an exact integer check. Floats appear only inside the LP/MILP and as LP guidance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Item", "Problem", "Solution", "build_problem", "is_feasible"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

# Limits. Amounts above 2**62 minor units do not exist in any currency's supply; refusing them keeps
# every int64 sum below overflow as long as the queue also stays under ITEMS_MAX.
AMOUNT_MAX = 2**62
ITEMS_MAX = 20_000_000
EFFECTS_PER_ITEM_MAX = 64
ACCOUNTS_MAX = 10_000_000


@dataclass(frozen=True, slots=True)
class Item:
    """One queued payment, or a linked PvP pair (several effects settling atomically)."""

    id: str
    effects: tuple[tuple[int, int], ...]  # (account_index, delta_minor); debit < 0, credit > 0
    value: int  # objective weight (> 0), minor units of the payment
    priority: int = 1  # 0 = URGENT, 1 = NORMAL (lower = more urgent)
    order: int = 0  # FIFO key within the debtor's queue (submission order)


@dataclass(frozen=True)
class Solution:
    selected: tuple[str, ...]  # ids to settle, in input order
    settled_value: int
    lp_bound: float | None  # LP relaxation upper bound on settled value, where computed
    algorithm: str
    seconds: float
    stats: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Problem:
    """Items as arrays. Effects are CSR: item i owns eff_acc/eff_delta[eff_ptr[i]:eff_ptr[i+1]].

    Duplicate accounts inside one item are merged and zero deltas dropped, so every account appears
    at most once per item. `deb`/`cred`/`amt` describe the common "simple" item (one debit, one credit
    of equal size); they are -1/-1/0 for anything else.
    """

    n_accounts: int
    available: IntArray
    ids: tuple[str, ...]
    value: IntArray
    priority: IntArray
    order: IntArray
    eff_ptr: IntArray
    eff_acc: IntArray
    eff_delta: IntArray
    eff_item: IntArray
    simple: BoolArray
    deb: IntArray
    cred: IntArray
    amt: IntArray

    @property
    def n(self) -> int:
        return len(self.ids)

    def slack(self, selected: BoolArray) -> IntArray:
        """available + deltas of selected items, per account (int64; exact, or clamped at the int64
        range when a true sum lies outside it, which keeps the sign and so the feasibility verdict).

        `available` here is already clamped at 0 (see build): an account starting overdrawn may not
        go further down, which is the same as it having nothing to spend.
        """
        mask = selected[self.eff_item]
        acc = self.eff_acc[mask]
        delta = self.eff_delta[mask]
        if float(np.abs(delta).sum(dtype=np.float64)) + float(np.abs(self.available).max(initial=0)) < 2.0**62:
            out = self.available.copy()
            np.add.at(out, acc, delta)
            return out
        # sums could pass int64: exact Python integers, then refuse what int64 cannot hold
        exact = [int(a) for a in self.available.tolist()]
        for a, d in zip(acc.tolist(), delta.tolist(), strict=True):
            exact[a] += d
        return np.array([min(max(v, -(2**63) + 1), 2**63 - 1) for v in exact], dtype=np.int64)

    def settled_value(self, selected: BoolArray) -> int:
        return int(self.value[selected].sum())

    def feasible(self, selected: BoolArray) -> bool:
        return bool((self.slack(selected) >= 0).all())

    def debtors(self, i: int) -> list[int]:
        lo, hi = int(self.eff_ptr[i]), int(self.eff_ptr[i + 1])
        return [int(a) for a, d in zip(self.eff_acc[lo:hi], self.eff_delta[lo:hi], strict=True) if d < 0]


def _check_int(name: str, v: object, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    iv = int(v)
    if not lo <= iv <= hi:
        raise ValueError(f"{name}={iv} is outside [{lo}, {hi}]")
    return iv


def build_problem(available: Sequence[int], items: Sequence[Item]) -> Problem:
    """Validate and convert; raises ValueError/TypeError on input the solver must not guess about."""
    m = len(available)
    if m > ACCOUNTS_MAX:
        raise ValueError(f"{m} accounts exceed the limit {ACCOUNTS_MAX}")
    if len(items) > ITEMS_MAX:
        raise ValueError(f"{len(items)} items exceed the limit {ITEMS_MAX}")
    avail = np.array([_check_int("available", a, -AMOUNT_MAX, AMOUNT_MAX) for a in available], dtype=np.int64)
    n = len(items)
    ids: list[str] = []
    seen: set[str] = set()
    value = np.empty(n, dtype=np.int64)
    priority = np.empty(n, dtype=np.int64)
    order = np.empty(n, dtype=np.int64)
    ptr = np.zeros(n + 1, dtype=np.int64)
    accs: list[int] = []
    deltas: list[int] = []
    for i, it in enumerate(items):
        if it.id in seen:
            raise ValueError(f"item id {it.id!r} appears twice")
        seen.add(it.id)
        ids.append(it.id)
        value[i] = _check_int(f"item {it.id!r} value", it.value, 0, AMOUNT_MAX)
        priority[i] = _check_int(f"item {it.id!r} priority", it.priority, -(2**31), 2**31)
        order[i] = _check_int(f"item {it.id!r} order", it.order, -(2**62), 2**62)
        if len(it.effects) > EFFECTS_PER_ITEM_MAX:
            raise ValueError(f"item {it.id!r} has more than {EFFECTS_PER_ITEM_MAX} effects")
        merged: dict[int, int] = {}
        for acc, delta in it.effects:
            a = _check_int(f"item {it.id!r} account", acc, 0, m - 1)
            merged[a] = merged.get(a, 0) + _check_int(f"item {it.id!r} delta", delta, -AMOUNT_MAX, AMOUNT_MAX)
        for a in sorted(merged):
            d = merged[a]
            if d != 0:
                if abs(d) > AMOUNT_MAX:
                    raise ValueError(f"item {it.id!r}: merged delta on account {a} is too large")
                accs.append(a)
                deltas.append(d)
        ptr[i + 1] = len(accs)
    eff_acc = np.array(accs, dtype=np.int64)
    eff_delta = np.array(deltas, dtype=np.int64)
    return _finish(m, avail, tuple(ids), value, priority, order, ptr, eff_acc, eff_delta)


def problem_from_arrays(
    available: IntArray,
    ids: tuple[str, ...],
    deb: IntArray,
    cred: IntArray,
    amt: IntArray,
    value: IntArray,
    priority: IntArray,
    order: IntArray,
) -> Problem:
    """Fast path for simple payments (CSV, generator): no per-item Python work."""
    n = len(ids)
    if not (len(deb) == len(cred) == len(amt) == len(value) == len(priority) == len(order) == n):
        raise ValueError("array lengths differ")
    if n and ((amt <= 0).any() or (amt > AMOUNT_MAX).any() or (deb == cred).any()):
        raise ValueError("simple payments need 0 < amount <= 2**62 and debtor != creditor")
    ptr = np.arange(0, 2 * n + 1, 2, dtype=np.int64)
    lo = np.minimum(deb, cred)
    hi = np.maximum(deb, cred)
    eff_acc = np.empty(2 * n, dtype=np.int64)
    eff_acc[0::2] = lo
    eff_acc[1::2] = hi
    eff_delta = np.empty(2 * n, dtype=np.int64)
    eff_delta[0::2] = np.where(lo == deb, -amt, amt)
    eff_delta[1::2] = -eff_delta[0::2]
    return _finish(len(available), available.astype(np.int64), ids, value.astype(np.int64),
                   priority.astype(np.int64), order.astype(np.int64), ptr, eff_acc, eff_delta)


def _finish(
    m: int,
    avail: IntArray,
    ids: tuple[str, ...],
    value: IntArray,
    priority: IntArray,
    order: IntArray,
    ptr: IntArray,
    eff_acc: IntArray,
    eff_delta: IntArray,
) -> Problem:
    n = len(ids)
    counts = np.diff(ptr)
    eff_item = np.repeat(np.arange(n, dtype=np.int64), counts)
    simple = np.zeros(n, dtype=bool)
    deb = np.full(n, -1, dtype=np.int64)
    cred = np.full(n, -1, dtype=np.int64)
    amt = np.zeros(n, dtype=np.int64)
    two = np.flatnonzero(counts == 2)
    if len(two):
        d0 = eff_delta[ptr[two]]
        d1 = eff_delta[ptr[two] + 1]
        ok = d0 == -d1
        t = two[ok]
        first_neg = d0[ok] < 0
        a0 = eff_acc[ptr[t]]
        a1 = eff_acc[ptr[t] + 1]
        simple[t] = True
        deb[t] = np.where(first_neg, a0, a1)
        cred[t] = np.where(first_neg, a1, a0)
        amt[t] = np.abs(d0[ok])
    avail = np.maximum(avail, 0)
    return Problem(m, avail, ids, value, priority, order, ptr, eff_acc, eff_delta, eff_item, simple, deb,
                   cred, amt)


def is_feasible(available: Sequence[int], items: Sequence[Item], selected: Iterable[str]) -> bool:
    """Exact check in Python integers; no id selected twice or unknown.

    Every account must end >= 0; an account that already starts below zero (an overdraft the solver
    did not cause) must not end below where it started.
    """
    by_id = {it.id: it for it in items}
    bal = [int(a) for a in available]
    seen: set[str] = set()
    for sid in selected:
        if sid in seen or sid not in by_id:
            return False
        seen.add(sid)
        for acc, delta in by_id[sid].effects:
            if not 0 <= acc < len(bal):
                return False
            bal[acc] += int(delta)
    return all(b >= min(0, int(a)) for b, a in zip(bal, available, strict=True))
