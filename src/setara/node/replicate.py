"""The writer's side of the replicated log: every block, signed by a registered sequencer, on a
NATS JetStream stream before anyone hears its outcome.

`Replicator.open` checks the key is a registered sequencer's, brings the stream up to the store's
head (publishing from block 1 what the stream lacks) and refuses a stream that holds a block this
store does not, or another block at a height both hold. `publish` then appends each new block with
its expected position and a message id (a retried publish is stored once, a second writer with
another history is refused) and returns once JetStream stored it on a majority of replicas.
Only the `log` travels: no party data, which stays with the operator.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

import orjson

from setara.core.network import Network
from setara.node.node import SetaraError
from setara.replication.checkpoint import Checkpoint, SignedCheckpoint, is_final, merge
from setara.replication.header import build_block_message
from setara.replication.jetstream import JetStreamLog, Lease, LeaseLost, ReplicationError
from setara.replication.keys import KeyRegistry, NodeKey, load_private_key, public_key_b64
from setara.replication.stream import ReplicatedLog
from setara.store import Block, Store

__all__ = ["ReplicationSettings", "Replicator", "registry_of", "settings_from"]

STREAM_DEFAULT = "setara"
# The sequencer lease's time to live: a standby takes over this long after the active sequencer
# stopped renewing (it renews every third of it).
LEASE_TTL_S = float(os.environ.get("SETARA_LEASE_TTL_S", "10"))


class NotASequencer(SetaraError):
    """The key is not registered as a sequencer of this network (a usage error: exit 2)."""


@dataclass(frozen=True, slots=True)
class ReplicationSettings:
    urls: list[str]
    key_path: str
    stream: str = STREAM_DEFAULT


def settings_from(replicate: str | None, key: str | None, stream: str | None) -> ReplicationSettings | None:
    """Options or environment (SETARA_REPLICATE, SETARA_NODE_KEY, SETARA_STREAM); None when the
    log is not replicated."""
    urls = replicate if replicate is not None else os.environ.get("SETARA_REPLICATE")
    if not urls:
        return None
    key_path = key if key is not None else os.environ.get("SETARA_NODE_KEY")
    if not key_path:
        raise NotASequencer("--replicate needs --key FILE (or SETARA_NODE_KEY): the sequencer's node key")
    return ReplicationSettings([u.strip() for u in urls.split(",") if u.strip()], key_path,
                               stream or os.environ.get("SETARA_STREAM") or STREAM_DEFAULT)


def registry_of(network: Network) -> KeyRegistry:
    """The node keys the log has registered, as the replication checks want them."""
    return KeyRegistry.build([NodeKey(n.name, n.public_key, n.member, n.sequencer) for n in network.nodes.values()],
                             network.finality_quorum)


class Replicator:
    def __init__(self, log: ReplicatedLog, settings: ReplicationSettings, signer: str, key: object,
                 network_name: str, tip_hash: bytes, *, lease_ttl_s: float | None = None,
                 renew_in_background: bool = True) -> None:
        self.log = log
        self.settings = settings
        self.signer = signer
        self._key = key
        self.network_name = network_name
        self.epoch = 0
        self.stream_epoch = 0  # the epoch of the stream's last block when this writer started
        self._tip_hash = tip_hash  # hash of the last block on the stream (the store's head after open)
        self.published = 0
        self._lease: Lease | None = None
        self._lease_lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lease_ttl_s = LEASE_TTL_S if lease_ttl_s is None else lease_ttl_s
        # False: no thread; whoever holds this Replicator calls `renew_lease_once` every TTL/3 on
        # its own clock (`setara simtest` does, on the simulated one).
        self._renew_in_background = renew_in_background

    @classmethod
    def open(cls, settings: ReplicationSettings, network: Network, store: Store,
             log: ReplicatedLog | None = None, *, lease_ttl_s: float | None = None,
             renew_in_background: bool = True) -> Replicator:
        """`log`: an already connected log (the simulated stream); by default JetStream at
        settings.urls. `lease_ttl_s` (default SETARA_LEASE_TTL_S) and `renew_in_background`
        (default: a thread renews the lease every TTL/3) are seams for `setara simtest`, which
        renews on its simulated clock."""
        try:
            key = load_private_key(settings.key_path)
        except (OSError, ValueError) as e:
            raise NotASequencer(f"--key {settings.key_path}: {e}") from None
        pub = public_key_b64(key)
        node = next((n for n in network.nodes.values() if n.public_key == pub), None)
        if node is None:
            raise NotASequencer(f"--key {settings.key_path}: not a node registered in the network ([[node]])")
        if not node.sequencer:
            raise NotASequencer(f"--key {settings.key_path}: node {node.name} is not a sequencer")
        try:
            if log is None:
                log = JetStreamLog.connect(settings.urls, settings.stream)
        except (ReplicationError, OSError, ValueError) as e:
            raise SetaraError(f"cannot reach the stream {settings.stream} at {','.join(settings.urls)}: {e}") from None
        rep = cls(log, settings, node.name, key, network.name, b"", lease_ttl_s=lease_ttl_s,
                  renew_in_background=renew_in_background)
        try:
            fresh = rep._take_lease()
        except BaseException:
            rep.close()
            raise
        try:
            rep._catch_up_stream(store)
        except BaseException:
            if fresh:
                # A writer that cannot write must not keep a lease it just took: a standby would
                # otherwise wait a whole TTL for it (found by `setara simtest`, seed 144).
                rep._release_lease()
            rep.close()
            raise
        return rep

    def _release_lease(self) -> None:
        self._stop.set()  # no renewal may race the release
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        lease, self._lease = self._lease, None
        if lease is not None:
            with contextlib.suppress(ReplicationError, SetaraError):
                self.log.release_lease(lease)

    @property
    def new_epoch(self) -> bool:
        """This writer starts an epoch the stream has not seen: its first block is an EpochStart."""
        return self.epoch > self.stream_epoch

    def _take_lease(self) -> bool:
        """One sequencer at a time: hold the lease (its revision is the epoch) and keep renewing it.
        The same sequencer starting again (the next CLI command) renews its own lease. True when
        the lease was free and is now this writer's."""
        try:
            lease = self.log.lease()
            fresh = lease is None
            if lease is None:
                lease = self.log.acquire_lease(self.signer, self.lease_ttl_s)
            elif lease.holder == self.signer:
                lease = self.log.renew_lease(lease)
            else:
                raise SetaraError(f"sequencer {lease.holder} holds the lease (epoch {lease.epoch}); this writer "
                                  "would fork the log: wait until it stops (a standby takes over with "
                                  "`setara serve --standby`)")
            if lease is None:
                raise SetaraError("another sequencer took the lease first; refusing")
        except ReplicationError as e:
            raise SetaraError(f"stream {self.settings.stream}: the sequencer lease: {e}") from None
        self._lease = lease
        self.epoch = lease.epoch
        if self._renew_in_background:
            self._renewer = threading.Thread(target=self._renew, name="setara-lease", daemon=True)
            self._renewer.start()
        return fresh

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_ttl_s / 3):
            if not self.renew_lease_once():
                return

    def renew_lease_once(self) -> bool:
        """One tick of the renewer; False once there is nothing more to renew (the lease is lost:
        the next publish is refused)."""
        lease = self._lease
        if lease is None or self._lease_lost is not None:
            return False
        try:
            self._lease = self.log.renew_lease(lease)
        except LeaseLost as e:
            self._lease_lost = str(e)
            return False
        except ReplicationError:
            pass  # a leader election: try again at the next tick, within the TTL
        return True

    @property
    def lease_lost(self) -> str | None:
        """Why this writer may no longer publish (None while it holds the lease, as far as it knows)."""
        return self._lease_lost

    def _catch_up_stream(self, store: Store) -> None:
        """Publish, from block 1, what the stream lacks; refuse a stream with another history."""
        head_seq = store.head()[0]
        try:
            last = self.log.last_block()
        except ReplicationError as e:
            raise SetaraError(f"stream {self.settings.stream}: {e}") from None
        have = 0 if last is None else last.header.seq
        if have > head_seq:
            raise SetaraError(f"stream {self.settings.stream} holds block {have}, which this store (at block "
                              f"{head_seq}) does not: another writer has written there; refusing")
        if last is not None:
            self.stream_epoch = last.header.epoch
            if last.header.network != self.network_name:
                raise SetaraError(f"stream {self.settings.stream} carries network {last.header.network!r}, "
                                  f"not {self.network_name!r}")
            mine = store.block_hash_at(have)
            if mine is None or mine[0].hex() != last.header.hash:
                raise SetaraError(f"stream {self.settings.stream}: block {have} differs from this store's: "
                                  "another history; refusing")
            self._tip_hash = mine[0]
        else:
            self._tip_hash = bytes(32)
        if have < head_seq:
            for b in store.iter_blocks(have):
                self.publish(b)

    def publish(self, block: Block) -> None:
        if self._lease_lost is not None:
            raise SetaraError(f"block {block.seq}: this writer lost the sequencer lease ({self._lease_lost}); "
                              "nothing acknowledged, stopping")
        msg = build_block_message(
            self._key, signer=self.signer, network=self.network_name,  # type: ignore[arg-type]
            epoch=self.epoch, seq=block.seq, first_cmd=block.first_cmd, n_cmds=block.n_cmds,
            time_ms=block.time_ms, prev_hash=self._tip_hash, log=block.log)
        if msg.header.hash != block.hash.hex():
            raise SetaraError(f"block {block.seq} does not chain to the stream's block {block.seq - 1}")
        try:
            self.log.publish_block(msg)
        except ReplicationError as e:
            raise SetaraError(f"replication failure at block {block.seq}, nothing acknowledged: {e}") from None
        self._tip_hash = block.hash
        self.published += 1

    def record_finality(self, store: Store, network: Network) -> None:
        """Keep, in the operator's store, the latest checkpoint a quorum of member nodes signed
        (what `export payments` and the API's `final` report)."""
        registry = registry_of(network)
        groups: dict[Checkpoint, SignedCheckpoint] = {}
        for n in registry.member_nodes:
            try:
                scp = self.log.latest_checkpoint(n.name)
            except ReplicationError:
                continue
            if scp is not None:
                groups[scp.checkpoint] = merge(groups[scp.checkpoint], scp) if scp.checkpoint in groups else scp
        finals = [g for g in groups.values() if is_final(g, registry)]
        if not finals:
            return
        best = max(finals, key=lambda g: g.checkpoint.seq)
        at = store.block_hash_at(best.checkpoint.seq)
        if at is None or at[0].hex() != best.checkpoint.block_hash:
            return  # not this store's history: never record it as final here
        known = store.checkpoint("final")
        if known is None or int(orjson.loads(known)["seq"]) < best.checkpoint.seq:
            store.save_checkpoint("final", best.to_json())

    def close(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        self.log.close()
