"""A standby sequencer (`setara serve --standby`): keep a replica of the stream until the active
sequencer stops renewing its lease, then take over its store as the writer.

While waiting, the standby replays every block into its own store exactly as a member's node does
(checking signatures and the chain), without signing checkpoints. Once the lease has lapsed it
catches up one last time and turns its store into a writer's: the blocks it replicated carry no
party data (`verify` checks their content digests on the operator's primary only), and the
blocks it writes from then on do. The caller then opens the store as the writer with replication,
which takes the lease (its revision is the new epoch) and logs an `EpochStart` first. It writes
with the operator's party-data key, given to its store when made: the content fingerprints and
party digests it logs are then the primary's, and a client's retry of a payment the old sequencer
logged is recognised as the same payment. If the old
sequencer appended a block after the last catch-up, the new epoch's first publish is refused by
the stream's expected sequence: nothing forks, the standby stops and is started again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from setara.core.network import Network
from setara.node.follow import FollowSettings, _Follower, _open_replica
from setara.node.node import Node, SetaraError
from setara.node.replicate import ReplicationSettings
from setara.replication.jetstream import JetStreamLog, ReplicationError
from setara.replication.stream import ReplicatedLog

__all__ = ["Standby", "export_party_key", "read_party_key", "wait_to_take_over"]

POLL_S = 0.5
_PARTY_KEY_FILE_BYTES_MAX = 1024


def export_party_key(db: str, out: str) -> None:
    """Write the operator's party-data key (`db`'s, a writer's store) to a new file `out`, mode
    0600, for a standby sequencer at the operator's second site (docs/nodes.md, who holds it)."""
    node = Node.open(db, write=False)
    try:
        if node.store.node_role() == "follower":
            raise SetaraError(f"{db} is a member node's store: it holds no operator party-data key")
        key = node.store.meta("party_key")
    finally:
        node.close()
    if key is None:
        raise SetaraError(f"{db} holds no party-data key; it is damaged")
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SetaraError(f"--out {out} exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")


def read_party_key(path: str) -> bytes:
    """The key a file written by `export_party_key` holds; ValueError saying what is wrong."""
    with open(path, "rb") as f:
        data = f.read(_PARTY_KEY_FILE_BYTES_MAX + 1)
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not a party-data key file (64 hexadecimal digits)") from None
    if len(key) != 32:
        raise ValueError("not a party-data key file (64 hexadecimal digits)")
    return key


class Standby:
    """A standby's replica of the stream in `db` and its look at the lease, one `poll` at a time
    (`wait_to_take_over` polls every POLL_S; `setara simtest` once a simulated step)."""

    def __init__(self, db: str, settings: ReplicationSettings, network: Network, log: ReplicatedLog,
                 party_key: bytes | None = None) -> None:
        self.log = log
        self.node: Node = _open_replica(db, lambda new: Node.create_replica(new, party_key))
        try:
            held = self.node.store.meta("party_key")
            if party_key is not None and held != party_key.hex():
                # Its fingerprints and digests would not be the primary's: a retried payment would be
                # refused as another under the same id once this standby takes over.
                raise SetaraError(f"{db} holds another party-data key than the one given (--party-key)")
            self._follower = _Follower(FollowSettings(db, "", settings, network), network, log, self.node)
        except BaseException:
            self.node.close()
            raise

    def poll(self, on_block: Callable[[int], None] | None = None) -> bool | None:
        """Catch up; then, once the sequencer lease has lapsed, make the store a writer's at the
        stream's head and return True. False while the lease is held; None when the lease could
        not be read (no answer is not a lapsed lease)."""
        f, node = self._follower, self.node
        f.catch_up()
        if on_block is not None:
            on_block(node.block_seq)
        try:
            lease = self.log.lease()
        except ReplicationError:
            return None
        if lease is not None:
            return False
        f.catch_up()  # whatever the old sequencer appended before its lease lapsed
        try:
            last = self.log.last_block()
        except ReplicationError:
            return None
        if last is not None and last.header.seq > node.block_seq:
            return False  # the catch-up stopped short of the stream's end: take over from there only
        node.catch_up()
        node.store.become_writer(node.block_seq)
        return True

    def close(self) -> None:
        self.node.close()


def wait_to_take_over(db: str, settings: ReplicationSettings, network: Network, *,
                      party_key: bytes | None = None, should_stop: Callable[[], bool] | None = None,
                      on_block: Callable[[int], None] | None = None) -> bool:
    """Replicate into `db` until the sequencer lease lapses; then make `db` a writer's store at the
    stream's head and return True (False when `should_stop` said so first)."""
    try:
        log = JetStreamLog.connect(settings.urls, settings.stream)
    except (ReplicationError, OSError, ValueError) as e:
        raise SetaraError(f"cannot reach the stream {settings.stream}: {e}") from None
    standby = None
    try:
        standby = Standby(db, settings, network, log, party_key)
        while True:
            took = standby.poll(on_block)
            if took:
                return True
            if took is False and should_stop is not None and should_stop():
                return False
            time.sleep(POLL_S)
    finally:
        if standby is not None:
            standby.close()
        log.close()
