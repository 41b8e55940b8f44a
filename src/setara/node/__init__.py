"""The node: the shell around the engine. It loads the engine from its store, stamps and screens
instructions, applies commands, group-commits blocks and only then acknowledges; it holds the use
cases every front end calls (`usecases`), the read views (`views`), projection and verification."""

from setara.node.node import LOCK_TIMEOUT_S, Ack, Node, SetaraError, queue_problem, tune_gc

__all__ = ["LOCK_TIMEOUT_S", "Ack", "Node", "SetaraError", "queue_problem", "tune_gc"]
