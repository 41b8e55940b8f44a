"""The node: the shell around the engine. It loads the engine from its store, stamps and screens
instructions, applies commands, group-commits blocks and only then acknowledges; it holds the use
cases every front end calls (`usecases`), the read views (`views`), projection and verification.

Front ends (`setara.api`, `setara.cli`) import the node and never the store or the engine module
(import contracts in pyproject.toml): the store's types they need are re-exported here.
"""

from setara.node.node import LOCK_TIMEOUT_S, Ack, Node, SetaraError, queue_problem, tune_gc
from setara.store import NoDatabaseError, PaymentRow, Store, StoreError, open_store

__all__ = [
           "LOCK_TIMEOUT_S",
           "Ack",
           "NoDatabaseError",
           "Node",
           "PaymentRow",
           "SetaraError",
           "Store",
           "StoreError",
           "open_store",
           "queue_problem",
           "tune_gc",
]
