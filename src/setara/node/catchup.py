"""Catching up from a snapshot: a new member's node starts in the state a quorum of member nodes
signed, then applies the blocks after it, instead of replaying the log from block 1.

Any node holding a final checkpoint exports the engine's state at that checkpoint's block
(`setara checkpoint snapshot`). The new node trusts nothing in the file it could not check:
- the state must hash to the checkpoint's state hash, and the checkpoint must carry a quorum of
  valid signatures of the member nodes registered in that state's network;
- that network must be the one the member was given (`--network`, as it stands at the snapshot),
  which is what anchors the keys: a file made up with its own keys and network is refused;
- the stream's block at that seq must be signed by a registered sequencer and have the
  checkpoint's block hash; its header gives the command count, time and epoch the node starts at.
Only the journal's hash chain head comes from the file unchecked: that chain is each store's
own check of its journal, not something the members sign.

The full replay from block 1 stays available: a node started without `--snapshot` does it, and
the stream keeps every block (delete and purge are denied).
"""

from __future__ import annotations

import hashlib
import zlib

import orjson

from setara.core import Engine
from setara.core.network import Network
from setara.node.node import Node, SetaraError, engine_at
from setara.node.replicate import registry_of
from setara.replication.checkpoint import CheckpointError, is_final, parse_signed_checkpoint, verify_offline
from setara.replication.header import header_signed_by_sequencer
from setara.replication.stream import ReplicatedLog
from setara.store import Base

__all__ = ["SNAPSHOT_BYTES_MAX", "SnapshotError", "export_snapshot", "start_from_snapshot"]

SNAPSHOT_FORMAT = "setara-snapshot/1"
# The decompressed file: its header line and the engine's state (about 27 MB per million final
# payments, see Node's snapshots). A bigger file is refused rather than read into memory.
SNAPSHOT_BYTES_MAX = 4 * 1024**3
_HEADER_BYTES_MAX = 1024 * 1024


class SnapshotError(SetaraError):
    """A snapshot cannot be made or is not one to start from."""


def export_snapshot(db: str) -> tuple[bytes, int]:
    """The snapshot file of the latest final checkpoint `db` holds, and its block's seq."""
    node = Node.open(db, write=False)
    try:
        doc = node.store.checkpoint("final")
        if doc is None:
            raise SnapshotError(f"{db} holds no final checkpoint: run `setara follow` until one is final")
        scp = parse_signed_checkpoint(doc)
        cp = scp.checkpoint
        if not is_final(scp, registry_of(node.network)):
            raise SnapshotError(f"the stored final checkpoint (block {cp.seq}) is not final under the keys "
                                "this store's log registers")
        at = node.store.block_hash_at(cp.seq)
        if at is None or at[0].hex() != cp.block_hash:
            raise SnapshotError(f"block {cp.seq}: this store's block differs from the final checkpoint's")
        state = engine_at(node.store, cp.seq).state_bytes()
        if hashlib.sha256(state).hexdigest() != cp.state_hash:
            raise SnapshotError(f"block {cp.seq}: this store's state differs from the final checkpoint's; "
                                "run `setara verify`")
        header = {"format": SNAPSHOT_FORMAT, "checkpoint": orjson.loads(scp.to_json()),
                  "journal_head": at[1].hex()}
        return zlib.compress(orjson.dumps(header) + b"\n" + state, 6), cp.seq
    finally:
        node.close()


def _read(data: bytes) -> tuple[dict[str, object], bytes]:
    d = zlib.decompressobj()
    try:
        raw = d.decompress(data, SNAPSHOT_BYTES_MAX + 1)
    except zlib.error:
        raise SnapshotError("not a Setara snapshot (not zlib data)") from None
    if len(raw) > SNAPSHOT_BYTES_MAX or d.unconsumed_tail:
        raise SnapshotError(f"the snapshot is larger than {SNAPSHOT_BYTES_MAX} bytes")
    head, sep, state = raw.partition(b"\n")
    if not sep or len(head) > _HEADER_BYTES_MAX:
        raise SnapshotError("not a Setara snapshot (no header line)")
    try:
        header = orjson.loads(head)
    except orjson.JSONDecodeError:
        raise SnapshotError("not a Setara snapshot (its header is not JSON)") from None
    if not isinstance(header, dict) or header.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"not a Setara snapshot (format is not {SNAPSHOT_FORMAT})")
    return header, state


def start_from_snapshot(db: str, data: bytes, expected: Network, log: ReplicatedLog) -> Node:
    """A new member's node at `db`, in the state of snapshot `data`, once every check in the
    module's docstring passed; nothing is written before that."""
    header, state = _read(data)
    try:
        scp = parse_signed_checkpoint(header.get("checkpoint"))  # type: ignore[arg-type]
        journal_head = bytes.fromhex(str(header.get("journal_head")))
    except (CheckpointError, ValueError) as e:
        raise SnapshotError(f"snapshot header: {e}") from None
    cp = scp.checkpoint
    if len(journal_head) != 32:
        raise SnapshotError("snapshot header: journal_head is not 32 bytes")
    if cp.network != expected.name:
        raise SnapshotError(f"the snapshot is of network {cp.network!r}, not {expected.name!r}")
    if hashlib.sha256(state).hexdigest() != cp.state_hash:
        raise SnapshotError(f"block {cp.seq}: the snapshot's state does not hash to its checkpoint's state hash")
    try:
        engine = Engine.from_state(orjson.loads(state))
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as e:
        raise SnapshotError(f"block {cp.seq}: the snapshot's state does not load: {e}") from None
    if engine.network is None or engine.network.to_config() != expected.to_config():
        raise SnapshotError(f"block {cp.seq}: the snapshot's network is not the one given with --network (give the "
                            "network file as it stands at the snapshot)")
    registry = registry_of(engine.network)
    problem = verify_offline(scp.to_json(), registry, expected.name)
    if problem is not None:
        raise SnapshotError(f"block {cp.seq}: the snapshot's checkpoint is not final: {problem}")
    sb = log.block(cp.seq)
    if sb is None:
        raise SnapshotError(f"block {cp.seq}: the stream does not hold it")
    h = sb.message.header
    if h.network != expected.name or h.hash != cp.block_hash or not header_signed_by_sequencer(
            h, sb.message.signature, registry):
        raise SnapshotError(f"block {cp.seq}: the stream's block is not the checkpoint's, or not signed by a "
                            "registered sequencer")
    cmds = h.first_cmd + h.n_cmds - 1
    if engine.applied != cmds:
        raise SnapshotError(f"block {cp.seq}: the snapshot's state holds {engine.applied} commands, the block "
                            f"ends at command {cmds}")
    base = Base(cp.seq, cmds, bytes.fromhex(cp.block_hash), journal_head, h.time_ms, h.epoch)
    node = Node.create_from_snapshot(db, base, state)
    try:
        signed = scp.to_json()
        for kind in ("base", "final", "latest"):
            node.store.save_checkpoint(kind, signed)
    except BaseException:
        node.close()
        raise
    return node
