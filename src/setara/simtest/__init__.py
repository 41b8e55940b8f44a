"""`setara simtest`: the real engine, node, replicator, follower and checkpoint code run over a
simulated stream, clock and disk, with injected faults, all driven by one seed (docs/simtest.md)."""
