"""A member's node: follow the replicated log, check it, replay it, co-sign checkpoints.

Each round catches up with the stream: every block's header must be signed by a sequencer the log
itself registered, extend the chain (seq, previous hash, command numbering) and never go back in
epoch; its log is replayed through the same engine into the member's own store. At the head the
node signs a checkpoint (network, seq, block hash, state hash) — never two different ones for one
seq, nor one off its own chain (the signing guard, kept durably beside the key) — publishes it
with the header it saw, gathers the other members' checkpoints and keeps the latest final one (a
quorum of member nodes signed the same state). Any two validly signed headers for one seq that
differ, or two checkpoints of one node that disagree, are kept as proof; a node that holds one
stops signing.

A block that fails a check stops the node (FollowError naming the block's seq); the store keeps
the last good block, since each block is committed on its own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from setara.core.network import Network
from setara.node.catchup import start_from_snapshot
from setara.node.node import Node, SetaraError, tune_gc
from setara.node.replicate import ReplicationSettings, registry_of
from setara.replication.checkpoint import (
    Checkpoint,
    GuardViolation,
    SignedCheckpoint,
    SigningGuard,
    find_conflicts,
    is_final,
    merge,
    parse_signed_checkpoint,
    sign_checkpoint,
)
from setara.replication.header import GENESIS_TIP, BlockHeader, BlockRejected, ChainTip, verify_block
from setara.replication.jetstream import JetStreamLog, ReplicationError
from setara.replication.keys import KeyRegistry, load_private_key, public_key_b64
from setara.replication.stream import ReplicatedLog
from setara.simtest import sabotage as _sabotage
from setara.store import NoDatabaseError, open_store

__all__ = ["FollowError", "FollowSettings", "checkpoint_doc", "follow"]

QUORUM_WAIT_S = 30.0
ROUND_PAUSE_S = 0.2  # between catch-up rounds when following the stream's head
GOSSIP_READ_MAX = 100_000  # gossip messages read per round, and kept


class FollowError(SetaraError):
    """A block failed a check, or the node found equivocation: the node stops (exit 1)."""


@dataclass(frozen=True, slots=True)
class FollowSettings:
    db: str
    member: str
    replication: ReplicationSettings
    network: Network  # what block 1 must hold (`--network NET.toml`); with a snapshot, the network at it
    snapshot: bytes | None = None  # a new node starts from it (setara.node.catchup), else from block 1


def checkpoint_doc(scp: SignedCheckpoint, registry: KeyRegistry) -> dict[str, object]:
    """The `checkpoint show` JSON: the checkpoint, its signatures and whether they make it final."""
    return scp.as_dict(final=is_final(scp, registry))


def _open_replica(db: str, new: Callable[[str], Node] = Node.create_replica) -> Node:
    try:
        store = open_store(db)
    except NoDatabaseError:
        return new(db)
    try:
        if store.exists():
            if store.node_role() != "follower":
                raise SetaraError(f"{db} is a writer's store, not a member node's; give the node its own --db")
            store.close()
            return Node.open(db, write=True)
        store.close()
    except BaseException:
        store.close()
        raise
    return new(db)


class _Follower:
    def __init__(self, s: FollowSettings, expected: Network, log: ReplicatedLog, node: Node) -> None:
        self.s = s
        self.expected = expected
        self.log = log
        self.node = node
        key_path = s.replication.key_path
        try:
            self.key = load_private_key(key_path)
        except (OSError, ValueError) as e:
            raise SetaraError(f"--key {key_path}: {e}") from None
        self.public_key = public_key_b64(self.key)
        self.guard = SigningGuard(f"{key_path}.signed")
        epoch = node.store.meta("epoch")
        self.tip = ChainTip(node.block_seq, node.block_hash.hex(), node.cmd_count, int(epoch) if epoch else 0) \
            if node.block_seq else GENESIS_TIP
        self.last_header: tuple[BlockHeader, bytes] | None = None
        self.gossip_from = {"headers": 1, "checkpoints": 1}  # the next stream seq of each gossip to read
        self._gossip_headers: list[tuple[BlockHeader, bytes]] = []
        self._gossip_checkpoints: list[SignedCheckpoint] = []
        self._published = False  # this run published the checkpoint it signed last
        self._registry: tuple[Network, KeyRegistry] | None = None  # the keys of the engine's network

    @property
    def name(self) -> str:
        net = self.node.engine.network
        if net is None:
            raise SetaraError("no block applied yet")
        n = next((n for n in net.nodes.values() if n.public_key == self.public_key), None)
        if n is None or n.member != self.s.member:
            raise SetaraError(f"--key is not the registered node of member {self.s.member} ([[node]] with member = "
                              f"\"{self.s.member}\")")
        return n.name

    def catch_up(self) -> int:
        """Apply every block the stream holds beyond ours; returns how many."""
        n = 0
        try:
            # The blocks can be fetched again: their commits need not wait for an fsync each, only
            # the last before anything is signed (deferred_sync syncs on the way out, error or not).
            with self.node.store.deferred_sync():
                for sb in self.log.iter_blocks(self.node.block_seq + 1):
                    self._apply(sb.message.header, sb.message.signature, sb.message.log)
                    n += 1
        except BlockRejected as e:
            self._gossip_last_header()
            raise FollowError(str(e)) from None
        except FollowError:
            self._gossip_last_header()
            raise
        except ReplicationError as e:
            raise SetaraError(f"stream {self.s.replication.stream}: {e}") from None
        return n

    def _apply(self, h: BlockHeader, signature: bytes, log: bytes) -> None:
        from setara.replication.header import BlockMessage

        if h.seq == 1:
            try:
                first = orjson.loads(log)[0]
                ok = first[0] == "init" and first[1]["network"] == self.expected.to_config()
            except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
                ok = False
            if not ok:
                raise FollowError("block 1: is not the network given with --network")
            registry = registry_of(Network.from_config(first[1]["network"]))
        else:
            net = self.node.engine.network
            if net is None:
                raise FollowError(f"block {h.seq}: no network before it")
            # The engine replaces its (frozen) network on any change: the keys stay the same until then.
            if self._registry is None or self._registry[0] is not net:
                self._registry = (net, registry_of(net))
            registry = self._registry[1]
        try:
            self.tip = verify_block(BlockMessage(h, signature, log), registry, self.tip, self.expected.name)
        except BlockRejected as e:
            # SIMTEST SABOTAGE (off unless `setara simtest --sabotage skip-signature-check`).
            if _sabotage.ACTIVE != "skip-signature-check" or not e.problem.startswith(("signature", "signer")):
                raise FollowError(str(e)) from None
            self.tip = h.tip()
        try:
            self.node.replay_block(h.seq, h.first_cmd, h.n_cmds, h.time_ms, log, bytes.fromhex(h.hash))
            if _sabotage.ACTIVE == "apply-block-twice":  # SIMTEST SABOTAGE (off by default)
                _sabotage_apply_again(self.node, h.seq)
        except SetaraError as e:
            raise FollowError(str(e)) from None
        self.node.store.set_epoch(h.epoch)
        self.last_header = (h, signature)

    def _gossip_last_header(self) -> None:
        """Before stopping on a block, tell the others which header this node applied last: a
        split view shows here as the next block not chaining, and only the header this node was
        given can prove it (found by `setara simtest`: without this, a node fed a forged block and
        its successor in one round stopped with the proof unsaid)."""
        try:
            # Restarted, it has no header in memory: the one the stream gave it for its head.
            seen = self.last_header if self.last_header is not None else self._own_header(self.node.block_seq)
            if seen is not None:
                self.log.publish_header(self.name, *seen)
        except (ReplicationError, SetaraError):
            pass  # best effort: the node stops anyway, and says so again when restarted

    def sign(self) -> SignedCheckpoint | None:
        """Sign the head's checkpoint (once per seq) and publish it with the header seen there."""
        node = self.node
        if node.block_seq == 0 or self.guard.stopped is not None:
            return None
        last = self.guard.last
        if last is not None and last.seq == node.block_seq and last.block_hash == node.block_hash.hex():
            cp = last  # no block since: the state is the one already hashed (hashing is O(state))
        else:
            cp = Checkpoint(self.expected.name, node.block_seq, node.block_hash.hex(), node.engine.state_hash())
        if last == cp:
            mine = sign_checkpoint(cp, self.key, self.name, self.s.member)
            if not self._published:
                # Signed before a crash or a failed publish: the stream may never have got it, and
                # nothing else would ever send it (found by `setara simtest`); the message ids make
                # a second publish of what the stream holds a no-op.
                self._publish(mine)
            return mine
        try:
            self.guard.check_and_record(cp, lambda seq: _hash_at(node, seq))
        except GuardViolation as e:
            raise FollowError(f"block {cp.seq}: refusing to sign: {e}") from None
        mine = sign_checkpoint(cp, self.key, self.name, self.s.member)
        self._published = False
        self._publish(mine)
        return mine

    def _publish(self, mine: SignedCheckpoint) -> None:
        try:
            self.log.publish_checkpoint(mine)
            seen = self.last_header if self.last_header is not None and \
                self.last_header[0].seq == self.node.block_seq else self._own_header(self.node.block_seq)
            if seen is not None:
                self.log.publish_header(self.name, *seen)
        except ReplicationError as e:
            raise SetaraError(f"stream {self.s.replication.stream}: {e}") from None
        self._published = True

    def _own_header(self, seq: int) -> tuple[BlockHeader, bytes] | None:
        """The signed header of this node's block `seq`, as the stream gave it to this node."""
        at = self.node.store.block_hash_at(seq) if seq else None
        if at is None:
            return None
        sb = self.log.block(seq)
        if sb is None or sb.header.hash != at[0].hex():
            return None
        return (sb.header, sb.message.signature)

    def gather(self, mine: SignedCheckpoint) -> tuple[SignedCheckpoint, bool]:
        """Merge the member nodes' published checkpoints that agree with ours; keep it (and, once a
        quorum signed, as the latest final one) in the store."""
        net = self.node.engine.network
        assert net is not None
        registry = registry_of(net)
        merged = mine
        for n in registry.member_nodes:
            if n.name == mine.signatures[0].node:
                continue
            try:
                theirs = self.log.latest_checkpoint(n.name)
            except ReplicationError:
                continue
            if theirs is not None and theirs.checkpoint == mine.checkpoint:
                merged = merge(merged, theirs)
        final = is_final(merged, registry)
        store = self.node.store
        store.save_checkpoint("latest", merged.to_json())
        if final:
            store.save_checkpoint("final", merged.to_json())
        return merged, final

    def _own_headers_against(self, headers: list[tuple[BlockHeader, bytes]]) -> list[tuple[BlockHeader, bytes]]:
        """The signed headers of this node's own blocks at the seqs where a gossiped header has
        another hash. Nodes gossip only the header at the head they sign, so without these a
        split view at a seq no honest node signed at is never proved (found by `setara simtest`)."""
        out: dict[int, tuple[BlockHeader, bytes]] = {}
        for h, _sig in headers:
            if h.seq in out or h.seq > self.node.block_seq:
                continue
            at = self.node.store.block_hash_at(h.seq)
            if at is None or at[0].hex() == h.hash:
                continue
            own = self._own_header(h.seq)
            if own is not None:
                out[h.seq] = own
        return list(out.values())

    def check_equivocation(self) -> list[dict[str, object]]:
        net = self.node.engine.network
        if net is None:
            return []
        registry = registry_of(net)
        # Gossip is read from where the last round stopped, not from the stream's start each round.
        try:
            for i, (sseq, _node, h, sig) in enumerate(self.log.iter_headers(self.gossip_from["headers"])):
                self._gossip_headers.append((h, sig))
                self.gossip_from["headers"] = sseq + 1
                if i >= GOSSIP_READ_MAX:
                    break
            for i, (sseq, scp) in enumerate(self.log.iter_checkpoints(self.gossip_from["checkpoints"])):
                self._gossip_checkpoints.append(scp)
                self.gossip_from["checkpoints"] = sseq + 1
                if i >= GOSSIP_READ_MAX:
                    break
        except ReplicationError:
            return []
        # Bounded: the most recent GOSSIP_READ_MAX of each (a conflict is between items of one seq).
        del self._gossip_headers[:-GOSSIP_READ_MAX], self._gossip_checkpoints[:-GOSSIP_READ_MAX]
        headers = list(self._gossip_headers)
        cps = self._gossip_checkpoints
        # What this node saw itself counts too: a gossiped header that differs from it is a split view.
        if self.last_header is not None:
            headers.append(self.last_header)
        with contextlib.suppress(ReplicationError):  # the next round looks again
            headers.extend(self._own_headers_against(headers))
        proofs = find_conflicts(headers, cps, registry)
        for p in proofs:
            self.node.store.add_proof(p)
            if p.get("kind") == "block_header":
                # The others may lack the header this node was given: send it before stopping
                # (found by `setara simtest`: a victim proved a split view nobody else could).
                with contextlib.suppress(ReplicationError):
                    own = self._own_header(int(p["seq"]))  # type: ignore[call-overload]
                    if own is not None:
                        self.log.publish_header(self.name, *own)
        if proofs and self.guard.stopped is None:
            self.guard.stop(f"equivocation proof at seq {proofs[0].get('seq')}")
        return proofs


