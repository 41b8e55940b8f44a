"""The seam between the member-node code and the replicated log.

`Replicator` (the writer) and `_Follower` (a member's node) use only what `ReplicatedLog` lists.
`JetStreamLog` (NATS JetStream) is the production implementation; `setara.simtest` plugs in a
simulated stream with the same semantics (append with an expected last sequence, message-id
de-duplication, consumer redelivery, a key-value lease with a TTL, majority acknowledgement), so
the same node code runs over both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from setara.replication.checkpoint import SignedCheckpoint
    from setara.replication.header import BlockHeader, BlockMessage
    from setara.replication.jetstream import Lease, StoredBlock

__all__ = ["ReplicatedLog"]


class ReplicatedLog(Protocol):
    """One network's replicated log. Every method raises `ReplicationError` (or a subclass) when
    the log cannot do what was asked; `StreamConflict` when the stream holds another history."""

    def last_block(self) -> StoredBlock | None: ...

    def block(self, seq: int) -> StoredBlock | None: ...

    def publish_block(self, msg: BlockMessage, *, timeout_s: float | None = None) -> int: ...

    def iter_blocks(self, from_seq: int = 1, *, follow: bool = False,
                    wait_s: float = 1.0) -> Iterator[StoredBlock]: ...

    def publish_header(self, node: str, header: BlockHeader, signature: bytes) -> int: ...

    def publish_checkpoint(self, scp: SignedCheckpoint) -> int: ...

    def iter_headers(self, from_stream_seq: int = 1, *, follow: bool = False,
                     wait_s: float = 1.0) -> Iterator[tuple[int, str, BlockHeader, bytes]]: ...

    def iter_checkpoints(self, from_stream_seq: int = 1, *, follow: bool = False,
                         wait_s: float = 1.0) -> Iterator[tuple[int, SignedCheckpoint]]: ...

    def latest_checkpoint(self, node: str) -> SignedCheckpoint | None: ...

    def lease(self) -> Lease | None: ...

    def acquire_lease(self, holder: str, ttl_s: float) -> Lease | None: ...

    def renew_lease(self, lease: Lease) -> Lease: ...

    def release_lease(self, lease: Lease) -> None: ...

    def close(self) -> None: ...
