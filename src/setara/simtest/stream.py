"""A simulated JetStream stream with exactly the semantics the member-node code relies on.

`SimCluster` is the server side: one stream of messages (blocks, gossiped headers, checkpoints),
replicated on three replicas of which a majority must be up for any append or read (majority
acknowledgement), appends that carry an expected last subject sequence (checked before the
message id, as the server does), message-id de-duplication, and a key-value lease with a TTL on
the simulated clock.

`SimLog` is one process's connection to it (it implements `ReplicatedLog`). Like `JetStreamLog`
it retries a publish with the same message id and looks at the stream before calling a refused
publish a conflict. Every request crosses the simulated network, where the run's faults act: a
partitioned process gets `StreamUnavailable`; a request or its ack may be lost, duplicated, or
delayed (a delayed request reaches the server later, after newer ones); a consumer may deliver
fewer messages than exist (delay) and redeliver some (the reader drops what it already saw, as
the JetStream adapter does).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from setara.replication.checkpoint import CheckpointError, SignedCheckpoint, parse_signed_checkpoint
from setara.replication.header import (
    BlockHeader,
    BlockMessage,
    BlockRejected,
    parse_signed_header,
    signed_header_json,
)
from setara.replication.jetstream import (
    Lease,
    LeaseLost,
    ReplicationError,
    StoredBlock,
    StreamConflict,
    StreamUnavailable,
)
from setara.replication.keys import NODE_NAME_RE

__all__ = ["NetFaults", "SimCluster", "SimLog"]

REPLICAS = 3
PUBLISH_ATTEMPTS = 3  # a publish is retried (same message id) this many times before it gives up
DELAY_STEPS_MAX = 3  # a delayed request reaches the server within this many steps


@dataclass(slots=True)
class _Msg:
    seq: int
    subject: str
    data: BlockMessage | bytes
    msg_id: str


@dataclass(slots=True)
class NetFaults:
    """Per-request fault probabilities; all zero once the run's faults stop."""

    loss: float = 0.0  # request lost (nothing reaches the server)
    ack_loss: float = 0.0  # the server stored it, the ack is lost
    dup: float = 0.0  # the request reaches the server twice
    delay: float = 0.0  # the request is held and reaches the server later, after newer ones
    short_fetch: float = 0.0  # a consumer delivers only part of what exists (delay)
    redeliver: float = 0.0  # a consumer delivers a message again

    def quiet(self) -> None:
        self.loss = self.ack_loss = self.dup = self.delay = self.short_fetch = self.redeliver = 0.0


class _WrongLastSequence(Exception):
    pass


@dataclass
class SimCluster:
    rng: random.Random
    clock_ms: Callable[[], int]
    faults: NetFaults = field(default_factory=NetFaults)
    messages: list[_Msg] = field(default_factory=list)
    msg_ids: dict[str, int] = field(default_factory=dict)
    last_by_subject: dict[str, int] = field(default_factory=dict)
    up: list[bool] = field(default_factory=lambda: [True] * REPLICAS)
    partitioned: set[str] = field(default_factory=set)
    # client -> {block seq: message}: what a Byzantine sequencer sends that client instead
    split_view: dict[str, dict[int, BlockMessage]] = field(default_factory=dict)
    delivered: set[tuple[str, int]] = field(default_factory=set)  # (client, seq) of split-view blocks sent
    delayed: list[tuple[int, str, BlockMessage | bytes, str, int | None]] = field(default_factory=list)
    lease_value: tuple[str, int, int, int, int] | None = None  # holder, epoch, revision, expires_ms, ttl_ms
    kv_revision: int = 0
    lease_holders: dict[int, str] = field(default_factory=dict)  # epoch -> the sequencer that acquired it
    stored_twice: int = 0  # appends the de-duplication had to absorb (a figure for the report)

    # -- server side -----------------------------------------------------------------------

    def has_majority(self) -> bool:
        return sum(self.up) * 2 > REPLICAS

    def append(self, subject: str, data: BlockMessage | bytes, msg_id: str, expected_last: int | None) -> int:
        """Store a message; its stream sequence. The expected last subject sequence is checked
        before the message id (as JetStream does); a repeated message id returns the stored one."""
        if not self.has_majority():
            raise StreamUnavailable("no majority of replicas: not acknowledged")
        if expected_last is not None and self.last_by_subject.get(subject, 0) != expected_last:
            raise _WrongLastSequence(subject)
        if msg_id in self.msg_ids:
            self.stored_twice += 1
            return self.msg_ids[msg_id]
        seq = len(self.messages) + 1
        self.messages.append(_Msg(seq, subject, data, msg_id))
        self.msg_ids[msg_id] = seq
        self.last_by_subject[subject] = seq
        return seq

    def deliver_delayed(self, step: int) -> None:
        """Requests held in the network reach the server now (their senders gave up long ago)."""
        due = [d for d in self.delayed if d[0] <= step]
        self.delayed = [d for d in self.delayed if d[0] > step]
        for _, subject, data, msg_id, expected in due:
            with contextlib.suppress(_WrongLastSequence, StreamUnavailable):  # stale: refused, or no majority
                self.append(subject, data, msg_id, expected)

    def blocks(self) -> list[_Msg]:
        return [m for m in self.messages if m.subject == "blocks"]