def _sabotage_apply_again(node: Node, seq: int) -> None:
    """SIMTEST SABOTAGE: the block's settlement postings reach the ledger a second time (what a
    block applied twice would do); only the state shows it."""
    block = next(iter(node.store.iter_blocks(seq - 1)), None)
    if block is None:
        return
    balances = node.engine.ledger.balances
    for _seq, _pid, currency, debit, credit, amount, _rate in orjson.loads(block.journal):
        balances[(debit, currency)] = balances.get((debit, currency), 0) - amount
        balances[(credit, currency)] = balances.get((credit, currency), 0) + amount


def _hash_at(node: Node, seq: int) -> str | None:
    at = node.store.block_hash_at(seq)
    return None if at is None else at[0].hex()


def follow(s: FollowSettings, *, once: bool, quorum_wait_s: float = QUORUM_WAIT_S,
           on_round: Callable[[int, int], None] | None = None, should_stop: Callable[[], bool] | None = None,
           ) -> dict[str, object] | None:
    """Run a member's node. With `once`: catch up, sign, wait up to quorum_wait_s for a quorum at
    that seq, return the checkpoint document. Otherwise follow until `should_stop` says so."""
    expected = s.network
    try:
        log = JetStreamLog.connect(s.replication.urls, s.replication.stream)
    except (ReplicationError, OSError, ValueError) as e:
        raise SetaraError(f"cannot reach the stream {s.replication.stream}: {e}") from None
    node = None
    try:
        snapshot = s.snapshot
        node = _open_replica(s.db) if snapshot is None else \
            _open_replica(s.db, lambda db: start_from_snapshot(db, snapshot, expected, log))
        tune_gc()  # the engine just loaded lives as long as the node; replay allocates in bulk
        f = _Follower(s, expected, log, node)
        while True:
            applied = f.catch_up()
            mine = f.sign()
            proofs = f.check_equivocation()
            if proofs:
                raise FollowError(f"block {proofs[0].get('seq')}: equivocation proof found ({proofs[0].get('kind')}); "
                                  "this node stops signing (setara checkpoint conflicts)")
            if mine is not None:
                merged, final = f.gather(mine)
                if on_round is not None:
                    on_round(node.block_seq, applied)
                if once:
                    deadline = time.monotonic() + quorum_wait_s
                    while not final and time.monotonic() < deadline:
                        time.sleep(ROUND_PAUSE_S)
                        merged, final = f.gather(mine)
                    node.catch_up()
                    return checkpoint_doc(merged, registry_of(expected if node.engine.network is None
                                                              else node.engine.network))
            elif once:
                return None
            if should_stop is not None and should_stop():
                return None
            time.sleep(ROUND_PAUSE_S)
    finally:
        if node is not None:
            node.catch_up()
            node.close()
        log.close()


def show_checkpoint(db: str, kind: str = "final") -> bytes | None:
    """The stored checkpoint JSON ('final', else the latest signed) with `final` recomputed
    against the keys registered in this store's log."""
    node = Node.open(db, write=False)
    try:
        doc = node.store.checkpoint(kind) or node.store.checkpoint("latest")
        if doc is None:
            return None
        scp = parse_signed_checkpoint(doc)
        return orjson.dumps(checkpoint_doc(scp, registry_of(node.network)))
    finally:
        node.close()
