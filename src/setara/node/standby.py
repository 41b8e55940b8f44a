"""A standby sequencer (`setara serve --standby`): keep a replica of the stream until the active
sequencer stops renewing its lease, then take over its store as the writer.

While waiting, the standby replays every block into its own store exactly as a member's node does
(checking signatures and the chain), without signing checkpoints. Once the lease has lapsed it
catches up one last time and turns its store into a writer's: the blocks it replicated carry no
party data (`verify` checks their content digests on the operator's primary only), and the
blocks it writes from then on do. The caller then opens the store as the writer with replication,
which takes the lease (its revision is the new epoch) and logs an `EpochStart` first. If the old
sequencer appended a block after the last catch-up, the new epoch's first publish is refused by
the stream's expected sequence: nothing forks, the standby stops and is started again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from setara.core.network import Network
from setara.node.follow import FollowSettings, _Follower, _open_replica
from setara.node.node import SetaraError
from setara.node.replicate import ReplicationSettings
from setara.replication.jetstream import JetStreamLog, ReplicationError

__all__ = ["wait_to_take_over"]

POLL_S = 0.5


def wait_to_take_over(db: str, settings: ReplicationSettings, network: Network, *,
                      should_stop: Callable[[], bool] | None = None,
                      on_block: Callable[[int], None] | None = None) -> bool:
    """Replicate into `db` until the sequencer lease lapses; then make `db` a writer's store at the
    stream's head and return True (False when `should_stop` said so first)."""
    try:
        log = JetStreamLog.connect(settings.urls, settings.stream)
    except (ReplicationError, OSError, ValueError) as e:
        raise SetaraError(f"cannot reach the stream {settings.stream}: {e}") from None
    node = None
    try:
        node = _open_replica(db)
        f = _Follower(FollowSettings(db, "", settings, network), network, log, node)
        while True:
            f.catch_up()
            if on_block is not None:
                on_block(node.block_seq)
            try:
                lease = log.lease()
            except ReplicationError:
                time.sleep(POLL_S)  # no answer is not a lapsed lease
                continue
            if lease is None:
                f.catch_up()  # whatever the old sequencer appended before its lease lapsed
                node.catch_up()
                node.store.become_writer(node.block_seq)
                return True
            if should_stop is not None and should_stop():
                return False
            time.sleep(POLL_S)
    finally:
        if node is not None:
            node.close()
        log.close()