class SimLog:
    """One process's connection to the simulated stream (a `ReplicatedLog`)."""

    def __init__(self, cluster: SimCluster, client: str, step: Callable[[], int]) -> None:
        self.c = cluster
        self.client = client
        self._step = step
        self._tip: tuple[int, int] | None = None  # (block seq, stream seq) of the last block, as known
        self.closed = False

    # -- the network ------------------------------------------------------------------------

    def _reach(self, what: str) -> None:
        if self.closed:
            raise ReplicationError("closed")
        if self.client in self.c.partitioned:
            raise StreamUnavailable(f"{self.client}: partitioned from the stream: {what}")
        if not self.c.has_majority():
            raise StreamUnavailable(f"no stream leader (no majority of replicas): {what}")

    def _send(self, subject: str, data: BlockMessage | bytes, msg_id: str, expected: int | None) -> int:
        """One request through the faulty network; StreamUnavailable when no ack came back."""
        f, rng = self.c.faults, self.c.rng
        self._reach(f"publish {msg_id}")
        if rng.random() < f.loss:
            raise StreamUnavailable(f"publish {msg_id}: no ack (request lost)")
        if rng.random() < f.delay:
            self.c.delayed.append((self._step() + rng.randint(1, DELAY_STEPS_MAX), subject, data, msg_id, expected))
            raise StreamUnavailable(f"publish {msg_id}: no ack (request delayed)")
        seq = self.c.append(subject, data, msg_id, expected)
        if rng.random() < f.dup:
            # The duplicate is refused by the expected sequence or absorbed by the message id.
            with contextlib.suppress(_WrongLastSequence):
                self.c.append(subject, data, msg_id, expected)
        if rng.random() < f.ack_loss:
            raise StreamUnavailable(f"publish {msg_id}: no ack (ack lost)")
        return seq

    # -- blocks ----------------------------------------------------------------------------

    def _stored(self, m: _Msg) -> StoredBlock:
        data = m.data
        assert isinstance(data, BlockMessage)
        alt = self.c.split_view.get(self.client, {}).get(data.header.seq)
        if alt is not None:
            self.c.delivered.add((self.client, data.header.seq))
        return StoredBlock(m.seq, alt if alt is not None else data)

    def last_block(self) -> StoredBlock | None:
        self._reach("read the last block")
        blocks = self.c.blocks()
        if not blocks:
            self._tip = (0, 0)
            return None
        last = self._stored(blocks[-1])
        self._tip = (last.header.seq, last.stream_seq)
        return last

    def block(self, seq: int) -> StoredBlock | None:
        self._reach(f"find block {seq}")
        blocks = self.c.blocks()
        return self._stored(blocks[seq - 1]) if 1 <= seq <= len(blocks) else None

    def publish_block(self, msg: BlockMessage, *, timeout_s: float | None = None) -> int:
        h = msg.header
        msg_id = f"{h.network}:{h.epoch}:{h.seq}:{h.hash}"
        last_error: StreamUnavailable | None = None
        for _ in range(PUBLISH_ATTEMPTS):
            try:
                if self._tip is None or self._tip[0] != h.seq - 1:
                    self.last_block()
                assert self._tip is not None
                if self._tip[0] >= h.seq:
                    stored = self.block(h.seq)
                    if stored is not None and stored.header.hash == h.hash:
                        return stored.stream_seq
                    raise StreamConflict(f"block {h.seq}: the stream holds another block {h.seq}")
                if self._tip[0] != h.seq - 1:
                    raise StreamConflict(f"block {h.seq}: the stream ends at block {self._tip[0]}")
                try:
                    seq = self._send("blocks", msg, msg_id, self._tip[1])
                except _WrongLastSequence:
                    last = self.last_block()
                    if last is not None and last.header.seq == h.seq and last.header.hash == h.hash:
                        return last.stream_seq
                    self._tip = None
                    raise StreamConflict(f"block {h.seq}: refused, the stream has a block this writer "
                                         "did not publish") from None
                self._tip = (h.seq, seq)
                return seq
            except StreamUnavailable as e:
                last_error = e
                self._tip = None
        assert last_error is not None
        raise StreamUnavailable(f"block {h.seq}: not acknowledged by the stream: {last_error}")

    def iter_blocks(self, from_seq: int = 1, *, follow: bool = False, wait_s: float = 1.0) -> Iterator[StoredBlock]:
        if from_seq < 1:
            raise ValueError("from_seq starts at 1")
        self._reach("read blocks")
        blocks = self.c.blocks()
        if len(blocks) < from_seq - 1:
            raise StreamConflict(f"block {from_seq}: the stream ends at block {len(blocks)}")
        todo = blocks[from_seq - 1:]
        f, rng = self.c.faults, self.c.rng
        if todo and rng.random() < f.short_fetch:
            todo = todo[:rng.randint(0, len(todo) - 1)]
        # The consumer may redeliver; the reader drops what it already yielded (by stream seq).
        delivered: list[_Msg] = []
        for m in todo:
            delivered.append(m)
            if delivered and rng.random() < f.redeliver:
                delivered.append(delivered[rng.randrange(len(delivered))])
        next_seq = 0
        for m in delivered:
            if m.seq < next_seq:
                continue
            next_seq = m.seq + 1
            yield self._stored(m)

    # -- gossip -----------------------------------------------------------------------------

    def _gossip(self, subject: str, data: bytes, msg_id: str) -> int:
        last: StreamUnavailable | None = None
        for _ in range(PUBLISH_ATTEMPTS):
            try:
                return self._send(subject, data, msg_id, None)
            except StreamUnavailable as e:
                last = e
        assert last is not None
        raise last

    def publish_header(self, node: str, header: BlockHeader, signature: bytes) -> int:
        if not NODE_NAME_RE.match(node):
            raise ReplicationError(f"node name {node!r} cannot be a subject token")
        return self._gossip(f"headers.{node}", signed_header_json(header, signature),
                            f"h:{node}:{header.network}:{header.seq}:{header.hash}")

    def publish_checkpoint(self, scp: SignedCheckpoint) -> int:
        if len(scp.signatures) != 1:
            raise ReplicationError("a node publishes its own checkpoint with its one signature")
        node = scp.signatures[0].node
        cp = scp.checkpoint
        return self._gossip(f"checkpoints.{node}", scp.to_json(),
                            f"c:{node}:{cp.network}:{cp.seq}:{cp.block_hash}:{cp.state_hash}")

    def _gossiped(self, prefix: str, from_stream_seq: int) -> list[_Msg]:
        self._reach(f"read {prefix}")
        out = [m for m in self.c.messages[max(0, from_stream_seq - 1):] if m.subject.startswith(prefix)]
        if out and self.c.rng.random() < self.c.faults.short_fetch:
            out = out[:self.c.rng.randint(0, len(out) - 1)]
        return out

    def iter_headers(self, from_stream_seq: int = 1, *, follow: bool = False,
                     wait_s: float = 1.0) -> Iterator[tuple[int, str, BlockHeader, bytes]]:
        for m in self._gossiped("headers.", from_stream_seq):
            assert isinstance(m.data, bytes)
            try:
                h, sig = parse_signed_header(m.data)
            except BlockRejected:
                continue
            yield m.seq, m.subject.rsplit(".", 1)[-1], h, sig

    def iter_checkpoints(self, from_stream_seq: int = 1, *, follow: bool = False,
                         wait_s: float = 1.0) -> Iterator[tuple[int, SignedCheckpoint]]:
        for m in self._gossiped("checkpoints.", from_stream_seq):
            assert isinstance(m.data, bytes)
            try:
                yield m.seq, parse_signed_checkpoint(m.data)
            except CheckpointError:
                continue

    def latest_checkpoint(self, node: str) -> SignedCheckpoint | None:
        self._reach("read a checkpoint")
        seq = self.c.last_by_subject.get(f"checkpoints.{node}")
        if seq is None:
            return None
        data = self.c.messages[seq - 1].data
        assert isinstance(data, bytes)
        try:
            return parse_signed_checkpoint(data)
        except CheckpointError:
            return None

    # -- the sequencer lease (a KV entry with a TTL on the simulated clock) -------------------

    def _live_lease(self) -> tuple[str, int, int, int, int] | None:
        v = self.c.lease_value
        if v is not None and v[3] <= self.c.clock_ms():
            self.c.lease_value = v = None
        return v

    def _kv_request(self, what: str) -> None:
        """A KV request crosses the same network: it may be lost before the server."""
        self._reach(what)
        if self.c.rng.random() < self.c.faults.loss:
            raise StreamUnavailable(f"{what}: no answer (request lost)")

    def _kv_answer(self, what: str) -> None:
        """The server acted; its answer may be lost on the way back."""
        if self.c.rng.random() < self.c.faults.ack_loss:
            raise StreamUnavailable(f"{what}: no answer (reply lost)")

    def lease(self) -> Lease | None:
        self._reach("read the lease")
        v = self._live_lease()
        return None if v is None else Lease(v[0], v[1], v[2])

    def acquire_lease(self, holder: str, ttl_s: float) -> Lease | None:
        self._kv_request("acquire the lease")
        if self._live_lease() is not None:
            return None
        self.c.kv_revision += 1
        rev = self.c.kv_revision
        ttl_ms = max(1, int(ttl_s * 1000))
        self.c.lease_value = (holder, rev, rev, self.c.clock_ms() + ttl_ms, ttl_ms)
        self.c.lease_holders[rev] = holder
        self._kv_answer("acquire the lease")
        return Lease(holder, rev, rev)

    def release_lease(self, lease: Lease) -> None:
        self._kv_request("release the lease")
        v = self._live_lease()
        if v is not None and v[2] == lease.revision:
            self.c.lease_value = None
        self._kv_answer("release the lease")

    def renew_lease(self, lease: Lease) -> Lease:
        self._kv_request("renew the lease")
        v = self._live_lease()
        if v is None or v[2] != lease.revision:
            raise LeaseLost(f"{lease.holder}: the lease of epoch {lease.epoch} expired or was taken")
        self.c.kv_revision += 1
        self.c.lease_value = (v[0], v[1], self.c.kv_revision, self.c.clock_ms() + v[4], v[4])
        self._kv_answer("renew the lease")
        return Lease(lease.holder, lease.epoch, self.c.kv_revision)

    def close(self) -> None:
        self.closed = True


if TYPE_CHECKING:
    from setara.replication.jetstream import JetStreamLog
    from setara.replication.stream import ReplicatedLog

    def _both_are_logs(j: JetStreamLog, s: SimLog) -> tuple[ReplicatedLog, ReplicatedLog]:
        """mypy checks here that both implementations satisfy the seam."""
        return (j, s)
