"""SQLite store: the embedded default. WAL journal, fsync on every block."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from setara.store import NoDatabaseError
from setara.store.base import (
    ENTRY_COLUMNS,
    PAYMENT_COLUMNS,
    SCHEMA_VERSION,
    Block,
    EntryRow,
    PaymentRow,
    Projection,
    Store,
    StoreError,
    payments_query,
)

# MIGRATIONS[i] takes the schema from version i to i+1 (index 0 creates version 1).
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE log (seq INTEGER PRIMARY KEY, first_cmd INTEGER NOT NULL, n_cmds INTEGER NOT NULL,"
        " time_ms INTEGER NOT NULL, body BLOB NOT NULL, hash BLOB NOT NULL)",
        "CREATE TABLE journal (block INTEGER PRIMARY KEY, body BLOB NOT NULL, head BLOB NOT NULL)",
        "CREATE TABLE events (block INTEGER PRIMARY KEY, body BLOB NOT NULL)",
        "CREATE TABLE intake (block INTEGER PRIMARY KEY, body BLOB NOT NULL)",
        "CREATE TABLE payments (id TEXT PRIMARY KEY, debtor TEXT NOT NULL, creditor TEXT NOT NULL,"
        " currency TEXT NOT NULL, amount_minor INTEGER NOT NULL, to_currency TEXT, credit_minor INTEGER,"
        " provider TEXT, rate TEXT, priority TEXT NOT NULL, status TEXT NOT NULL, reason_code TEXT,"
        " reason TEXT, accepted_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, block INTEGER NOT NULL,"
        " uetr TEXT, end_to_end_id TEXT, msg_id TEXT, parties BLOB)",
        "CREATE INDEX payments_debtor ON payments(debtor, id)",
        "CREATE INDEX payments_creditor ON payments(creditor, id)",
        "CREATE INDEX payments_status ON payments(status)",
        "CREATE INDEX payments_uetr ON payments(uetr)",
        "CREATE TABLE balances (member TEXT NOT NULL, currency TEXT NOT NULL, balance_minor INTEGER NOT NULL,"
        " available_minor INTEGER NOT NULL, PRIMARY KEY (member, currency))",
        "CREATE TABLE snapshots (block INTEGER PRIMARY KEY, state BLOB NOT NULL, state_hash TEXT NOT NULL)",
        "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, key_hash TEXT NOT NULL, role TEXT NOT NULL,"
        " member TEXT, created_ms INTEGER NOT NULL, revoked_ms INTEGER)",
        "CREATE TABLE list_versions (n INTEGER PRIMARY KEY, source TEXT NOT NULL, list_date TEXT,"
        " checksum TEXT NOT NULL, imported_ms INTEGER NOT NULL, entities INTEGER NOT NULL,"
        " data BLOB NOT NULL)",
        "CREATE TABLE screening_audit (n INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, payment_id TEXT,"
        " subject TEXT NOT NULL, decision TEXT NOT NULL, score REAL NOT NULL, entity_id TEXT, list TEXT,"
        " list_version INTEGER, explanation TEXT NOT NULL)",
        "CREATE INDEX screening_audit_payment ON screening_audit(payment_id)",
    ],
    [
        # Built screening indexes, keyed by the list versions they cover; the fingerprint names the
        # matcher code that built one, so an upgrade of the matcher never reads an older index.
        "CREATE TABLE list_indexes (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
        " created_ms INTEGER NOT NULL, data BLOB NOT NULL)",
    ],
    [  # 3: the account entries read model, caught up from the first block by its own watermark
        "CREATE TABLE account_entries (member TEXT NOT NULL, currency TEXT NOT NULL, seq INTEGER NOT NULL,"
        " block INTEGER NOT NULL, payment_id TEXT NOT NULL, amount_minor INTEGER NOT NULL, credit INTEGER NOT NULL,"
        " counterparty TEXT NOT NULL, time_ms INTEGER NOT NULL, business_day INTEGER NOT NULL,"
        " balance_after_minor INTEGER NOT NULL, PRIMARY KEY (member, currency, seq)) WITHOUT ROWID",
        "CREATE INDEX account_entries_day ON account_entries(member, currency, business_day, seq)",
        "CREATE INDEX account_entries_time ON account_entries(member, currency, time_ms, seq)",
        "INSERT OR IGNORE INTO meta VALUES ('entries_upto', '0')",
        "INSERT OR IGNORE INTO meta VALUES ('entries_day', '1')",
    ],
    [  # 4: the screening cache of issue 17 (Store.add_screened)
        "CREATE TABLE screening_cache (n INTEGER PRIMARY KEY, refs TEXT NOT NULL, body BLOB NOT NULL)",
        "CREATE INDEX screening_cache_refs ON screening_cache(refs)",
    ],
]
assert len(MIGRATIONS) == SCHEMA_VERSION

WAL_CHECKPOINT_PAGES = 1000  # SQLite's default
DEFERRED_CHECKPOINT_PAGES = 10_000  # inside Store.deferred_sync

_PAYMENT_INSERT = (f"INSERT OR REPLACE INTO payments ({', '.join(PAYMENT_COLUMNS)}) VALUES "
                   f"({', '.join('?' for _ in PAYMENT_COLUMNS)})")
_ENTRY_INSERT = (f"INSERT OR REPLACE INTO account_entries ({', '.join(ENTRY_COLUMNS)}) VALUES "
                 f"({', '.join('?' for _ in ENTRY_COLUMNS)})")
_STATUS_UPDATE = ("UPDATE payments SET status = ?, reason_code = ?, reason = ?, updated_ms = ?,"
                  " credit_minor = COALESCE(?, credit_minor), provider = COALESCE(?, provider),"
                  " rate = COALESCE(?, rate) WHERE id = ?")


class SqliteStore(Store):
    def __init__(self, path: str, *, create: bool = False) -> None:
        self.url = path
        self.path = Path(path)
        if not create and not self.path.exists():
            raise NoDatabaseError(f"no Setara database at {path}; run setara init")
        # Without create, mode=rw: SQLite opens the file or fails, never makes a new one (also
        # if the file goes away between the check above and here).
        target, uri = (path, False) if create else (f"{self.path.resolve().as_uri()}?mode=rw", True)
        try:
            self._db = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=30.0,
                                       uri=uri)
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as e:
            if not create and not self.path.exists():
                raise NoDatabaseError(f"no Setara database at {path}; run setara init") from None
            raise StoreError(f"cannot open database {path}: {e}") from None
        # FULL: the WAL is fsynced at every commit, so an acknowledged block survives power loss.
        self._db.execute("PRAGMA synchronous=FULL")

    # ------------------------------------------------------------------ schema
    def _has_table(self, name: str) -> bool:
        row = self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
        return row is not None

    def exists(self) -> bool:
        return self._has_table("log") and (self._db.execute("SELECT 1 FROM log LIMIT 1").fetchone() is not None
                                           or self.meta("base") is not None)

    def schema_version(self) -> int:
        if not self._has_table("meta"):
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def create(self, party_key: bytes) -> None:
        if self.exists():
            raise StoreError(f"{self.url} already holds a network")
        with self._tx():
            if self.schema_version() == 0:
                for stmts in MIGRATIONS:
                    for sql in stmts:
                        self._db.execute(sql)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('party_key', ?)", (party_key.hex(),))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('projected_upto', '0')")

    def upgrade(self) -> list[str]:
        v = self.schema_version()
        if v == 0:
            raise StoreError(f"no network in {self.url}")
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
        # An OS file lock, released by the kernel if the process dies: no stale locks after kill -9.
        f: IO[str] = open(str(self.path) + ".lock", "a+")  # noqa: SIM115 - held for the writer's lifetime
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
        try:
            f.truncate(0)
            f.write(str(os.getpid()))
            f.flush()
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            f.close()

    # ------------------------------------------------------------------ writes
    def append(self, block: Block, balances: list[tuple[str, str, int, int]],
               snapshot: tuple[int, bytes, str] | None) -> None:
        db = self._db
        with self._tx():
            row = db.execute("SELECT seq FROM log ORDER BY seq DESC LIMIT 1").fetchone()
            head = self._base_seq() if row is None else int(row[0])
            if head != block.seq - 1:
                raise StoreError(f"the log moved under this writer (expected block {block.seq - 1}, found "
                                 f"{head}): another writer is active")
            db.execute("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?)",
                       (block.seq, block.first_cmd, block.n_cmds, block.time_ms, block.log, block.hash))
            db.execute("INSERT INTO journal VALUES (?, ?, ?)", (block.seq, block.journal, block.journal_head))
            db.execute("INSERT INTO events VALUES (?, ?)", (block.seq, block.events))
            db.execute("INSERT INTO intake VALUES (?, ?)", (block.seq, block.intake))
            if balances:
                db.executemany("INSERT OR REPLACE INTO balances VALUES (?, ?, ?, ?)", balances)
            if snapshot is not None:
                db.execute("DELETE FROM snapshots WHERE block > ?", (self._base_seq(),))
                db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", snapshot)

    def _fsync_each_commit(self, on: bool) -> None:
        # NORMAL in WAL mode: a commit is atomic and survives a killed process, and is fsynced at
        # the next FULL commit or checkpoint. Checkpoints fsync too, so they come less often
        # meanwhile (the WAL grows to ~40 MB between them, not 4 MB).
        self._db.execute(f"PRAGMA synchronous={'FULL' if on else 'NORMAL'}")
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES if on else DEFERRED_CHECKPOINT_PAGES}")

    def write_snapshot(self, snapshot: tuple[int, bytes, str], balances: list[tuple[str, str, int, int]]) -> None:
        with self._tx():
            # A node that started from a snapshot keeps it: its replay (verify, audit) starts there.
            self._db.execute("DELETE FROM snapshots WHERE block > ?", (self._base_seq(),))
            self._db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", snapshot)
            self._db.executemany("INSERT OR REPLACE INTO balances VALUES (?, ?, ?, ?)", balances)

    def project(self, projection: Projection, after_block: int) -> bool:
        db = self._db
        with self._tx():
            if self.projected_upto() != after_block:
                return False
            if projection.inserts:
                db.executemany(_PAYMENT_INSERT, [p.as_tuple() for p in projection.inserts])
            if projection.updates:
                db.executemany(_STATUS_UPDATE, projection.updates)
            db.execute("UPDATE meta SET value = ? WHERE key = 'projected_upto'", (str(projection.upto_block),))
        return True

    def project_entries(self, rows: list[EntryRow], upto_block: int, business_day: int, after_block: int) -> bool:
        db = self._db
        # The entries are derived from the blocks and move with their watermark: a power loss can
        # only lose the last catch-ups, which are then done again. So these commits need not wait
        # for an fsync (WAL keeps them atomic), and they leave the disk to the writer's commits.
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._tx():
                if self.entries_upto()[0] != after_block:
                    return False
                if rows:
                    db.executemany(_ENTRY_INSERT, [r.as_tuple() for r in rows])
                db.execute("UPDATE meta SET value = ? WHERE key = 'entries_upto'", (str(upto_block),))
                db.execute("UPDATE meta SET value = ? WHERE key = 'entries_day'", (str(business_day),))
        finally:
            db.execute("PRAGMA synchronous=FULL")
        return True

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # ------------------------------------------------------------------ reads
    def head(self) -> tuple[int, int, bytes, bytes]:
        row = self._db.execute(
            "SELECT l.seq, l.first_cmd + l.n_cmds - 1, l.hash, j.head FROM log l LEFT JOIN journal j"
            " ON j.block = l.seq ORDER BY l.seq DESC LIMIT 1").fetchone()
        if row is None:
            return self._base_head()
        return (int(row[0]), int(row[1]), _as_bytes(row[2]), _as_bytes(row[3] if row[3] is not None else b""))

    def iter_blocks(self, after_seq: int = 0) -> Iterator[Block]:
        cur = self._db.execute(
            "SELECT l.seq, l.first_cmd, l.n_cmds, l.time_ms, l.body, l.hash, j.body, j.head, e.body, i.body"
            " FROM log l LEFT JOIN journal j ON j.block = l.seq LEFT JOIN events e ON e.block = l.seq"
            " LEFT JOIN intake i ON i.block = l.seq WHERE l.seq > ? ORDER BY l.seq", (after_seq,))
        while rows := cur.fetchmany(64):
            for r in rows:
                # A row edited by hand may come back as TEXT or NULL; hand over what is stored.
                yield Block(int(r[0]), int(r[1]), int(r[2]), int(r[3]), _as_bytes(r[4]), _as_bytes(r[5]),
                            _as_bytes(r[6]), _as_bytes(r[7]), _as_bytes(r[8]), _as_bytes(r[9]))

    def block_hash_at(self, seq: int) -> tuple[bytes, bytes] | None:
        row = self._db.execute("SELECT l.hash, j.head FROM log l LEFT JOIN journal j ON j.block = l.seq"
                               " WHERE l.seq = ?", (seq,)).fetchone()
        if row is None:
            base = self.base()
            return (base.hash, base.journal_head) if base is not None and base.seq == seq else None
        return (_as_bytes(row[0]), _as_bytes(row[1]))

    def latest_snapshot(self) -> tuple[int, bytes, str] | None:
        row = self._db.execute(
            "SELECT block, state, state_hash FROM snapshots ORDER BY block DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), _as_bytes(row[1]), str(row[2]))

    def iter_payments(self, *, member: str | None = None, status: str | None = None,
                      after_id: str | None = None, limit: int | None = None) -> Iterator[PaymentRow]:
        sql, params = payments_query(member, status, after_id, limit, "?")
        cur = self._db.execute(sql, params)
        while rows := cur.fetchmany(4096):
            for r in rows:
                yield PaymentRow(*r)

    def get_payment(self, payment_id: str) -> PaymentRow | None:
        row = self._db.execute(f"SELECT {', '.join(PAYMENT_COLUMNS)} FROM payments WHERE id = ?",
                               (payment_id,)).fetchone()
        return None if row is None else PaymentRow(*row)

    def balances(self) -> list[tuple[str, str, int, int]]:
        return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in self._db.execute(
            "SELECT member, currency, balance_minor, available_minor FROM balances ORDER BY rowid")]

    def get_list_index(self, key: str, fingerprint: str) -> bytes | None:
        row = self._db.execute("SELECT data FROM list_indexes WHERE key = ? AND fingerprint = ?",
                               (key, fingerprint)).fetchone()
        return None if row is None else _as_bytes(row[0])

    def put_list_index(self, key: str, fingerprint: str, data: bytes, created_ms: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO list_indexes (key, fingerprint, created_ms, data) VALUES (?, ?, ?, ?)",
                         (key, fingerprint, created_ms, data))

    def add_screening_audit(self, time_ms: int, subject: str, decision: str, explanation: str,
                            list_source: str | None = None, list_version: int | None = None) -> None:
        self._db.execute("INSERT INTO screening_audit (time_ms, subject, decision, score, list, list_version,"
                         " explanation) VALUES (?, ?, ?, 0, ?, ?, ?)",
                         (time_ms, subject, decision, list_source, list_version, explanation))

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._db.execute(sql, params).fetchall()]

    def close(self) -> None:
        self._db.close()


def _as_bytes(v: object) -> bytes:
    if isinstance(v, bytes):
        return v
    if v is None:
        return b""
    if isinstance(v, str):
        return v.encode()
    return str(v).encode()
