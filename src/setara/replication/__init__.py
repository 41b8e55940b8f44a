"""Member nodes' building blocks: node keys, signed block headers, checkpoints and finality, and
the NATS JetStream adapter the log is replicated on (see docs/nodes.md).

Nothing here touches a store or the engine: the node wires these pieces to them.
"""
