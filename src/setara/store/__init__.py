"""Persistence of the block log, journal, events and projections behind one interface.

SQLite (WAL, fsync on commit) is the embedded default; PostgreSQL implements the same interface.
"""

from __future__ import annotations

from setara.store.base import (
    SCHEMA_VERSION,
    Base,
    Block,
    EntryRange,
    EntryRow,
    PaymentRow,
    Projection,
    Store,
    StoreError,
    block_hash,
)

__all__ = [
    "SCHEMA_VERSION",
    "Base",
    "Block",
    "EntryRange",
    "EntryRow",
    "NoDatabaseError",
    "PaymentRow",
    "Projection",
    "Store",
    "StoreError",
    "block_hash",
    "copy_log",
    "open_store",
]


class NoDatabaseError(StoreError):
    """No Setara database where `--db` points and the command may not create one: an input error
    (CLI exit 2), not a failure of the system."""


def open_store(url: str, *, create: bool = False) -> Store:
    """`postgresql://…` opens PostgreSQL; anything else is a SQLite file path.

    Only `create=True` (`setara init`, the target of `db copy`) may bring a database into being: a
    missing SQLite file, or a missing `?schema=`, is otherwise refused with a StoreError and
    nothing is created, so a mistyped `--db` never leaves an empty database behind."""
    if url.startswith(("postgresql://", "postgres://")):
        from setara.store.postgres import PostgresStore

        return PostgresStore(url, create=create)
    from setara.store.sqlite import SqliteStore

    return SqliteStore(url, create=create)


def copy_log(source: Store, target: Store) -> int:
    """Copy a network's block log (and party key) into an empty store, for a backup restored by
    replay or a move between backends. Returns the number of blocks copied. The caller then opens
    the target (which replays the log), writes a snapshot and runs `verify`.

    Only the log, journal, events and intake blocks move: balances, snapshots and the payments
    table are derived and rebuilt from them; side tables (keys, lists, audit) are not copied.
    """
    key = source.meta("party_key")
    if key is None:
        raise StoreError(f"{source.url} holds no network")
    target.create(bytes.fromhex(key))
    n = 0
    for b in source.iter_blocks():
        target.append(b, [], None)
        n += 1
    return n
