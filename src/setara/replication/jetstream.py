"""The replicated log on NATS JetStream, behind a synchronous facade.

The node is synchronous; nats-py is asyncio. One private event loop runs in a daemon thread and
every call crosses into it with `run_coroutine_threadsafe` and a timeout, so a hung server costs a
clear `StreamUnavailable`, never a hung node.

One stream per network, named by the operator (`--stream`, default `setara`):
- `<stream>.blocks`: one message per block, in block order (see header.py for its form);
- `<stream>.headers.<node>`: block headers a node has seen, as it signed-received them (gossip);
- `<stream>.checkpoints.<node>`: the node's signed checkpoints.
File storage, replicas = min(3, servers in the cluster), delete and purge denied, no age or
size limit (and discard "new", so that a limit someone adds later refuses writes instead of
silently dropping blocks).

Each block is published with `Nats-Msg-Id` (a retried publish is stored once) and
`Nats-Expected-Last-Subject-Sequence` (the stream sequence of the previous block, so a second
writer with another history is refused). A publish returns when JetStream acknowledged it, which
in a cluster means a majority of the replicas stored it.

The sequencer lease is a key in the JetStream KV bucket `<stream>-lease`, whose TTL is the lease
time: acquire = create (only if absent), renew = update at the last revision, and the revision
at acquisition becomes the epoch. A standby acquires only once the holder stopped renewing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from setara.replication.checkpoint import CheckpointError, SignedCheckpoint, parse_signed_checkpoint
from setara.replication.header import (
    BlockHeader,
    BlockMessage,
    BlockRejected,
    decode_block,
    encode_block,
    parse_signed_header,
    signed_header_json,
)
from setara.replication.keys import NODE_NAME_RE

__all__ = [
    "JetStreamLog",
    "Lease",
    "LeaseLost",
    "MessageTooLarge",
    "ReplicationError",
    "StoredBlock",
    "StreamConflict",
    "StreamUnavailable",
]

T = TypeVar("T")

STREAM_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_TIMEOUT_S = 10.0  # one call, including retries through a leader election
REQUEST_TIMEOUT_S = 2.0  # one request to the server
DUPLICATE_WINDOW_S = 120.0  # how long a retried publish is recognised by its Nats-Msg-Id
FETCH_BATCH = 64
FETCH_MAX_BYTES = 32 * 1024 * 1024  # one fetch holds at most this much, whatever max_payload is
LEASE_KEY = "sequencer"
MAX_REPLICAS = 3
# A header line costs its name, value, ": " and CRLF; the NATS/1.0 line and the reply subject a bit more.
_HEADER_OVERHEAD_BYTES = 256
_WRONG_LAST_SEQUENCE = (10071, 10164)
_RETRYABLE = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError,
              nats.js.errors.ServiceUnavailableError, nats.errors.ConnectionClosedError,
              nats.errors.ConnectionReconnectingError, nats.errors.StaleConnectionError,
              nats.errors.OutboundBufferLimitError, asyncio.TimeoutError)


class ReplicationError(RuntimeError):
    """The replicated log cannot do what was asked."""


class StreamUnavailable(ReplicationError):
    """No answer from the NATS cluster in time (no server, no JetStream leader, no quorum)."""


class StreamConflict(ReplicationError):
    """The stream holds another history than the one being published (another writer)."""


class MessageTooLarge(ReplicationError):
    """A block, compressed, is over the server's max_payload."""


class LeaseLost(ReplicationError):
    """The sequencer lease expired or another node holds it now: stop writing."""


@dataclass(frozen=True, slots=True)
class StoredBlock:
    stream_seq: int
    message: BlockMessage

    @property
    def header(self) -> BlockHeader:
        return self.message.header


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str
    epoch: int  # the revision at which the holder acquired it
    revision: int  # the latest (renewed) revision: what the next renewal must match


