"""Persistence of the command log, journal, payments and snapshots behind one interface.

SQLite (WAL, fsync on commit) is the embedded default; PostgreSQL implements the same interface.
The command log is the source of truth; every other table is derived from it and `setara verify`
proves that by replaying the log and comparing.
"""

from __future__ import annotations

from setara.store.base import (
    SCHEMA_VERSION,
    JournalRow,
    LogRow,
    PaymentRow,
    Store,
    StoreError,
    WriteBatch,
    log_hash,
)

__all__ = [
    "SCHEMA_VERSION",
    "JournalRow",
    "LogRow",
    "PaymentRow",
    "Store",
    "StoreError",
    "WriteBatch",
    "log_hash",
    "open_store",
]


def open_store(url: str) -> Store:
    """`postgresql://…` opens PostgreSQL; anything else is a SQLite file path."""
    if url.startswith(("postgresql://", "postgres://")):
        from setara.store.postgres import PostgresStore

        return PostgresStore(url)
    from setara.store.sqlite import SqliteStore

    return SqliteStore(url)
