"""Use cases the CLI needs that `setara.node.usecases` does not have yet (to be merged there)."""

from __future__ import annotations

from setara.node.node import Node
from setara.node.verify import verify_store
from setara.store import copy_log, open_store

__all__ = ["copy_network"]


def copy_network(source: str, target: str) -> tuple[int, str]:
    """Copy a network's block log into an empty store and rebuild it by replay (a backup restored,
    or a move between SQLite and PostgreSQL), then verify it; returns (blocks copied, state hash).
    Raises StoreError (a store cannot be used) or VerificationError (the copy does not verify)."""
    src, dst = open_store(source), open_store(target)
    try:
        src.check_schema()
        n = copy_log(src, dst)
    finally:
        src.close()
        dst.close()
    with Node.open(target, write=True) as node:
        node.snapshot()
        node.catch_up()
    store = open_store(target)
    try:
        report = verify_store(store)
    finally:
        store.close()
    return n, report.state_hash
