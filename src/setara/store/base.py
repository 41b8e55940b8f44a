"""The store interface both backends implement, and the rows they keep."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1

# log row: (seq, time_ms, kind, body, hash)
LogRow = tuple[int, int, str, bytes, bytes]
# journal row: (seq, log_seq, payment_id, currency, debit, credit, amount_minor, rate, hash)
JournalRow = tuple[int, int, str, str, str, str, int, str, bytes]


class StoreError(RuntimeError):
    """The store cannot do what was asked (locked, wrong schema, moved under us)."""


def log_hash(prev: bytes, seq: int, time_ms: int, kind: str, body: bytes) -> bytes:
    return hashlib.sha256(prev + f"{seq}|{time_ms}|{kind}|".encode() + body).digest()


PAYMENT_COLUMNS = (
    "id", "debtor", "creditor", "currency", "amount_minor", "to_currency", "credit_minor", "provider",
    "rate", "priority", "status", "reason_code", "reason", "accepted_ms", "updated_ms", "log_seq", "uetr",
    "end_to_end_id", "msg_id", "parties",
)


@dataclass(slots=True)
class PaymentRow:
    id: str
    debtor: str
    creditor: str
    currency: str
    amount_minor: int
    to_currency: str | None
    credit_minor: int | None
    provider: str | None
    rate: str | None
    priority: str
    status: str
    reason_code: str | None
    reason: str | None
    accepted_ms: int
    updated_ms: int
    log_seq: int
    uetr: str | None = None
    end_to_end_id: str | None = None
    msg_id: str | None = None
    parties: bytes | None = None  # operator-private party data (JSON); never in the log

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.id, self.debtor, self.creditor, self.currency, self.amount_minor, self.to_currency,
                self.credit_minor, self.provider, self.rate, self.priority, self.status, self.reason_code,
                self.reason, self.accepted_ms, self.updated_ms, self.log_seq, self.uetr, self.end_to_end_id,
                self.msg_id, self.parties)


@dataclass(slots=True)
class WriteBatch:
    """Everything one group commit writes, atomically."""

    expect_log_seq: int  # the log head this writer last saw: fencing against a second writer
    log: list[LogRow] = field(default_factory=list)
    journal: list[JournalRow] = field(default_factory=list)
    payments: list[PaymentRow] = field(default_factory=list)
    # (status, reason_code, reason, updated_ms, credit_minor, provider, rate, id)
    status_updates: list[tuple[Any, ...]] = field(default_factory=list)
    # (time_ms, source, line_no, payment_id, reason_code, reason)
    rejections: list[tuple[int, str, int, str | None, str, str]] = field(default_factory=list)
    # (log_seq, kind, data-json)
    notices: list[tuple[int, str, bytes]] = field(default_factory=list)
    balances: list[tuple[str, str, int, int]] = field(default_factory=list)
    snapshot: tuple[int, bytes, str] | None = None  # (log_seq, state, state_hash)

    def __bool__(self) -> bool:
        return bool(self.log or self.rejections)


class Store(ABC):
    """A durable home for one network. One writer at a time; any number of readers."""

    url: str

    @abstractmethod
    def exists(self) -> bool:
        """True when the network has been created in this store."""

    @abstractmethod
    def create(self, party_key: bytes) -> None:
        """Create the schema (fails if a network is already there)."""

    @abstractmethod
    def check_schema(self) -> None:
        """Raise StoreError with a clear message unless the schema is current."""

    @abstractmethod
    def upgrade(self) -> list[str]:
        """Migrate the schema to SCHEMA_VERSION; return what was done."""

    @abstractmethod
    def writer(self, timeout_s: float) -> AbstractContextManager[None]:
        """Hold the single-writer lock (waits up to timeout_s, then StoreError)."""

    @abstractmethod
    def meta(self, key: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    @abstractmethod
    def commit(self, batch: WriteBatch) -> None:
        """Write the batch in one durable transaction (fsync before return)."""

    @abstractmethod
    def log_head(self) -> tuple[int, bytes]:
        """(last seq, its hash); (0, genesis) when empty."""

    @abstractmethod
    def iter_log(self, after_seq: int = 0) -> Iterator[LogRow]: ...

    @abstractmethod
    def latest_snapshot(self) -> tuple[int, bytes, str] | None: ...

    @abstractmethod
    def iter_journal(self, after_seq: int = 0) -> Iterator[JournalRow]: ...

    @abstractmethod
    def iter_payments(self, *, member: str | None = None, status: str | None = None,
                      after_id: str | None = None, limit: int | None = None) -> Iterator[PaymentRow]: ...

    @abstractmethod
    def get_payment(self, payment_id: str) -> PaymentRow | None: ...

    @abstractmethod
    def balances(self) -> list[tuple[str, str, int, int]]:
        """(member, currency, balance_minor, available_minor) for every account."""

    @abstractmethod
    def iter_rejections(self) -> Iterator[tuple[int, int, str, int, str | None, str, str]]: ...

    @abstractmethod
    def iter_notices(self, kind: str | None = None, after: int = 0) -> Iterator[tuple[int, int, str, bytes]]: ...

    @abstractmethod
    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on side tables (keys, lists, audit); autocommitted, durable."""

    @abstractmethod
    def close(self) -> None: ...
