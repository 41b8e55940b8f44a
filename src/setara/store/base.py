"""The store interface both backends implement.

What is stored, per group commit (a *block*):
- `log`: the block's commands, hash-chained block to block. The source of truth, what members
  replay. Party names never appear here, only keyed digests.
- `journal`: the postings the block produced, each with its own posting hash chain.
- `events`: the status changes and notices the block produced.
- `intake`: operator-private data of the block's instructions (party names and addresses,
  ISO 20022 references) and the lines refused before reaching the engine.
A block is one transaction, fsynced before any of its instructions is acknowledged. Writing a few
blobs per block instead of several indexed rows per payment is what makes durable submission fast.

Read models (`payments`, `balances`) are projections of the blocks, caught up on demand; `verify`
replays the log and compares every stored block and projection row with what it derives.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 2

PAYMENT_COLUMNS = (
    "id", "debtor", "creditor", "currency", "amount_minor", "to_currency", "credit_minor", "provider",
    "rate", "priority", "status", "reason_code", "reason", "accepted_ms", "updated_ms", "block", "uetr",
    "end_to_end_id", "msg_id", "parties",
)


def payments_query(member: str | None, status: str | None, after_id: str | None, limit: int | None,
                   placeholder: str) -> tuple[str, list[Any]]:
    """The payments read model's one query, for both backends (they differ only in placeholder):
    a member's payments (as debtor or creditor), by status, paged by id, else in block order."""
    clauses: list[str] = []
    params: list[Any] = []
    if member is not None:
        clauses.append(f"(debtor = {placeholder} OR creditor = {placeholder})")
        params += [member, member]
    if status is not None:
        clauses.append(f"status = {placeholder}")
        params.append(status)
    if after_id is not None:
        clauses.append(f"id > {placeholder}")
        params.append(after_id)
    sql = f"SELECT {', '.join(PAYMENT_COLUMNS)} FROM payments"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY id" if (after_id is not None or limit is not None) else " ORDER BY block, rowid"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params


class StoreError(RuntimeError):
    """The store cannot do what was asked (locked, wrong schema, moved under us)."""


def block_hash(prev: bytes, seq: int, first_cmd: int, n_cmds: int, body: bytes) -> bytes:
    return hashlib.sha256(prev + f"{seq}|{first_cmd}|{n_cmds}|".encode() + body).digest()


@dataclass(frozen=True, slots=True)
class Block:
    """One group commit, as written."""

    seq: int
    first_cmd: int  # number of the block's first command in the whole log (from 1)
    n_cmds: int
    time_ms: int
    log: bytes  # JSON [[kind, command], ...]
    hash: bytes
    journal: bytes  # JSON [[seq, payment_id, currency, debit, credit, amount_minor, rate, hash_hex], ...]
    journal_head: bytes
    events: bytes  # JSON {"status": [...], "notices": [...]}
    intake: bytes  # JSON {"payments": [...], "rejections": [...]} (operator-private)


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
    block: int
    uetr: str | None = None
    end_to_end_id: str | None = None
    msg_id: str | None = None
    parties: bytes | None = None

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.id, self.debtor, self.creditor, self.currency, self.amount_minor, self.to_currency,
                self.credit_minor, self.provider, self.rate, self.priority, self.status, self.reason_code,
                self.reason, self.accepted_ms, self.updated_ms, self.block, self.uetr, self.end_to_end_id,
                self.msg_id, self.parties)


@dataclass(slots=True)
class Projection:
    """Rows derived from blocks up to `upto_block`, written together with the watermark."""

    upto_block: int
    inserts: list[PaymentRow]
    # (status, reason_code, reason, updated_ms, credit_minor, provider, rate, id)
    updates: list[tuple[Any, ...]]