async def _quiet(*_: Any) -> None:
    """nats-py reports reconnects and server errors through callbacks; the facade's own errors
    say what matters to the caller."""


def _check_urls(urls: list[str]) -> list[str]:
    if not urls:
        raise ReplicationError("replicate: no NATS server URL")
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("nats", "tls") or not parts.hostname or parts.port is None:
            raise ReplicationError(f"replicate: {u!r} is not nats://HOST:PORT")
    return urls


def _is_wrong_last_sequence(e: BaseException) -> bool:
    return isinstance(e, nats.js.errors.APIError) and e.err_code in _WRONG_LAST_SEQUENCE


class JetStreamLog:
    """A connection to one network's stream. Use `JetStreamLog.connect(...)`; close() when done."""

    def __init__(self, urls: list[str], stream: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 replicas: int | None = None) -> None:
        if not STREAM_NAME_RE.match(stream):
            raise ReplicationError(f"stream: {stream!r} is not 1 to 64 of A-Z a-z 0-9 _ -")
        self.urls = _check_urls(urls)
        self.stream = stream
        self.timeout_s = timeout_s
        self._replicas_wanted = replicas
        self.blocks_subject = f"{stream}.blocks"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"nats-{stream}", daemon=True)
        self._thread.start()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._publish_lock = threading.Lock()
        # (block seq, stream seq) of the last block on the stream, as this writer knows it
        self._tip: tuple[int, int] | None = None
        self.replicas = 0
        self.max_payload = 0

    @classmethod
    def connect(cls, urls: list[str], stream: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                replicas: int | None = None) -> JetStreamLog:
        """Connect to the cluster and ensure the stream exists (created if absent)."""
        log = cls(urls, stream, timeout_s=timeout_s, replicas=replicas)
        try:
            log._run(log._connect(), what=f"connect to {','.join(urls)}")
            log._run(log._ensure_stream(), what="create the stream")
        except BaseException:
            log.close()
            raise
        return log

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], *, what: str, timeout_s: float | None = None) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        t = self.timeout_s if timeout_s is None else timeout_s
        try:
            return fut.result(t)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise StreamUnavailable(f"stream {self.stream}: no answer to {what} within {t:g} s") from None
        except _RETRYABLE as e:
            raise StreamUnavailable(f"stream {self.stream}: {what}: {type(e).__name__} {e}".rstrip()) from None
        except (nats.errors.Error, nats.js.errors.Error) as e:
            # The caller handles ReplicationError; nats-py's own types stay inside this module.
            detail = getattr(e, "description", None) or str(e) or type(e).__name__
            raise ReplicationError(f"stream {self.stream}: {what}: {detail}") from None

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise ReplicationError("not connected")
        return self._js

    async def _retrying(self, what: str, make: Any, deadline: float) -> Any:
        """`await make()` until it stops failing for a transient reason (a leader election, a
        reconnect) or the deadline passes."""
        delay = 0.05
        while True:
            try:
                return await make()
            except _RETRYABLE as e:
                if time.monotonic() + delay >= deadline:
                    raise StreamUnavailable(f"stream {self.stream}: {what}: {type(e).__name__}") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def _connect(self) -> None:
        try:
            self._nc = await nats.connect(
                servers=self.urls, connect_timeout=REQUEST_TIMEOUT_S, max_reconnect_attempts=-1,
                reconnect_time_wait=0.1, allow_reconnect=True, error_cb=_quiet, disconnected_cb=_quiet,
                reconnected_cb=_quiet, closed_cb=_quiet)
        except (TimeoutError, OSError, nats.errors.NoServersError, nats.errors.Error) as e:
            raise StreamUnavailable(f"cannot connect to {','.join(self.urls)}: {e or type(e).__name__}") from None
        self._js = self._nc.jetstream(timeout=REQUEST_TIMEOUT_S)
        self.max_payload = self._nc.max_payload
        info = getattr(self._nc, "_server_info", {}) or {}
        # A clustered server advertises every server's client URL (its own included), unless the
        # cluster is configured not to: then the URLs we were given are the best count we have.
        servers = max(len(set(info.get("connect_urls") or [])), len(set(self.urls))) if info.get("cluster") else 1
        self.replicas = self._replicas_wanted or min(MAX_REPLICAS, servers)

    def _stream_config(self) -> api.StreamConfig:
        s = self.stream
        return api.StreamConfig(
            name=s, subjects=[f"{s}.blocks", f"{s}.headers.>", f"{s}.checkpoints.>"],
            retention=api.RetentionPolicy.LIMITS, storage=api.StorageType.FILE, num_replicas=self.replicas,
            max_msgs=-1, max_bytes=-1, max_age=0, max_msg_size=-1, discard=api.DiscardPolicy.NEW,
            deny_delete=True, deny_purge=True, allow_rollup_hdrs=False,
            duplicate_window=DUPLICATE_WINDOW_S)

    async def _ensure_stream(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        try:
            info = await self._retrying("stream info", lambda: self.js.stream_info(self.stream), deadline)
        except nats.js.errors.NotFoundError:
            cfg = self._stream_config()
            try:
                await self._retrying("create the stream", lambda: self.js.add_stream(cfg), deadline)
            except nats.js.errors.APIError as e:
                raise ReplicationError(f"stream {self.stream}: cannot create it: {e.description}") from None
            return
        c = info.config
        missing = set(self._stream_config().subjects or []) - set(c.subjects or [])
        if missing:
            raise ReplicationError(f"stream {self.stream} exists without subject {sorted(missing)[0]}")
        if not (c.deny_delete and c.deny_purge):
            raise ReplicationError(f"stream {self.stream} exists but allows deleting or purging messages")
        self.replicas = c.num_replicas or 1

    def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(ReplicationError):
                self._run(self._nc.close(), what="close", timeout_s=5)
        self._nc = self._js = self._kv = None
        if self._loop.is_closed():
            return

        async def cancel_the_rest() -> None:
            # e.g. a connect still retrying after its caller gave up: let it unwind, not be destroyed
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with contextlib.suppress(ReplicationError):
            self._run(cancel_the_rest(), what="close", timeout_s=2)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> JetStreamLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- blocks -----------------------------------------------------------------------------

    async def _get(self, *, seq: int | None = None, subject: str | None = None,
                   next_: bool = False) -> api.RawStreamMsg | None:
        """One stored message (from the stream leader, so never stale), or None."""
        deadline = time.monotonic() + self.timeout_s
        try:
            msg: api.RawStreamMsg = await self._retrying(
                "get a message", lambda: self.js.get_msg(self.stream, seq=seq, subject=subject, next=next_), deadline)
        except nats.js.errors.NotFoundError:
            return None
        return msg

    def _stored(self, raw: api.RawStreamMsg, seq_hint: int | None = None) -> StoredBlock:
        assert raw.seq is not None
        return StoredBlock(raw.seq, decode_block(raw.data or b"", raw.headers, seq_hint))

    async def _last_block(self) -> StoredBlock | None:
        raw = await self._get(subject=self.blocks_subject)
        return None if raw is None else self._stored(raw)

    def last_block(self) -> StoredBlock | None:
        """The stream's last block (None for an empty stream)."""
        last = self._run(self._last_block(), what="read the last block")
        if last is not None:
            with self._publish_lock:
                self._tip = (last.header.seq, last.stream_seq)
        return last

    async def _block_at_or_after(self, stream_seq: int) -> StoredBlock | None:
        raw = await self._get(seq=stream_seq, subject=self.blocks_subject, next_=True)
        return None if raw is None else self._stored(raw)

    async def _find_block(self, seq: int) -> StoredBlock | None:
        """Block `seq`, found by bisection over stream sequences: blocks are in order, interleaved
        with gossip, so block n sits at stream sequence n or later. O(log n) requests."""
        last = await self._last_block()
        if last is None or last.header.seq < seq:
            return None
        if last.header.seq == seq:
            return last
        lo, hi = seq, last.stream_seq  # the block is at a stream seq in [lo, hi]
        found: StoredBlock | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            b = await self._block_at_or_after(mid)
            if b is None or b.header.seq > seq:
                hi = mid - 1
            elif b.header.seq < seq:
                lo = b.stream_seq + 1
            else:
                found = b
                break
        return found

    def block(self, seq: int) -> StoredBlock | None:
        """Block `seq` as stored (None when the stream does not hold it)."""
        return self._run(self._find_block(seq), what=f"find block {seq}")

    def publish_block(self, msg: BlockMessage, *, timeout_s: float | None = None) -> int:
        """Append block `msg.header.seq`; return its stream sequence once JetStream acknowledged it
        (stored on a majority of replicas). Retries through leader elections with the same
        message id, so a block is never stored twice. Re-publishing a block the stream already
        holds (same hash) is a no-op. Raises StreamConflict when the stream holds another
        history, MessageTooLarge over the server's max_payload."""
        h = msg.header
        payload, headers = encode_block(msg)
        size = len(payload) + sum(len(k) + len(v) + 4 for k, v in headers.items()) + _HEADER_OVERHEAD_BYTES
        if size > self.max_payload:
            raise MessageTooLarge(f"block {h.seq}: {size} bytes compressed, over the server's max_payload "
                                  f"of {self.max_payload} bytes (raise max_payload, or seal smaller blocks)")
        headers["Nats-Msg-Id"] = f"{h.network}:{h.epoch}:{h.seq}:{h.hash}"
        t = timeout_s or self.timeout_s
        with self._publish_lock:
            return self._run(self._publish_block(msg, payload, headers, time.monotonic() + t),
                             what=f"publish block {h.seq}", timeout_s=t + 1)

    async def _publish_block(self, msg: BlockMessage, payload: bytes, headers: dict[str, str],
                             deadline: float) -> int:
        h = msg.header
        if self._tip is None or self._tip[0] != h.seq - 1:
            last = await self._last_block()
            self._tip = (0, 0) if last is None else (last.header.seq, last.stream_seq)
        if self._tip[0] >= h.seq:
            stored = await self._find_block(h.seq)
            if stored is not None and stored.header.hash == h.hash:
                return stored.stream_seq
            raise StreamConflict(f"block {h.seq}: the stream holds another block {h.seq} (another writer's history)")
        if self._tip[0] != h.seq - 1:
            raise StreamConflict(f"block {h.seq}: the stream ends at block {self._tip[0]}; "
                                 f"publish blocks {self._tip[0] + 1}..{h.seq - 1} first")
        # Stream seq 0 = "no block on the subject yet": the first block is guarded too.
        headers["Nats-Expected-Last-Subject-Sequence"] = str(self._tip[1])
        delay = 0.05
        while True:
            try:
                ack = await self.js.publish(self.blocks_subject, payload, headers=headers,
                                            timeout=REQUEST_TIMEOUT_S)
            except _RETRYABLE as e:
                if time.monotonic() + delay >= deadline:
                    raise StreamUnavailable(f"block {h.seq}: not acknowledged by the stream in time "
                                            f"({type(e).__name__})") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            except nats.js.errors.APIError as e:
                if not _is_wrong_last_sequence(e):
                    raise ReplicationError(f"block {h.seq}: refused by the stream: {e.description}") from None
                # An earlier attempt may have been stored with its ack lost, and the server
                # checked the expected sequence before the message id: look before refusing.
                last = await self._last_block()
                if last is not None and last.header.seq == h.seq and last.header.hash == h.hash:
                    self._tip = (h.seq, last.stream_seq)
                    return last.stream_seq
                self._tip = None
                raise StreamConflict(f"block {h.seq}: refused, the stream has a block this writer did not "
                                     f"publish (another writer)") from None
            self._tip = (h.seq, ack.seq)
            return ack.seq

    async def _fetch(self, psub: JetStreamContext.PullSubscription, wait_s: float) -> list[Msg]:
        try:
            batch = max(1, min(FETCH_BATCH, FETCH_MAX_BYTES // max(1, self.max_payload)))
            return await psub.fetch(batch, timeout=wait_s)
        except nats.errors.TimeoutError:
            return []

    async def _consumer(self, subject: str, start_stream_seq: int) -> JetStreamContext.PullSubscription:
        cfg = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, start_stream_seq),
            ack_policy=api.AckPolicy.NONE, inactive_threshold=60.0, num_replicas=1, mem_storage=True)
        deadline = time.monotonic() + self.timeout_s
        psub: JetStreamContext.PullSubscription = await self._retrying(
            "create a consumer", lambda: self.js.pull_subscribe(subject, stream=self.stream, config=cfg), deadline)
        return psub

    def _iter_subject(self, subject: str, start_stream_seq: int, *, follow: bool,
                      wait_s: float) -> Iterator[Msg]:
        """Messages on `subject` from a stream sequence on, in order, a batch at a time (never the
        whole stream in memory). Without `follow`, ends at the last message the stream leader
        held when the iteration began (a consumer's own count can lag behind after a failover);
        with it, waits for more. A consumer lost or stuck in a leader change is recreated after
        the last message seen; no progress for timeout_s raises StreamUnavailable."""
        end: int | None = None
        if not follow:
            last = self._run(self._get(subject=subject), what=f"read the last message on {subject}")
            if last is None or last.seq is None or last.seq < start_stream_seq:
                return
            end = last.seq
        next_seq = start_stream_seq
        psub = None
        stalled_since = time.monotonic()
        try:
            while end is None or next_seq <= end:
                if psub is None:
                    psub = self._run(self._consumer(subject, next_seq), what="create a consumer")
                try:
                    batch = self._run(self._fetch(psub, wait_s), what="fetch", timeout_s=wait_s + self.timeout_s)
                except StreamUnavailable:
                    batch = []
                if not batch:
                    # Nothing came: the end of the stream (when following), or a consumer that
                    # stalled (seen after a kill -9 of a server). Ask the stream leader.
                    last = self._run(self._get(subject=subject), what=f"read the last message on {subject}")
                    if last is None or last.seq is None or last.seq < next_seq:
                        stalled_since = time.monotonic()
                        continue
                    if time.monotonic() - stalled_since > self.timeout_s:
                        raise StreamUnavailable(f"stream {self.stream}: {subject} stalled at stream "
                                                f"seq {next_seq} of {last.seq}")
                    self._drop(psub)
                    psub = None
                    continue
                stalled_since = time.monotonic()
                for m in batch:
                    seq = m.metadata.sequence.stream
                    if seq < next_seq:
                        continue  # a recreated consumer may resend what was already yielded
                    next_seq = seq + 1
                    yield m
                    if end is not None and seq >= end:
                        return
        finally:
            if psub is not None:
                self._drop(psub)

    def _drop(self, psub: JetStreamContext.PullSubscription) -> None:
        async def drop() -> None:
            # Best effort: an ephemeral consumer ages out by itself (inactive_threshold).
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(ReplicationError):
                self._run(drop(), what="drop a consumer", timeout_s=2)

    def iter_blocks(self, from_seq: int = 1, *, follow: bool = False, wait_s: float = 1.0) -> Iterator[StoredBlock]:
        """Blocks from block `from_seq` on, in order, decoded (not verified: see verify_block).
        Raises BlockRejected on a message that is not a block message, naming the expected seq."""
        if from_seq < 1:
            raise ValueError("from_seq starts at 1")
        start = 1
        if from_seq > 1:
            found = self.block(from_seq)
            if found is not None:
                start = found.stream_seq
            else:
                last = self.last_block()
                have = 0 if last is None else last.header.seq
                if have < from_seq - 1:
                    # The reader holds blocks the stream does not: it is not the stream it was fed from.
                    raise StreamConflict(f"block {from_seq}: the stream ends at block {have}")
                if not follow or last is None:
                    return
                start = last.stream_seq + 1
        expected = from_seq
        for m in self._iter_subject(self.blocks_subject, start, follow=follow, wait_s=wait_s):
            b = StoredBlock(m.metadata.sequence.stream, decode_block(m.data, m.headers, expected))
            expected = b.header.seq + 1
            yield b

    # -- gossip: seen headers and checkpoints -------------------------------------------------

    def _publish_gossip(self, subject: str, data: bytes, msg_id: str) -> int:
        async def go() -> int:
            deadline = time.monotonic() + self.timeout_s
            ack = await self._retrying("publish", lambda: self.js.publish(
                subject, data, headers={"Nats-Msg-Id": msg_id}, timeout=REQUEST_TIMEOUT_S), deadline)
            return int(ack.seq)
        return self._run(go(), what=f"publish to {subject}", timeout_s=self.timeout_s + 1)

    def publish_header(self, node: str, header: BlockHeader, signature: bytes) -> int:
        """Gossip a signed block header node `node` has seen (for equivocation checks)."""
        if not NODE_NAME_RE.match(node):
            raise ReplicationError(f"node name {node!r} cannot be a subject token")
        return self._publish_gossip(f"{self.stream}.headers.{node}", signed_header_json(header, signature),
                                    f"h:{node}:{header.network}:{header.seq}:{header.hash}")

    def publish_checkpoint(self, scp: SignedCheckpoint) -> int:
        """Publish a node's own checkpoint (exactly one signature: the node's)."""
        if len(scp.signatures) != 1:
            raise ReplicationError("a node publishes its own checkpoint with its one signature")
        node = scp.signatures[0].node
        if not NODE_NAME_RE.match(node):
            raise ReplicationError(f"node name {node!r} cannot be a subject token")
        cp = scp.checkpoint
        return self._publish_gossip(f"{self.stream}.checkpoints.{node}", scp.to_json(),
                                    f"c:{node}:{cp.network}:{cp.seq}:{cp.block_hash}:{cp.state_hash}")

    def iter_headers(self, from_stream_seq: int = 1, *, follow: bool = False,
                     wait_s: float = 1.0) -> Iterator[tuple[int, str, BlockHeader, bytes]]:
        """(stream seq, gossiping node, header, signature) of the gossiped headers; malformed
        messages are skipped (they prove nothing)."""
        for m in self._iter_subject(f"{self.stream}.headers.>", from_stream_seq, follow=follow, wait_s=wait_s):
            try:
                h, sig = parse_signed_header(m.data)
            except BlockRejected:
                continue
            yield m.metadata.sequence.stream, m.subject.rsplit(".", 1)[-1], h, sig

    def iter_checkpoints(self, from_stream_seq: int = 1, *, follow: bool = False,
                         wait_s: float = 1.0) -> Iterator[tuple[int, SignedCheckpoint]]:
        """(stream seq, checkpoint) of the published checkpoints; malformed ones are skipped."""
        for m in self._iter_subject(f"{self.stream}.checkpoints.>", from_stream_seq, follow=follow, wait_s=wait_s):
            try:
                scp = parse_signed_checkpoint(m.data)
            except CheckpointError:
                continue
            yield m.metadata.sequence.stream, scp

    def latest_checkpoint(self, node: str) -> SignedCheckpoint | None:
        """Node `node`'s last published checkpoint."""
        if not NODE_NAME_RE.match(node):
            raise ReplicationError(f"node name {node!r} cannot be a subject token")
        raw = self._run(self._get(subject=f"{self.stream}.checkpoints.{node}"), what="read a checkpoint")
        if raw is None:
            return None
        try:
            return parse_signed_checkpoint(raw.data or b"")
        except CheckpointError:
            return None

    # -- sequencer lease ----------------------------------------------------------------------

    async def _lease_kv(self, ttl_s: float | None) -> KeyValue | None:
        if self._kv is not None:
            return self._kv
        bucket = f"{self.stream}-lease"
        deadline = time.monotonic() + self.timeout_s
        try:
            self._kv = await self._retrying("open the lease bucket", lambda: self.js.key_value(bucket), deadline)
        except nats.js.errors.BucketNotFoundError:
            if ttl_s is None:
                return None
            cfg = api.KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s, storage=api.StorageType.FILE,
                                     replicas=self.replicas)
            self._kv = await self._retrying("create the lease bucket",
                                            lambda: self.js.create_key_value(cfg), deadline)
            return self._kv
        if ttl_s is not None:
            status = await self._kv.status()
            if status.ttl is not None and abs(status.ttl - ttl_s) > 1e-3:
                raise ReplicationError(f"lease bucket {bucket}: its TTL is {status.ttl:g} s, not {ttl_s:g} s")
        return self._kv

    @staticmethod
    def _lease_of(value: bytes | None, revision: int) -> Lease | None:
        try:
            d = orjson.loads(value or b"")
            return Lease(str(d["holder"]), int(d.get("epoch") or revision), revision)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def lease(self) -> Lease | None:
        """The current lease (None when nobody holds it)."""
        async def go() -> Lease | None:
            kv = await self._lease_kv(None)
            if kv is None:
                return None
            try:
                e = await kv.get(LEASE_KEY)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                return None  # expired, never taken, or released
            return self._lease_of(e.value, e.revision or 0)
        return self._run(go(), what="read the lease")

    def acquire_lease(self, holder: str, ttl_s: float) -> Lease | None:
        """Take the lease if nobody holds it (its epoch = this revision); None when held."""
        if not NODE_NAME_RE.match(holder):
            raise ReplicationError(f"node name {holder!r}: 1 to 64 of A-Z a-z 0-9 _ -")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")

        async def go() -> Lease | None:
            kv = await self._lease_kv(ttl_s)
            assert kv is not None
            deadline = time.monotonic() + self.timeout_s
            try:
                rev = await self._retrying("acquire the lease", lambda: kv.create(
                    LEASE_KEY, orjson.dumps({"holder": holder})), deadline)
            except nats.js.errors.KeyWrongLastSequenceError:
                return None
            return Lease(holder, int(rev), int(rev))
        return self._run(go(), what="acquire the lease")

    def release_lease(self, lease: Lease) -> None:
        """Give the lease up now instead of at the end of its TTL; nothing when it has moved on."""
        async def go() -> None:
            kv = await self._lease_kv(None)
            if kv is None:
                return
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                await kv.delete(LEASE_KEY, last=lease.revision)
        self._run(go(), what="release the lease")

    def renew_lease(self, lease: Lease) -> Lease:
        """Renew before the TTL runs out (every TTL/3, say); LeaseLost when it ran out or was taken."""
        async def go() -> Lease:
            kv = await self._lease_kv(None)
            if kv is None:
                raise LeaseLost("the lease bucket is gone")
            deadline = time.monotonic() + self.timeout_s
            try:
                rev = await self._retrying("renew the lease", lambda: kv.update(
                    LEASE_KEY, orjson.dumps({"holder": lease.holder, "epoch": lease.epoch}), last=lease.revision),
                    deadline)
            except nats.js.errors.KeyWrongLastSequenceError:
                raise LeaseLost(f"{lease.holder}: the lease of epoch {lease.epoch} expired or was taken") from None
            return Lease(lease.holder, lease.epoch, int(rev))
        return self._run(go(), what="renew the lease")

