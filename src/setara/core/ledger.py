"""Double-entry, multi-currency ledger with two-phase reservations and a hash-chained journal.

The ledger knows accounts, balances, floors and postings; it knows nothing of queues or of what a
payment means. A posting moves an amount from a debit account to a credit account in one currency,
so every posting conserves money by construction; `check` proves it for the whole state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GENESIS",
    "Account",
    "InsufficientFunds",
    "InvariantViolation",
    "Ledger",
    "Leg",
    "Posting",
    "journal_block_hash",
    "net_effect",
    "posting_hash",
]

Account = tuple[str, str]  # (holder id, currency)
GENESIS = bytes(32)
# Floor of a settlement agent's issuance account: effectively unbounded, yet every balance and
# "available" figure still fits a signed 64-bit database column.
_UNBOUNDED = -(2**62)


class InsufficientFunds(Exception):
    """A batch of legs would take an account below its floor; nothing was applied."""

    def __init__(self, account: Account, shortfall_minor: int) -> None:
        super().__init__(f"{account[0]}/{account[1]} short by {shortfall_minor}")
        self.account = account
        self.shortfall_minor = shortfall_minor


class InvariantViolation(AssertionError):
    """The ledger's state broke conservation, a floor, or the journal chain."""


@dataclass(slots=True)
class Leg:
    currency: str
    debit: str  # holder whose account is debited (pays)
    credit: str  # holder whose account is credited (receives)
    amount_minor: int
    rate: str = ""  # FX rate applied to produce this leg, recorded for audit


@dataclass(slots=True)
class Posting:
    seq: int
    payment_id: str
    currency: str
    debit: str
    credit: str
    amount_minor: int
    rate: str


def journal_block_hash(prev: bytes, journal: bytes) -> bytes:
    """The journal's hash chain, link by link: each block of postings chains onto the previous head.
    (Hashing per block rather than per posting costs one digest per group commit.)"""
    return hashlib.sha256(prev + journal).digest()


def posting_hash(prev: bytes, seq: int, payment_id: str, currency: str, debit: str, credit: str,
                 amount_minor: int, rate: str) -> bytes:
    """A per-posting chain for exports: each row's hash covers every posting before it."""
    body = f"{seq}|{payment_id}|{currency}|{debit}|{credit}|{amount_minor}|{rate}".encode()
    return hashlib.sha256(prev + body).digest()


def net_effect(legs: Iterable[Leg]) -> dict[Account, int]:
    """What a set of legs does to each account it touches (debits negative), in first-touched
    order: the one place this arithmetic lives (postings, cycles' net positions, the solver's
    problem)."""
    deltas: dict[Account, int] = {}
    for leg in legs:
        d, c = (leg.debit, leg.currency), (leg.credit, leg.currency)
        deltas[d] = deltas.get(d, 0) - leg.amount_minor
        deltas[c] = deltas.get(c, 0) + leg.amount_minor
    return deltas