class Store(ABC):
    """A durable home for one network. One writer at a time; any number of readers."""

    url: str

    # ---------------------------------------------------------------- schema
    @abstractmethod
    def exists(self) -> bool:
        """True once a network's first block is stored."""

    @abstractmethod
    def create(self, party_key: bytes) -> None:
        """Create the schema (reusing one left by an init that failed before its first block)."""

    @abstractmethod
    def schema_version(self) -> int: ...

    def check_schema(self) -> None:
        if not self.exists():
            raise StoreError(f"no network in {self.url}: run `setara init --network FILE` first")
        v = self.schema_version()
        if v < SCHEMA_VERSION:
            raise StoreError(f"database schema version {v} is older than this setara's ({SCHEMA_VERSION}): "
                             "run `setara db upgrade`")
        if v > SCHEMA_VERSION:
            raise StoreError(f"database schema version {v} is newer than this setara's ({SCHEMA_VERSION}): "
                             "upgrade setara")

    @abstractmethod
    def upgrade(self) -> list[str]:
        """Migrate to SCHEMA_VERSION; return what was done."""

    # ---------------------------------------------------------------- writing
    @abstractmethod
    def writer(self, timeout_s: float) -> AbstractContextManager[None]:
        """Hold the single-writer lock (waits up to timeout_s, then StoreError)."""

    @abstractmethod
    def append(self, block: Block, balances: list[tuple[str, str, int, int]],
               snapshot: tuple[int, bytes, str] | None) -> None:
        """Write one block durably (fsync before return). Refuses unless block.seq follows the
        stored head: a second writer can never fork the log."""

    @abstractmethod
    def write_snapshot(self, snapshot: tuple[int, bytes, str], balances: list[tuple[str, str, int, int]]) -> None:
        ...

    @abstractmethod
    def project(self, projection: Projection, after_block: int) -> bool:
        """Write projected rows and move the watermark from after_block; False (nothing written)
        when another process moved it first."""

    @abstractmethod
    def meta(self, key: str) -> str | None: ...

    # ---------------------------------------------------------------- reading
    @abstractmethod
    def head(self) -> tuple[int, int, bytes, bytes]:
        """(last block seq, commands so far, block hash, journal head); zeros when empty."""

    @abstractmethod
    def iter_blocks(self, after_seq: int = 0) -> Iterator[Block]: ...

    @abstractmethod
    def block_hash_at(self, seq: int) -> tuple[bytes, bytes] | None:
        """(block hash, journal head) of block `seq`."""

    @abstractmethod
    def latest_snapshot(self) -> tuple[int, bytes, str] | None:
        """(block seq, state, sha256 of state)."""

    def projected_upto(self) -> int:
        v = self.meta("projected_upto")
        return int(v) if v else 0

    @abstractmethod
    def iter_payments(self, *, member: str | None = None, status: str | None = None,
                      after_id: str | None = None, limit: int | None = None) -> Iterator[PaymentRow]: ...

    @abstractmethod
    def get_payment(self, payment_id: str) -> PaymentRow | None: ...

    @abstractmethod
    def balances(self) -> list[tuple[str, str, int, int]]:
        """(member, currency, balance_minor, available_minor) as of the last block."""

    # ---------------------------------------------------------------- screening index
    @abstractmethod
    def get_list_index(self, key: str, fingerprint: str) -> bytes | None:
        """The persisted screening index for a combination of list versions (`key`, e.g.
        "un-xml@3"), or None when there is none built by matcher code with this fingerprint."""

    @abstractmethod
    def put_list_index(self, key: str, fingerprint: str, data: bytes, created_ms: int) -> None:
        """Persist (or replace) the screening index for `key`."""

    @abstractmethod
    def add_screening_audit(self, time_ms: int, subject: str, decision: str, explanation: str,
                            list_source: str | None = None, list_version: int | None = None) -> None:
        """One compliance record not tied to a payment (e.g. an officer forcing a list import)."""

    @abstractmethod
    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement on side tables (keys, lists, audit), autocommitted. Placeholders are `?`."""

    @abstractmethod
    def close(self) -> None: ...
