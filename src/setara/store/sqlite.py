"""SQLite store: the embedded default. WAL journal, fsync on every group commit."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from setara.ledger import GENESIS
from setara.store.base import (
    PAYMENT_COLUMNS,
    SCHEMA_VERSION,
    JournalRow,
    LogRow,
    PaymentRow,
    Store,
    StoreError,
    WriteBatch,
)

# Each entry migrates from version i to i+1; index 0 creates version 1.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE log (seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
        " body BLOB NOT NULL, hash BLOB NOT NULL)",
        "CREATE TABLE journal (seq INTEGER PRIMARY KEY, log_seq INTEGER NOT NULL, payment_id TEXT NOT NULL,"
        " currency TEXT NOT NULL, debit TEXT NOT NULL, credit TEXT NOT NULL, amount_minor INTEGER NOT NULL,"
        " rate TEXT NOT NULL, hash BLOB NOT NULL)",
        "CREATE INDEX journal_payment ON journal(payment_id)",
        "CREATE TABLE payments (id TEXT PRIMARY KEY, debtor TEXT NOT NULL, creditor TEXT NOT NULL,"
        " currency TEXT NOT NULL, amount_minor INTEGER NOT NULL, to_currency TEXT, credit_minor INTEGER,"
        " provider TEXT, rate TEXT, priority TEXT NOT NULL, status TEXT NOT NULL, reason_code TEXT,"
        " reason TEXT, accepted_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, log_seq INTEGER NOT NULL,"
        " uetr TEXT, end_to_end_id TEXT, msg_id TEXT, parties BLOB)",
        "CREATE INDEX payments_debtor ON payments(debtor)",
        "CREATE INDEX payments_creditor ON payments(creditor)",
        "CREATE INDEX payments_status ON payments(status)",
        "CREATE TABLE rejections (n INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, source TEXT NOT NULL,"
        " line_no INTEGER NOT NULL, payment_id TEXT, reason_code TEXT NOT NULL, reason TEXT NOT NULL)",
        "CREATE TABLE notices (n INTEGER PRIMARY KEY, log_seq INTEGER NOT NULL, kind TEXT NOT NULL,"
        " data BLOB NOT NULL)",
        "CREATE INDEX notices_kind ON notices(kind)",
        "CREATE TABLE balances (member TEXT NOT NULL, currency TEXT NOT NULL, balance_minor INTEGER NOT NULL,"
        " available_minor INTEGER NOT NULL, PRIMARY KEY (member, currency))",
        "CREATE TABLE snapshots (log_seq INTEGER PRIMARY KEY, state BLOB NOT NULL, state_hash TEXT NOT NULL)",
        "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, key_hash TEXT NOT NULL, role TEXT NOT NULL,"
        " member TEXT, created_ms INTEGER NOT NULL, revoked_ms INTEGER)",
        "CREATE TABLE list_versions (n INTEGER PRIMARY KEY, source TEXT NOT NULL, list_date TEXT,"
        " checksum TEXT NOT NULL, imported_ms INTEGER NOT NULL, entities INTEGER NOT NULL, data BLOB NOT NULL)",
        "CREATE TABLE screening_audit (n INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, payment_id TEXT,"
        " subject TEXT NOT NULL, decision TEXT NOT NULL, score REAL NOT NULL, entity_id TEXT, list TEXT,"
        " list_version INTEGER, explanation TEXT NOT NULL)",
        "CREATE INDEX screening_audit_payment ON screening_audit(payment_id)",
    ],
]
assert len(MIGRATIONS) == SCHEMA_VERSION

_PAYMENT_INSERT = (f"INSERT INTO payments ({', '.join(PAYMENT_COLUMNS)}) VALUES "
                   f"({', '.join('?' for _ in PAYMENT_COLUMNS)})")
_STATUS_UPDATE = ("UPDATE payments SET status = ?, reason_code = ?, reason = ?, updated_ms = ?,"
                  " credit_minor = COALESCE(?, credit_minor), provider = COALESCE(?, provider),"
                  " rate = COALESCE(?, rate) WHERE id = ?")


class SqliteStore(Store):
    def __init__(self, path: str) -> None:
        self.url = path
        self.path = Path(path)
        self._lock_file: IO[str] | None = None
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open database {path}: {e}") from None
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, so an acknowledged batch survives power loss.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=OFF")

    # ------------------------------------------------------------------ schema
    def _has_schema(self) -> bool:
        row = self._db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        return row is not None

    def exists(self) -> bool:
        # A network exists once its init command is in the log; a schema left by an init that
        # failed half-way is reused by the next `setara init`.
        return self._has_schema() and self._db.execute("SELECT 1 FROM log LIMIT 1").fetchone() is not None

    def _version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def create(self, party_key: bytes) -> None:
        if self.exists():
            raise StoreError(f"{self.url} already holds a network")
        with self._tx():
            if self._has_schema():
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'party_key'", (party_key.hex(),))
                return
            for stmts in MIGRATIONS:
                for sql in stmts:
                    self._db.execute(sql)
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("INSERT INTO meta VALUES ('party_key', ?)", (party_key.hex(),))

    def check_schema(self) -> None:
        if not self._has_schema() or not self.exists():
            raise StoreError(f"no network in {self.url}: run `setara init --network FILE` first")
        v = self._version()
        if v < SCHEMA_VERSION:
            raise StoreError(f"database schema version {v} is older than {SCHEMA_VERSION}: "
                             "run `setara db upgrade`")
        if v > SCHEMA_VERSION:
            raise StoreError(f"database schema version {v} is newer than this setara ({SCHEMA_VERSION})")

    def upgrade(self) -> list[str]:
        if not self._has_schema():
            raise StoreError(f"no network in {self.url}")
        v = self._version()
        done = []
        with self._tx():
            while v < SCHEMA_VERSION:
                for sql in MIGRATIONS[v]:
                    self._db.execute(sql)
                v += 1
                self._db.execute("UPDATE meta SET value = ? WHERE key='schema_version'", (str(v),))
                done.append(f"migrated to schema version {v}")
        return done

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------------ writer lock
    @contextlib.contextmanager
    def writer(self, timeout_s: float) -> Iterator[None]:
        lock_path = str(self.path) + ".lock"
        f = open(lock_path, "a+")  # noqa: SIM115 - held for the writer's lifetime
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    f.close()
                    raise StoreError(f"another setara process is writing to {self.url}; "
                                     f"gave up after {timeout_s:.0f} s") from None
                time.sleep(0.05)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock_file = f
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            f.close()
            self._lock_file = None

    # ------------------------------------------------------------------ meta
    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------ writes
    def commit(self, batch: WriteBatch) -> None:
        db = self._db
        with self._tx():
            head = db.execute("SELECT COALESCE(MAX(seq), 0) FROM log").fetchone()[0]
            if head != batch.expect_log_seq:
                raise StoreError(f"the log moved under this writer (expected head {batch.expect_log_seq}, "
                                 f"found {head}): another writer is active")
            if batch.log:
                db.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?)", batch.log)
            if batch.journal:
                db.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch.journal)
            if batch.payments:
                db.executemany(_PAYMENT_INSERT, [p.as_tuple() for p in batch.payments])
            if batch.status_updates:
                db.executemany(_STATUS_UPDATE, batch.status_updates)
            if batch.rejections:
                db.executemany("INSERT INTO rejections (time_ms, source, line_no, payment_id, reason_code,"
                               " reason) VALUES (?, ?, ?, ?, ?, ?)", batch.rejections)
            if batch.notices:
                db.executemany("INSERT INTO notices (log_seq, kind, data) VALUES (?, ?, ?)", batch.notices)
            if batch.balances:
                db.executemany("INSERT OR REPLACE INTO balances VALUES (?, ?, ?, ?)", batch.balances)
            if batch.snapshot is not None:
                db.execute("DELETE FROM snapshots")
                db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", batch.snapshot)

    # ------------------------------------------------------------------ reads
    def log_head(self) -> tuple[int, bytes]:
        row = self._db.execute("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))

    def iter_log(self, after_seq: int = 0) -> Iterator[LogRow]:
        cur = self._db.execute("SELECT seq, time_ms, kind, body, hash FROM log WHERE seq > ? ORDER BY seq",
                               (after_seq,))
        while rows := cur.fetchmany(4096):
            for seq, t, kind, body, h in rows:
                # A row edited by hand may come back as TEXT; hash what is stored, whatever its type.
                yield (seq, t, str(kind), _as_bytes(body), _as_bytes(h))

    def latest_snapshot(self) -> tuple[int, bytes, str] | None:
        row = self._db.execute(
            "SELECT log_seq, state, state_hash FROM snapshots ORDER BY log_seq DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def iter_journal(self, after_seq: int = 0) -> Iterator[JournalRow]:
        cur = self._db.execute("SELECT * FROM journal WHERE seq > ? ORDER BY seq", (after_seq,))
        while rows := cur.fetchmany(4096):
            yield from rows

    def iter_payments(self, *, member: str | None = None, status: str | None = None,
                      after_id: str | None = None, limit: int | None = None) -> Iterator[PaymentRow]:
        where, params = _payment_filter(member, status, after_id)
        sql = f"SELECT {', '.join(PAYMENT_COLUMNS)} FROM payments{where} ORDER BY "
        sql += "id" if after_id is not None or limit is not None else "log_seq, rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        cur = self._db.execute(sql, params)
        while rows := cur.fetchmany(4096):
            for r in rows:
                yield PaymentRow(*r)

    def get_payment(self, payment_id: str) -> PaymentRow | None:
        row = self._db.execute(f"SELECT {', '.join(PAYMENT_COLUMNS)} FROM payments WHERE id = ?",
                               (payment_id,)).fetchone()
        return None if row is None else PaymentRow(*row)

    def balances(self) -> list[tuple[str, str, int, int]]:
        return [tuple(r) for r in self._db.execute(  # type: ignore[misc]
            "SELECT member, currency, balance_minor, available_minor FROM balances ORDER BY rowid")]

    def iter_rejections(self) -> Iterator[tuple[int, int, str, int, str | None, str, str]]:
        yield from self._db.execute("SELECT * FROM rejections ORDER BY n")

    def iter_notices(self, kind: str | None = None, after: int = 0) -> Iterator[tuple[int, int, str, bytes]]:
        if kind is None:
            yield from self._db.execute("SELECT * FROM notices WHERE n > ? ORDER BY n", (after,))
        else:
            yield from self._db.execute("SELECT * FROM notices WHERE kind = ? AND n > ? ORDER BY n",
                                        (kind, after))

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._db.execute(sql, params).fetchall()]

    def close(self) -> None:
        self._db.close()


def _as_bytes(v: object) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    return str(v).encode()


def _payment_filter(member: str | None, status: str | None, after_id: str | None
                    ) -> tuple[str, tuple[Any, ...]]:
    clauses, params = [], []
    if member is not None:
        clauses.append("(debtor = ? OR creditor = ?)")
        params += [member, member]
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if after_id is not None:
        clauses.append("id > ?")
        params.append(after_id)
    return ((" WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params))