class Ledger:
    """Balances per (holder, currency) with floors and reservations; a journal of postings.

    The journal itself is not kept in memory (a day can hold millions of postings); the ledger keeps
    the chain head and hands each new posting to its caller, who persists it.
    """

    __slots__ = ("balances", "floors", "reservations", "reserved", "seq")

    def __init__(self) -> None:
        self.balances: dict[Account, int] = {}
        self.floors: dict[Account, int] = {}
        self.reserved: dict[Account, int] = {}
        self.reservations: dict[str, tuple[Account, int]] = {}
        self.seq = 0

    # ------------------------------------------------------------------ accounts
    def open(self, account: Account, floor_minor: int | None) -> None:
        if account in self.balances:
            raise ValueError(f"account {account} already open")
        self.balances[account] = 0
        self.floors[account] = _UNBOUNDED if floor_minor is None else floor_minor

    def set_floor(self, account: Account, floor_minor: int) -> None:
        self.floors[account] = floor_minor

    def has(self, account: Account) -> bool:
        return account in self.balances

    def balance(self, account: Account) -> int:
        return self.balances[account]

    def available(self, account: Account) -> int:
        """What the holder can still spend: balance - floor - reservations."""
        return self.balances[account] - self.floors[account] - self.reserved.get(account, 0)

    # ------------------------------------------------------------------ two-phase
    def reserve(self, key: str, account: Account, amount_minor: int) -> bool:
        """Earmark funds (phase one). False, and nothing changes, if not available."""
        if amount_minor <= 0 or key in self.reservations:
            raise ValueError(f"bad reservation {key!r}")
        if self.available(account) < amount_minor:
            return False
        self.reservations[key] = (account, amount_minor)
        self.reserved[account] = self.reserved.get(account, 0) + amount_minor
        return True

    def void(self, key: str) -> None:
        """Release a reservation without posting (phase two, abort)."""
        item = self.reservations.pop(key, None)
        if item is None:
            return
        account, amount = item
        left = self.reserved[account] - amount
        if left:
            self.reserved[account] = left
        else:
            del self.reserved[account]

    def is_reserved(self, key: str) -> bool:
        return key in self.reservations

    # ------------------------------------------------------------------ posting
    def post(self, batch: Sequence[tuple[str, Sequence[Leg]]]) -> list[Posting]:
        """Apply every leg of every payment in `batch`, or none of them.

        A payment's own reservation (phase one) is consumed by its posting (phase two), so its
        earmarked funds count as available to it and to nothing else.
        """
        released: dict[Account, int] = {}
        for pid, legs in batch:
            for leg in legs:
                if leg.amount_minor <= 0:
                    raise ValueError(f"payment {pid}: leg amount must be > 0")
                for acct in ((leg.debit, leg.currency), (leg.credit, leg.currency)):
                    if acct not in self.balances:
                        raise KeyError(f"no account {acct}")
            res = self.reservations.get(pid)
            if res is not None:
                released[res[0]] = released.get(res[0], 0) + res[1]
        deltas = net_effect(leg for _, legs in batch for leg in legs)
        for acct, delta in deltas.items():
            if delta < 0:
                room = self.available(acct) + released.get(acct, 0)
                if room + delta < 0:
                    raise InsufficientFunds(acct, -(room + delta))
        for acct, delta in deltas.items():
            self.balances[acct] += delta
        for pid, _ in batch:
            if pid in self.reservations:
                self.void(pid)
        out: list[Posting] = []
        seq = self.seq
        for pid, legs in batch:
            for leg in legs:
                seq += 1
                out.append(Posting(seq, pid, leg.currency, leg.debit, leg.credit, leg.amount_minor, leg.rate))
        self.seq = seq
        return out

    def post_one(self, payment_id: str, currency: str, debit: str, credit: str, amount_minor: int
                 ) -> Posting | None:
        """Fast path of `post` for a single-leg payment; None (nothing changed) when the debit
        account cannot cover it."""
        d = (debit, currency)
        c = (credit, currency)
        balances = self.balances
        if amount_minor <= 0 or c not in balances:
            raise ValueError(f"payment {payment_id}: bad leg")
        if payment_id in self.reservations:
            try:
                return self.post([(payment_id, [Leg(currency, debit, credit, amount_minor)])])[0]
            except InsufficientFunds:
                return None
        seq = self.move(d, c, amount_minor)
        return Posting(seq, payment_id, currency, debit, credit, amount_minor, "") if seq else None

    def move(self, debit: Account, credit: Account, amount_minor: int) -> int:
        """Move an amount between two existing accounts of one currency, for a payment that holds
        no reservation; returns the posting's sequence number, or 0 (nothing changed) when the
        debit account cannot cover it."""
        balances = self.balances
        if balances[debit] - amount_minor < self.floors[debit] + self.reserved.get(debit, 0):
            return 0
        balances[debit] -= amount_minor
        balances[credit] += amount_minor
        seq = self.seq = self.seq + 1
        return seq

    def move_run(self, accounts: Sequence[Account], transfers: Sequence[tuple[int, int, int]],
                 amounts: Sequence[int]) -> int:
        """`move` for a run of transfers, in order, stopping at the first that cannot go through;
        returns how many went through (postings with the next sequence numbers).

        Transfer i moves amounts[i] from accounts[d] to accounts[c], where transfers[i] is
        (cap, d, c), and goes through when 0 < amounts[i] <= cap and the debit account covers it.
        Accounts are named by position so that the loop does no hashing; none may hold a
        reservation of the run's payments."""
        balances, floors, reserved = self.balances, self.floors, self.reserved
        running = [balances[a] for a in accounts]
        lowest = [floors[a] + reserved.get(a, 0) for a in accounts]
        n = 0
        for (cap, d, c), amount in zip(transfers, amounts, strict=False):
            if not 0 < amount <= cap:
                break
            left = running[d] - amount
            if left < lowest[d]:
                break
            running[d] = left
            running[c] += amount
            n += 1
        if n:
            for a, bal in zip(accounts, running, strict=True):
                balances[a] = bal
            self.seq += n
        return n

    # ------------------------------------------------------------------ invariants
    def check(self) -> None:
        """Raise InvariantViolation unless per currency all balances sum to zero and every
        account is at or above its floor."""
        sums: dict[str, int] = {}
        for (holder, ccy), bal in self.balances.items():
            sums[ccy] = sums.get(ccy, 0) + bal
            if bal < self.floors[(holder, ccy)]:
                raise InvariantViolation(f"{holder}/{ccy} balance {bal} below floor {self.floors[(holder, ccy)]}")
        for ccy, total in sums.items():
            if total != 0:
                raise InvariantViolation(f"{ccy}: balances sum to {total}, not 0 (money created or lost)")
        per_acct: dict[Account, int] = {}
        for acct, amount in self.reservations.values():
            per_acct[acct] = per_acct.get(acct, 0) + amount
        if per_acct != self.reserved:
            raise InvariantViolation("reservation totals disagree with reservations")

    # ------------------------------------------------------------------ snapshot
    def to_state(self) -> dict[str, Any]:
        return {
            "balances": [[h, c, b, self.floors[(h, c)]] for (h, c), b in self.balances.items()],
            "reservations": [[k, a[0], a[1], amt] for k, (a, amt) in self.reservations.items()],
            "seq": self.seq,
        }

    @staticmethod
    def from_state(state: dict[str, Any]) -> Ledger:
        led = Ledger()
        for h, c, b, f in state["balances"]:
            led.balances[(h, c)] = b
            led.floors[(h, c)] = f
        for k, h, c, amt in state["reservations"]:
            led.reservations[k] = ((h, c), amt)
            led.reserved[(h, c)] = led.reserved.get((h, c), 0) + amt
        led.seq = state["seq"]
        return led
