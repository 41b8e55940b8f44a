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

import contextlib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import orjson

SCHEMA_VERSION = 4

# The account entries read model (schema version 3): one row per posting and side, with the
# account's balance after it and the business day it was booked in. Statements page it.
ENTRY_COLUMNS = ("member", "currency", "seq", "block", "payment_id", "amount_minor", "credit", "counterparty",
                 "time_ms", "business_day", "balance_after_minor")

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


@dataclass(frozen=True, slots=True)
class Base:
    """Where a member's node that started from a quorum-signed snapshot begins: the block it holds
    the state after, without holding that block or any before it."""

    seq: int
    cmds: int  # commands in the log up to and including block `seq`
    hash: bytes
    journal_head: bytes
    time_ms: int
    epoch: int

    def to_json(self) -> str:
        return orjson.dumps({"seq": self.seq, "cmds": self.cmds, "hash": self.hash.hex(),
                             "journal_head": self.journal_head.hex(), "time_ms": self.time_ms,
                             "epoch": self.epoch}).decode()

    @classmethod
    def from_json(cls, text: str) -> Base:
        d = orjson.loads(text)
        return cls(int(d["seq"]), int(d["cmds"]), bytes.fromhex(d["hash"]), bytes.fromhex(d["journal_head"]),
                   int(d["time_ms"]), int(d["epoch"]))


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


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One side of one posting on one account, as the entries read model holds it."""

    member: str
    currency: str
    seq: int  # journal sequence number of the posting
    block: int
    payment_id: str
    amount_minor: int  # > 0; the direction is `credit`
    credit: bool
    counterparty: str
    time_ms: int
    business_day: int
    balance_after_minor: int
    uetr: str | None = None  # from the payments read model, when the posting belongs to a payment
    end_to_end_id: str | None = None

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.member, self.currency, self.seq, self.block, self.payment_id, self.amount_minor,
                int(self.credit), self.counterparty, self.time_ms, self.business_day, self.balance_after_minor)


@dataclass(frozen=True, slots=True)
class EntryRange:
    """Which entries of an account a statement covers: all, one business day, or a time range
    [from_ms, to_ms)."""

    business_day: int | None = None
    from_ms: int | None = None
    to_ms: int | None = None


def _range_sql(r: EntryRange) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if r.business_day is not None:
        clauses.append("business_day = ?")
        params.append(r.business_day)
    if r.from_ms is not None:
        clauses.append("time_ms >= ?")
        params.append(r.from_ms)
    if r.to_ms is not None:
        clauses.append("time_ms < ?")
        params.append(r.to_ms)
    return "".join(" AND " + c for c in clauses), params


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

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """For a member's node replaying blocks it can fetch again: inside, each `append` still
        commits atomically and in order, but does not wait for its own fsync; leaving, one durable
        commit makes every block before it durable too (also when leaving on an error, so a block
        that failed its checks leaves the store at the last good one). A killed process loses
        nothing committed; a power loss may lose a suffix of these blocks, never a middle one, and
        the node replays them again from the stream. Nothing may be signed or acknowledged from
        inside: the writer, which acknowledges, never uses it."""
        self._fsync_each_commit(False)
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is the one to report
                self._sync_now()
            raise
        self._sync_now()

    def _sync_now(self) -> None:
        self._fsync_each_commit(True)
        # A commit that writes something is what flushes the log up to it (an empty one does not).
        self._put_meta("synced_upto", str(self.head()[0]))

    def _fsync_each_commit(self, on: bool) -> None:  # noqa: B027 - a backend without the choice syncs always
        """Whether a commit waits for its fsync (the default, and after deferred_sync)."""

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
    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement, autocommitted; placeholders are `?`. Private: callers outside the store
        use the named methods below, so every statement the product runs lives in this package."""

    # ---------------------------------------------------------------- payments read model
    def payment_parties(self, payment_id: str) -> dict[str, Any] | None:
        """The party data (names, addresses, countries) an instruction carried; operator-private."""
        rows = self._query("SELECT parties FROM payments WHERE id = ?", (payment_id,))
        if not rows or not rows[0][0]:
            return None
        parties: dict[str, Any] = orjson.loads(bytes(rows[0][0]))
        return parties

    def payment_counts(self) -> dict[str, int]:
        """Payments by current status."""
        return {str(st): int(n) for st, n in self._query("SELECT status, COUNT(*) FROM payments GROUP BY status")}

    def settlement_latency(self, buckets_ms: tuple[int, ...]) -> tuple[int, int, list[int]]:
        """Settled payments: (count, total ms from acceptance to settlement, count within each bucket)."""
        cases = ", ".join(f"SUM(CASE WHEN updated_ms - accepted_ms <= {int(b)} THEN 1 ELSE 0 END)"
                          for b in buckets_ms)
        row = self._query(f"SELECT COUNT(*), COALESCE(SUM(updated_ms - accepted_ms), 0), {cases} FROM payments"
                          " WHERE status = 'SETTLED'")[0]
        return int(row[0]), int(row[1]), [int(n or 0) for n in row[2:]]

    def settled_per_minute(self, since_ms: int) -> dict[int, int]:
        """Payments settled per minute (minute number since the epoch -> count) since `since_ms`."""
        return {int(r[0]): int(r[1]) for r in self._query(
            "SELECT updated_ms / 60000, COUNT(*) FROM payments WHERE status = 'SETTLED' AND updated_ms >= ?"
            " GROUP BY updated_ms / 60000", (since_ms,))}

    def settled_flows(self) -> list[tuple[str, str, str, int]]:
        """Settled value by (currency, payer, payee), FX legs included: what liquidity use is
        computed from."""
        rows = self._query(
            "SELECT currency, debtor, COALESCE(provider, creditor), SUM(amount_minor) FROM payments"
            " WHERE status = 'SETTLED' GROUP BY 1, 2, 3"
            " UNION ALL SELECT to_currency, provider, creditor, SUM(credit_minor) FROM payments"
            " WHERE status = 'SETTLED' AND provider IS NOT NULL AND to_currency IS NOT NULL GROUP BY 1, 2, 3")
        return [(str(c), str(d), str(cr), int(a)) for c, d, cr, a in rows if c is not None and a is not None]

    # ---------------------------------------------------------------- account entries read model
    def entries_upto(self) -> tuple[int, int]:
        """(last block reflected in the entries read model, business day in force after it)."""
        upto = self.meta("entries_upto")
        day = self.meta("entries_day")
        return (int(upto) if upto else 0), (int(day) if day else 1)

    @abstractmethod
    def project_entries(self, rows: list[EntryRow], upto_block: int, business_day: int, after_block: int) -> bool:
        """Write entry rows and move the entries watermark from after_block, in one transaction;
        False (nothing written) when another reader moved it first."""

    def last_entry_balances(self) -> dict[tuple[str, str], int]:
        """Each account's balance after its last projected entry."""
        rows = self._query(
            "SELECT e.member, e.currency, e.balance_after_minor FROM account_entries e"
            " JOIN (SELECT member, currency, MAX(seq) AS seq FROM account_entries GROUP BY member, currency) m"
            " ON m.member = e.member AND m.currency = e.currency AND m.seq = e.seq")
        return {(str(m), str(c)): int(b) for m, c, b in rows}

    def entries_page(self, member: str, currency: str, rng: EntryRange, *, after_seq: int = 0,
                     offset: int = 0, limit: int) -> list[EntryRow]:
        """An account's entries in `rng`, in posting order: those after journal seq `after_seq`,
        skipping `offset`, at most `limit`, with the payment's references."""
        where, params = _range_sql(rng)
        rows = self._query(
            "SELECT e.member, e.currency, e.seq, e.block, e.payment_id, e.amount_minor, e.credit, e.counterparty,"
            " e.time_ms, e.business_day, e.balance_after_minor, p.uetr, p.end_to_end_id FROM account_entries e"
            " LEFT JOIN payments p ON p.id = e.payment_id"
            f" WHERE e.member = ? AND e.currency = ? AND e.seq > ?{where.replace(' AND ', ' AND e.')}"
            f" ORDER BY e.seq LIMIT {int(limit)} OFFSET {int(offset)}",
            (member, currency, after_seq, *params))
        return [EntryRow(str(r[0]), str(r[1]), int(r[2]), int(r[3]), str(r[4]), int(r[5]), bool(r[6]), str(r[7]),
                         int(r[8]), int(r[9]), int(r[10]), r[11], r[12]) for r in rows]

    def posting_entries(self, payment_id: str, accounts: Sequence[tuple[str, str]]) -> list[EntryRow]:
        """The entries of the posting(s) named `payment_id` on these accounts, in posting order.
        Each account is one range of the primary key, so asking a settlement agent's issuance
        account (openings and fundings only) finds a funding again without scanning the table."""
        out: list[EntryRow] = []
        for member, currency in accounts:
            rows = self._query(
                "SELECT member, currency, seq, block, payment_id, amount_minor, credit, counterparty, time_ms,"
                " business_day, balance_after_minor FROM account_entries"
                " WHERE member = ? AND currency = ? AND payment_id = ? ORDER BY seq LIMIT 16",
                (member, currency, payment_id))
            out.extend(EntryRow(str(r[0]), str(r[1]), int(r[2]), int(r[3]), str(r[4]), int(r[5]), bool(r[6]),
                                str(r[7]), int(r[8]), int(r[9]), int(r[10])) for r in rows)
        return sorted(out, key=lambda e: (e.seq, e.credit))

    def entries_count(self, member: str, currency: str, rng: EntryRange) -> int:
        where, params = _range_sql(rng)
        rows = self._query(f"SELECT COUNT(*) FROM account_entries WHERE member = ? AND currency = ?{where}",
                           (member, currency, *params))
        return int(rows[0][0]) if rows else 0

    def balance_before(self, member: str, currency: str, *, seq: int | None = None, business_day: int | None = None,
                       time_ms: int | None = None) -> int:
        """The account's balance just before journal seq `seq`, business day `business_day` or time
        `time_ms` (one of them): what an entries range opens with."""
        if seq is not None:
            cond, order, v = "seq < ?", "seq DESC", seq
        elif business_day is not None:
            cond, order, v = "business_day < ?", "business_day DESC, seq DESC", business_day
        elif time_ms is not None:
            cond, order, v = "time_ms < ?", "time_ms DESC, seq DESC", time_ms
        else:
            raise ValueError("give seq, business_day or time_ms")
        rows = self._query(f"SELECT balance_after_minor FROM account_entries WHERE member = ? AND currency = ?"
                           f" AND {cond} ORDER BY {order} LIMIT 1", (member, currency, v))
        return int(rows[0][0]) if rows else 0

    # ---------------------------------------------------------------- sanctions list versions
    def list_version_of(self, source: str, checksum: str) -> tuple[int, int] | None:
        """(version, imported_ms) of the newest import of this exact file, if it is the source's
        latest version."""
        rows = self._query("SELECT n, imported_ms FROM list_versions WHERE source = ? AND checksum = ? "
                           "ORDER BY n DESC LIMIT 1", (source, checksum))
        latest = self._query("SELECT MAX(n) FROM list_versions WHERE source = ?", (source,))
        if rows and latest and rows[0][0] == latest[0][0]:
            return int(rows[0][0]), int(rows[0][1])
        return None

    def add_list_version(self, source: str, list_date: str | None, checksum: str, imported_ms: int,
                         entities: int, data: bytes) -> int:
        self._query("INSERT INTO list_versions (source, list_date, checksum, imported_ms, entities, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (source, list_date, checksum, imported_ms, entities, data))
        return int(self._query("SELECT MAX(n) FROM list_versions WHERE source = ?", (source,))[0][0])

    def latest_list_versions(self) -> list[tuple[int, str, str | None, str, int, int]]:
        """(version, source, list date, sha256, imported_ms, entities) of each source's latest."""
        rows = self._query("SELECT n, source, list_date, checksum, imported_ms, entities FROM list_versions "
                           "WHERE n IN (SELECT MAX(n) FROM list_versions GROUP BY source) ORDER BY source")
        return [(int(r[0]), str(r[1]), r[2], str(r[3]), int(r[4]), int(r[5])) for r in rows]

    def list_data(self, version: int) -> bytes:
        return bytes(self._query("SELECT data FROM list_versions WHERE n = ?", (version,))[0][0])

    def lists_version(self) -> int:
        """The newest list version of any source (0: none loaded): what a server polls for."""
        rows = self._query("SELECT COALESCE(MAX(n), 0) FROM list_versions")
        return int(rows[0][0]) if rows else 0

    # ---------------------------------------------------------------- screening cache
    # Which names the matcher cleared under which list versions (issue 17): operator-private, like
    # the intake. One row per batch of newly screened names and list-version set, so a run stores
    # a handful of rows, not one per name; a new list version simply finds no row for it.
    def add_screened(self, refs: str, entries: list[tuple[str, str, bool]]) -> None:
        """Record (name, country, cleared) decisions made under the list versions `refs`."""
        self._query("INSERT INTO screening_cache (refs, body) VALUES (?, ?)", (refs, orjson.dumps(entries)))

    def screened(self, refs: list[str], entries_max: int) -> dict[tuple[str, str, str], bool]:
        """The recorded decisions under any of the list versions `refs`, up to `entries_max`."""
        out: dict[tuple[str, str, str], bool] = {}
        for r in sorted(set(refs)):
            for (body,) in self._query("SELECT body FROM screening_cache WHERE refs = ? ORDER BY n", (r,)):
                for name, country, ok in orjson.loads(bytes(body)):
                    out[(r, name, country)] = bool(ok)
                    if len(out) >= entries_max:
                        return out
        return out

    # ---------------------------------------------------------------- member nodes
    # Checkpoints and proofs are small JSON documents kept in `meta` (one row each): a node needs
    # the latest final checkpoint, its own latest one, and the equivocation proofs it holds.
    PROOFS_MAX = 100

    def _put_meta(self, key: str, value: str) -> None:
        self._query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def node_role(self) -> str:
        """'follower' for a member's node (replayed from the stream, no party data), else 'writer'."""
        return self.meta("role") or "writer"

    def set_node_role(self, role: str) -> None:
        self._put_meta("role", role)

    def become_writer(self, replicated_upto: int) -> None:
        """A standby's replica becomes the sequencer's store: blocks up to `replicated_upto` came
        from the stream without party data."""
        self._put_meta("replicated_upto", str(replicated_upto))
        self._put_meta("role", "writer")

    def replicated_upto(self) -> int:
        """Blocks up to this one were replicated from the stream (0: this store wrote them all)."""
        v = self.meta("replicated_upto")
        return int(v) if v else 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the last block a member's node applied (from its signed header)."""
        if self.meta("epoch") != str(epoch):
            self._put_meta("epoch", str(epoch))

    def base(self) -> Base | None:
        """The snapshot this store started from (None: it holds the log from block 1). Fixed once set."""
        if not hasattr(self, "_base_cache"):
            v = self.meta("base")
            self._base_cache = None if v is None else Base.from_json(v)
        return self._base_cache

    def base_snapshot(self) -> tuple[int, bytes, str] | None:
        """The snapshot this store started from, as `latest_snapshot` gives one (kept for good)."""
        b = self.base()
        if b is None:
            return None
        rows = self._query("SELECT block, state, state_hash FROM snapshots WHERE block = ?", (b.seq,))
        return None if not rows else (int(rows[0][0]), bytes(rows[0][1]), str(rows[0][2]))

    def _base_seq(self) -> int:
        b = self.base()
        return 0 if b is None else b.seq

    def _base_head(self) -> tuple[int, int, bytes, bytes]:
        b = self.base()
        return (0, 0, bytes(32), bytes(32)) if b is None else (b.seq, b.cmds, b.hash, b.journal_head)

    def start_from(self, base: Base, snapshot: tuple[int, bytes, str],
                   balances: list[tuple[str, str, int, int]]) -> None:
        """Make this new, empty store begin after `base`, in the state `snapshot` (taken there):
        the blocks it then appends start at base.seq + 1. The projections start there too."""
        if self.exists():
            raise StoreError(f"{self.url} already holds a log: a snapshot is only a new node's start")
        self.write_snapshot(snapshot, balances)
        self._put_meta("projected_upto", str(base.seq))
        # Written last: until it is, the store holds no log and a new start begins again.
        self._put_meta("base", base.to_json())
        self.__dict__.pop("_base_cache", None)

    def checkpoint(self, kind: str) -> bytes | None:
        """The stored checkpoint JSON of `kind`: 'final' (latest with a quorum) or 'latest'."""
        v = self.meta(f"checkpoint:{kind}")
        return None if v is None else v.encode()

    def save_checkpoint(self, kind: str, doc: bytes) -> None:
        self._put_meta(f"checkpoint:{kind}", doc.decode())

    def proofs(self) -> list[Any]:
        v = self.meta("proofs")
        return [] if v is None else list(orjson.loads(v))

    def add_proof(self, proof: Any) -> None:
        """Keep an equivocation proof (deduplicated, at most PROOFS_MAX)."""
        proofs = self.proofs()
        if proof not in proofs and len(proofs) < self.PROOFS_MAX:
            proofs.append(proof)
            self._put_meta("proofs", orjson.dumps(proofs).decode())

    # ---------------------------------------------------------------- API keys
    def api_key_exists(self, key_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM api_keys WHERE key_id = ?", (key_id,)))

    def add_api_key(self, key_id: str, key_hash: str, role: str, member: str | None, created_ms: int) -> None:
        self._query("INSERT INTO api_keys (key_id, key_hash, role, member, created_ms, revoked_ms)"
                    " VALUES (?, ?, ?, ?, ?, NULL)", (key_id, key_hash, role, member, created_ms))

    def api_key(self, key_id: str) -> tuple[str, str, str | None, int | None] | None:
        """(key hash, role, member, revoked_ms) of a key id."""
        rows = self._query("SELECT key_hash, role, member, revoked_ms FROM api_keys WHERE key_id = ?", (key_id,))
        if not rows:
            return None
        h, role, member, revoked = rows[0]
        return str(h), str(role), member, None if revoked is None else int(revoked)

    def revoke_api_key(self, key_id: str, time_ms: int) -> None:
        self._query("UPDATE api_keys SET revoked_ms = ? WHERE key_id = ?", (time_ms, key_id))

    def api_keys(self) -> list[tuple[str, str, str | None, int, int | None]]:
        """(key id, role, member, created_ms, revoked_ms) of every key, oldest first."""
        return [(str(r[0]), str(r[1]), r[2], int(r[3]), None if r[4] is None else int(r[4]))
                for r in self._query("SELECT key_id, role, member, created_ms, revoked_ms FROM api_keys"
                                     " ORDER BY created_ms, key_id")]

    @abstractmethod
    def close(self) -> None: ...
