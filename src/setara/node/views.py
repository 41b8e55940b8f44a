"""Read views: what the front ends show, computed in one place.

Views over the engine's live state (queue, holds, rates, FX positions, balances) take the engine
of a node the caller owns: a CLI process's own node, or, in the server, a call run by the writer
thread between blocks (never a lock held by a request thread). Views over the read models
(payments, journal) take a Store and need no writer at all. Amounts stay in minor units here;
front ends format them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import orjson

from setara.core import HELD, QUEUED, Engine, Payment, Rate
from setara.core.ledger import GENESIS, posting_hash
from setara.core.network import Network
from setara.store import PaymentRow, Store

__all__ = [
    "BalanceView",
    "Finality",
    "HoldView",
    "JournalRow",
    "PositionView",
    "RateView",
    "balances",
    "finality",
    "fx_positions",
    "holds",
    "journal",
    "payments",
    "queue",
    "rates",
]

QUEUE_LIMIT_MAX = 100_000


def queue(engine: Engine, *, currency: str | None = None, limit: int | None = None) -> tuple[int, list[Payment]]:
    """Payments waiting now (RTGS queues and open cycles) in settlement order: (count, the first
    `limit` of them)."""
    waiting = [p for p in engine.live.values() if p.status == QUEUED and (currency is None or p.currency == currency)]
    waiting.sort(key=lambda p: (p.debtor, p.currency, p.priority, p.order))
    return len(waiting), waiting[: QUEUE_LIMIT_MAX if limit is None else min(limit, QUEUE_LIMIT_MAX)]


@dataclass(frozen=True, slots=True)
class HoldView:
    payment: Payment
    earmarked: bool


def holds(engine: Engine, *, limit: int | None = None) -> tuple[int, list[HoldView]]:
    """Payments held for compliance review, oldest first: (count, the first `limit`)."""
    held = sorted((p for p in engine.live.values() if p.status == HELD), key=lambda p: p.order)
    return len(held), [HoldView(p, engine.ledger.is_reserved(p.id)) for p in held[:limit]]


@dataclass(frozen=True, slots=True)
class RateView:
    rate: Rate
    spread: Fraction  # below the best rate of its pair, as a fraction of it
    valid: bool


def rates(engine: Engine, time_ms: int, *, include_expired: bool = False) -> list[RateView]:
    """Posted rates, best first per pair, with each one's spread against the best."""
    chosen = [r for r in engine.rates.values() if include_expired or r.expires_ms > time_ms]
    best: dict[tuple[str, str], Fraction] = {}
    for r in chosen:
        k = (r.base, r.quote)
        if k not in best or r.value > best[k]:
            best[k] = r.value
    out = []
    for r in sorted(chosen, key=lambda r: (r.base, r.quote, -r.value, r.provider)):
        b = best[(r.base, r.quote)]
        out.append(RateView(r, (b - r.value) / b, r.expires_ms > time_ms))
    return out


@dataclass(frozen=True, slots=True)
class BalanceView:
    member: str
    currency: str
    balance_minor: int
    available_minor: int


def balances(engine: Engine, network: Network) -> list[BalanceView]:
    """Members' settlement accounts (not the agents' issuance accounts)."""
    led = engine.ledger
    return [BalanceView(m, c, bal, led.available((m, c))) for (m, c), bal in led.balances.items()
            if m in network.members]


@dataclass(frozen=True, slots=True)
class PositionView:
    provider: str
    currency: str
    balance_minor: int
    available_minor: int
    queued_to_pay_minor: int
    queued_to_receive_minor: int
    shortfall_minor: int
    queued_payments: int


def fx_positions(engine: Engine, network: Network) -> list[PositionView]:
    """Each FX provider's position per currency and its exposure to queued cross-currency payments."""
    led = engine.ledger
    owed: dict[tuple[str, str], int] = {}
    due: dict[tuple[str, str], int] = {}
    count: dict[str, int] = {}
    for p in engine.live.values():
        if p.provider is None or p.to_currency is None:
            continue
        owed[(p.provider, p.to_currency)] = owed.get((p.provider, p.to_currency), 0) + p.credit_minor
        due[(p.provider, p.currency)] = due.get((p.provider, p.currency), 0) + p.amount_minor
        count[p.provider] = count.get(p.provider, 0) + 1
    out = []
    for m in network.members.values():
        if not m.is_fx_provider:
            continue
        for (holder, ccy), bal in led.balances.items():
            if holder != m.id:
                continue
            avail = led.available((m.id, ccy))
            to_pay = owed.get((m.id, ccy), 0)
            out.append(PositionView(m.id, ccy, bal, avail, to_pay, due.get((m.id, ccy), 0), max(0, to_pay - avail),
                                    count.get(m.id, 0)))
    return out


def payments(store: Store, *, member: str | None = None, status: str | None = None, after_id: str | None = None,
             limit: int | None = None) -> Iterator[PaymentRow]:
    """The payments read model (caught up by the caller), a member's own or all."""
    return store.iter_payments(member=member, status=status, after_id=after_id, limit=limit)


@dataclass(frozen=True, slots=True)
class JournalRow:
    seq: int
    payment_id: str
    currency: str
    debit: str
    credit: str
    amount_minor: int
    rate: str
    block: int
    hash: str  # the per-posting chain, recomputed: each row's hash covers every posting before it


def journal(store: Store) -> Iterator[JournalRow]:
    """Final postings in order, with the per-posting hash chain (each block stores its head)."""
    head = GENESIS
    for b in store.iter_blocks():
        for seq, pid, ccy, dr, cr, amt, rate in orjson.loads(b.journal):
            head = posting_hash(head, seq, pid, ccy, dr, cr, amt, rate)
            yield JournalRow(seq, pid, ccy, dr, cr, amt, rate, b.seq, head.hex())


@dataclass(frozen=True, slots=True)
class Finality:
    """Up to where the ledger is final: the latest checkpoint a quorum of member nodes signed."""

    seq: int
    time_ms: int  # the time of block `seq`'s last command

    def covers(self, row: PaymentRow) -> bool:
        """Whether the payment's current (terminal) status is in a final block. Conservative: a
        status stamped at the very millisecond of the checkpoint's block counts from the next one."""
        return row.status in ("SETTLED", "REJECTED", "CANCELLED") and row.updated_ms < self.time_ms


def finality(store: Store) -> Finality | None:
    doc = store.checkpoint("final")
    if doc is None:
        return None
    seq = int(orjson.loads(doc)["seq"])
    block = next(iter(store.iter_blocks(seq - 1)), None)
    return None if block is None or block.seq != seq else Finality(seq, block.time_ms)
