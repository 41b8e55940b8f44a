"""Persistence of the block log, journal, events and projections behind one interface.

SQLite (WAL, fsync on commit) is the embedded default; PostgreSQL implements the same interface.
"""

from __future__ import annotations

from setara.store.base import (
    SCHEMA_VERSION,
    Block,
    PaymentRow,
    Projection,
    Store,
    StoreError,
    block_hash,
)

__all__ = [
    "SCHEMA_VERSION",
    "Block",
    "PaymentRow",
    "Projection",
    "Store",
    "StoreError",
    "block_hash",
    "open_store",
]


def open_store(url: str) -> Store:
    """`postgresql://…` opens PostgreSQL; anything else is a SQLite file path."""
    if url.startswith(("postgresql://", "postgres://")):
        from setara.store.postgres import PostgresStore

        return PostgresStore(url)
    from setara.store.sqlite import SqliteStore

    return SqliteStore(url)
