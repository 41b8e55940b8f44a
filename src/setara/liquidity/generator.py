"""Realistic payment queues for tests and benchmarks.

Shape after Soramäki et al. (2007), "The topology of interbank payment flows": a scale-free
counterparty network (Barabási-Albert preferential attachment) where a few hubs carry most of the
traffic, heavy-tailed (lognormal) payment values, and liquidity that is a small fraction (2-20%) of
each member's gross outflows, so the queue gridlocks without liquidity saving. Optional gridlock
rings (A pays B pays C ... pays A, unfunded) test that multilateral settlement finds them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._model import IntArray, Item, Problem, problem_from_arrays

__all__ = ["Queue", "generate", "write_csvs"]

MEMBERS_MAX = 100_000
PAYMENTS_MAX = 20_000_000


@dataclass(frozen=True, slots=True)
class Queue:
    """A generated instance. Accounts are (member, currency): index = currency * members + member."""

    members: int
    currencies: tuple[str, ...]
    available: IntArray
    ids: tuple[str, ...]
    debtor: IntArray  # member index
    creditor: IntArray
    currency: IntArray  # index into currencies
    amount_minor: IntArray
    priority: IntArray  # 0 urgent, 1 normal
    order: IntArray

    def problem(self) -> Problem:
        m = self.members
        return problem_from_arrays(self.available, self.ids, self.currency * m + self.debtor,
                                   self.currency * m + self.creditor, self.amount_minor, self.amount_minor,
                                   self.priority, self.order)

    def items(self) -> tuple[list[int], list[Item]]:
        m = self.members
        deb = (self.currency * m + self.debtor).tolist()
        cred = (self.currency * m + self.creditor).tolist()
        amt = self.amount_minor.tolist()
        pri = self.priority.tolist()
        order = self.order.tolist()
        items = [Item(self.ids[i], ((deb[i], -amt[i]), (cred[i], amt[i])), amt[i], pri[i], order[i])
                 for i in range(len(self.ids))]
        return self.available.tolist(), items


def _ba_edges(rng: np.random.Generator, n: int, m: int) -> tuple[IntArray, IntArray]:
    """Barabási-Albert: each new node links to m existing nodes chosen in proportion to degree."""
    m = max(1, min(m, n - 1))
    src: list[int] = []
    dst: list[int] = []
    targets = list(range(m))
    repeated: list[int] = []  # every node once per unit of degree: sampling from it is preferential
    for v in range(m, n):
        for t in set(targets):
            src.append(v)
            dst.append(t)
        repeated.extend(targets)
        repeated.extend([v] * m)
        picks = rng.integers(0, len(repeated), size=3 * m)
        chosen: list[int] = []
        for k in picks.tolist():
            t = repeated[k]
            if t not in chosen:
                chosen.append(t)
            if len(chosen) == m:
                break
        targets = chosen
    return np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64)


def generate(
    payments: int,
    *,
    members: int | None = None,
    currencies: tuple[str, ...] = ("IDR",),
    liquidity_fraction: float = 0.05,
    links_per_member: int = 3,
    value_median_minor: int = 1_000_000,
    value_sigma: float = 1.6,
    urgent_share: float = 0.1,
    rings: int = 0,
    ring_size: int = 4,
    seed: int = 0,
) -> Queue:
    if not 1 <= payments <= PAYMENTS_MAX:
        raise ValueError(f"payments must be in 1..{PAYMENTS_MAX}")
    if not 0.0 <= liquidity_fraction <= 1.0:
        raise ValueError("liquidity_fraction must be in [0, 1]")
    rng = np.random.default_rng(seed)
    n_mem = members if members is not None else int(min(2000, max(10, round(4 * payments ** 0.5))))
    if not 3 <= n_mem <= MEMBERS_MAX:
        raise ValueError(f"members must be in 3..{MEMBERS_MAX}")
    n_cur = len(currencies)
    src, dst = _ba_edges(rng, n_mem, links_per_member)
    deg = np.bincount(np.concatenate([src, dst]), minlength=n_mem).astype(np.float64)
    # traffic on a link grows with both ends' degree (hubs trade with hubs), times lognormal noise
    w = deg[src] * deg[dst] * rng.lognormal(0.0, 1.0, size=len(src))
    w /= w.sum()
    e = rng.choice(len(src), size=payments, p=w)
    flip = rng.random(payments) < 0.5
    debtor = np.where(flip, src[e], dst[e])
    creditor = np.where(flip, dst[e], src[e])
    currency = rng.integers(0, n_cur, size=payments)
    amount = np.maximum(1, np.rint(value_median_minor * rng.lognormal(0.0, value_sigma, size=payments)))
    amount = amount.astype(np.int64)
    priority = (rng.random(payments) >= urgent_share).astype(np.int64)
    order = rng.permutation(payments).astype(np.int64)
    gross_out = np.zeros(n_cur * n_mem, dtype=np.int64)
    np.add.at(gross_out, currency * n_mem + debtor, amount)
    available = np.floor(gross_out * liquidity_fraction).astype(np.int64)
    if rings > 0:
        # unfunded rings of equal payments: settle only all together
        k = max(2, min(ring_size, n_mem))
        r_deb, r_cred, r_cur, r_amt = [], [], [], []
        for _ in range(rings):
            ring = rng.choice(n_mem, size=k, replace=False)
            cur = int(rng.integers(0, n_cur))
            big = int(value_median_minor * 20 * (1 + rng.random()))
            for j in range(k):
                r_deb.append(int(ring[j]))
                r_cred.append(int(ring[(j + 1) % k]))
                r_cur.append(cur)
                r_amt.append(big)
        debtor = np.concatenate([debtor, np.array(r_deb, dtype=np.int64)])
        creditor = np.concatenate([creditor, np.array(r_cred, dtype=np.int64)])
        currency = np.concatenate([currency, np.array(r_cur, dtype=np.int64)])
        amount = np.concatenate([amount, np.array(r_amt, dtype=np.int64)])
        priority = np.concatenate([priority, np.ones(len(r_deb), dtype=np.int64)])
        order = np.concatenate([order, np.arange(payments, payments + len(r_deb), dtype=np.int64)])
    ids = tuple(f"P{i:08d}" for i in range(len(debtor)))
    return Queue(n_mem, tuple(currencies), available, ids, debtor.astype(np.int64), creditor.astype(np.int64),
                 currency.astype(np.int64), amount, priority, order)


def member_id(k: int) -> str:
    return f"BANK{k:05d}"


def _major(amount_minor: int, minor_units: int) -> str:
    if minor_units == 0:
        return str(amount_minor)
    q, r = divmod(amount_minor, 10**minor_units)
    return f"{q}.{r:0{minor_units}d}"


def write_csvs(queue: Queue, balances_path: Path, queue_path: Path, minor_units: int = 2) -> None:
    """Write the `setara settle` inputs: balances (member,currency,balance) and the queue."""
    m = queue.members
    with balances_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["member", "currency", "balance"])
        for acc, bal in enumerate(queue.available.tolist()):
            w.writerow([member_id(acc % m), queue.currencies[acc // m], _major(bal, minor_units)])
    with queue_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "debtor", "creditor", "currency", "amount", "priority", "submitted_at"])
        pri_name = ("URGENT", "NORMAL")
        for i, pid in enumerate(queue.ids):
            w.writerow([pid, member_id(int(queue.debtor[i])), member_id(int(queue.creditor[i])),
                        queue.currencies[int(queue.currency[i])], _major(int(queue.amount_minor[i]), minor_units),
                        pri_name[int(queue.priority[i])], int(queue.order[i])])
