"""Checkpoints: a node's signed statement "after block `seq` (hash `block_hash`), the state hash
is `state_hash`", finality by quorum, equivocation proofs, and the local signing guard.

The JSON shape is the one `setara checkpoint show` prints (GUIDE §3): {"network", "seq",
"block_hash", "state_hash", "signatures": [{"node", "member", "public_key", "signature"}],
"final"}. A node gossips its own checkpoint in that shape with its one signature.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from setara.replication.header import (
    MAX_NETWORK_CHARS,
    BlockHeader,
    header_signed_by_sequencer,
    signed_header_json,
)
from setara.replication.keys import (
    KeyFormatError,
    KeyRegistry,
    public_key_b64,
    sign,
    signature_b64,
    signature_from_b64,
    verify,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointSignature",
    "GuardViolation",
    "SignedCheckpoint",
    "SigningGuard",
    "find_conflicts",
    "is_final",
    "latest_final",
    "merge",
    "parse_signed_checkpoint",
    "sign_checkpoint",
    "signature_problem",
    "valid_member_signers",
    "verify_offline",
]

CHECKPOINT_DOMAIN = b"setara/checkpoint/v1\n"
MAX_CHECKPOINT_BYTES = 1024 * 1024
MAX_SIGNATURES = 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(ValueError):
    """A checkpoint document is malformed."""


class GuardViolation(RuntimeError):
    """Signing this checkpoint would contradict what this node signed before (or it stopped)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    network: str
    seq: int
    block_hash: str  # hex
    state_hash: str  # hex, what `setara verify` prints for the store at `seq`

    def __post_init__(self) -> None:
        if not isinstance(self.network, str) or not 0 < len(self.network) <= MAX_NETWORK_CHARS:
            raise CheckpointError(f"network: a string of 1 to {MAX_NETWORK_CHARS} characters")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 1:
            raise CheckpointError("seq: a positive integer")
        for f in ("block_hash", "state_hash"):
            v = getattr(self, f)
            if not isinstance(v, str) or not _HEX64.match(v):
                raise CheckpointError(f"{f}: 64 lowercase hex digits")

    def as_dict(self) -> dict[str, Any]:
        return {"network": self.network, "seq": self.seq, "block_hash": self.block_hash,
                "state_hash": self.state_hash}

    def canonical_bytes(self) -> bytes:
        return CHECKPOINT_DOMAIN + orjson.dumps(self.as_dict(), option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class CheckpointSignature:
    node: str
    member: str | None
    public_key: str  # base64 of 32 raw bytes
    signature: str  # base64 of 64 raw bytes

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "member": self.member, "public_key": self.public_key,
                "signature": self.signature}


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    signatures: tuple[CheckpointSignature, ...]

    def as_dict(self, final: bool | None = None) -> dict[str, Any]:
        """The `checkpoint show` shape; `final` is included when given."""
        d = self.checkpoint.as_dict()
        d["signatures"] = [s.as_dict() for s in self.signatures]
        if final is not None:
            d["final"] = final
        return d

    def to_json(self, final: bool | None = None) -> bytes:
        return orjson.dumps(self.as_dict(final))


def sign_checkpoint(cp: Checkpoint, key: Ed25519PrivateKey, node: str, member: str | None) -> SignedCheckpoint:
    sig = CheckpointSignature(node, member, public_key_b64(key), signature_b64(sign(key, cp.canonical_bytes())))
    return SignedCheckpoint(cp, (sig,))


def parse_signed_checkpoint(data: bytes | str | Mapping[str, Any]) -> SignedCheckpoint:
    """From the `checkpoint show` JSON (a "final" field, if any, is ignored: it is recomputed)."""
    if isinstance(data, bytes | str):
        if len(data) > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(f"checkpoint: larger than {MAX_CHECKPOINT_BYTES} bytes")
        try:
            d = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise CheckpointError("checkpoint: not JSON") from None
    else:
        d = data
    if not isinstance(d, Mapping):
        raise CheckpointError("checkpoint: not a JSON object")
    for f in ("network", "seq", "block_hash", "state_hash", "signatures"):
        if f not in d:
            raise CheckpointError(f"checkpoint: {f} is missing")
    extra = set(d) - {"network", "seq", "block_hash", "state_hash", "signatures", "final"}
    if extra:
        raise CheckpointError(f"checkpoint: {sorted(extra)[0]} is unknown")
    cp = Checkpoint(d["network"], d["seq"], d["block_hash"], d["state_hash"])
    sigs = d["signatures"]
    if not isinstance(sigs, list) or len(sigs) > MAX_SIGNATURES:
        raise CheckpointError(f"signatures: a list of at most {MAX_SIGNATURES}")
    out = []
    for i, s in enumerate(sigs, 1):
        if not isinstance(s, Mapping) or set(s) != {"node", "member", "public_key", "signature"}:
            raise CheckpointError(f"signatures[{i}]: not {{node, member, public_key, signature}}")
        if not isinstance(s["node"], str) or not (s["member"] is None or isinstance(s["member"], str)):
            raise CheckpointError(f"signatures[{i}]: node must be a string, member a string or null")
        if not isinstance(s["public_key"], str) or not isinstance(s["signature"], str):
            raise CheckpointError(f"signatures[{i}]: public_key and signature must be base64 strings")
        out.append(CheckpointSignature(s["node"], s["member"], s["public_key"], s["signature"]))
    return SignedCheckpoint(cp, tuple(out))


def signature_problem(cp: Checkpoint, sig: CheckpointSignature, registry: KeyRegistry) -> str | None:
    """None when `sig` is a valid signature of `cp` by the registered node it names."""
    node = registry.nodes.get(sig.node)
    if node is None:
        return f"node {sig.node} is not registered"
    if sig.public_key != node.public_key:
        return f"node {sig.node}: public_key is not its registered key"
    if sig.member != node.member:
        return f"node {sig.node}: member {sig.member!r} is not its registered member {node.member!r}"
    try:
        raw = signature_from_b64(sig.signature)
    except KeyFormatError as e:
        return f"node {sig.node}: {e}"
    if not verify(node.public_key, raw, cp.canonical_bytes()):
        return f"node {sig.node}: signature does not verify"
    return None


def valid_member_signers(scp: SignedCheckpoint, registry: KeyRegistry) -> list[str]:
    """Distinct registered member nodes whose signature on the checkpoint is valid."""
    seen: list[str] = []
    for s in scp.signatures:
        if s.node in seen:
            continue
        if registry.nodes.get(s.node, None) is not None and registry.nodes[s.node].member is not None \
                and signature_problem(scp.checkpoint, s, registry) is None:
            seen.append(s.node)
    return seen


def is_final(scp: SignedCheckpoint, registry: KeyRegistry, quorum: int | None = None) -> bool:
    """At least `quorum` (default: the registry's) registered member nodes validly signed this
    same (network, seq, block_hash, state_hash). Every block at or before `seq` is then final."""
    q = registry.quorum if quorum is None else quorum
    return len(valid_member_signers(scp, registry)) >= q


def merge(*items: SignedCheckpoint) -> SignedCheckpoint:
    """One checkpoint with the signatures of all `items` (which must agree), one per node, by name."""
    if not items:
        raise ValueError("merge: nothing to merge")
    cp = items[0].checkpoint
    by_node: dict[str, CheckpointSignature] = {}
    for it in items:
        if it.checkpoint != cp:
            raise CheckpointError(f"merge: checkpoints for seq {cp.seq} and {it.checkpoint.seq} differ")
        for s in it.signatures:
            by_node.setdefault(s.node, s)
    return SignedCheckpoint(cp, tuple(by_node[n] for n in sorted(by_node)))


def latest_final(checkpoints: Iterable[SignedCheckpoint], registry: KeyRegistry) -> SignedCheckpoint | None:
    """The highest checkpoint that a quorum of member nodes signed alike, their signatures merged
    (None when none is final yet). Every block at or before its seq is final."""
    groups: dict[Checkpoint, list[SignedCheckpoint]] = {}
    for scp in checkpoints:
        groups.setdefault(scp.checkpoint, []).append(scp)
    for cp in sorted(groups, key=lambda c: c.seq, reverse=True):
        merged = merge(*groups[cp])
        if is_final(merged, registry):
            return merged
    return None


def verify_offline(doc: bytes | str | Mapping[str, Any], registry: KeyRegistry,
                   network: str | None = None) -> str | None:
    """None when the checkpoint document is final under `registry`; else the first problem, as
    text. Every signature it carries must verify (a document with a forged one is refused even
    if enough others are valid)."""
    try:
        scp = parse_signed_checkpoint(doc)
    except CheckpointError as e:
        return str(e)
    if network is not None and scp.checkpoint.network != network:
        return f"network {scp.checkpoint.network!r} is not {network!r}"
    nodes = [s.node for s in scp.signatures]
    dup = next((n for n in nodes if nodes.count(n) > 1), None)
    if dup is not None:
        return f"node {dup} signs twice"
    for s in scp.signatures:
        problem = signature_problem(scp.checkpoint, s, registry)
        if problem is not None:
            return problem
    signers = valid_member_signers(scp, registry)
    if len(signers) < registry.quorum:
        return (f"seq {scp.checkpoint.seq}: {len(signers)} valid member node signature(s), "
                f"the quorum is {registry.quorum}")
    return None


def find_conflicts(headers: Iterable[tuple[BlockHeader, bytes]], checkpoints: Iterable[SignedCheckpoint],
                   registry: KeyRegistry) -> list[dict[str, Any]]:
    """Equivocation proofs, JSON-able, each carrying both signed items:
    - "block_header": two headers for one (network, seq) with different hashes, both validly
      signed by registered sequencers;
    - "checkpoint": two checkpoints for one (network, seq) signed by one node that disagree.
    Unsigned or badly signed items prove nothing and are ignored."""
    proofs: list[dict[str, Any]] = []
    first_header: dict[tuple[str, int], tuple[BlockHeader, bytes]] = {}
    proven_headers: set[tuple[str, int]] = set()
    for h, sig in headers:
        k = (h.network, h.seq)
        if k in proven_headers or not header_signed_by_sequencer(h, sig, registry):
            continue
        other = first_header.setdefault(k, (h, sig))
        if other[0].hash != h.hash:
            proven_headers.add(k)
            proofs.append({"kind": "block_header", "network": h.network, "seq": h.seq, "proof": [
                orjson.loads(signed_header_json(*other)), orjson.loads(signed_header_json(h, sig))]})
    first_cp: dict[tuple[str, str, int], SignedCheckpoint] = {}
    proven_cps: set[tuple[str, str, int]] = set()
    for scp in checkpoints:
        for s in scp.signatures:
            ck = (s.node, scp.checkpoint.network, scp.checkpoint.seq)
            if ck in proven_cps or signature_problem(scp.checkpoint, s, registry) is not None:
                continue
            single = SignedCheckpoint(scp.checkpoint, (s,))
            prior = first_cp.setdefault(ck, single)
            if prior.checkpoint != scp.checkpoint:
                proven_cps.add(ck)
                proofs.append({"kind": "checkpoint", "network": scp.checkpoint.network, "seq": scp.checkpoint.seq,
                               "node": s.node, "proof": [prior.as_dict(), single.as_dict()]})
    return proofs


class SigningGuard:
    """This node's promise never to sign two different checkpoints for one seq, nor one that does
    not extend its last, kept across restarts: the last signed checkpoint is in a small file,
    replaced atomically and fsynced before the signature may leave the node."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._last: Checkpoint | None = None
        self._stopped: str | None = None
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            d = orjson.loads(data)
            self._stopped = d.get("stopped")
            last = d.get("last")
            self._last = None if last is None else Checkpoint(**last)
        except (orjson.JSONDecodeError, AttributeError, TypeError, CheckpointError):
            # Guessing here could make this node equivocate: refuse until a human looks.
            raise GuardViolation(f"{self.path}: unreadable signing record; not signing") from None

    @property
    def last(self) -> Checkpoint | None:
        return self._last

    @property
    def stopped(self) -> str | None:
        return self._stopped

    def check_and_record(self, cp: Checkpoint, ancestor_hash: Callable[[int], str | None] | None = None) -> None:
        """Raise GuardViolation unless `cp` may be signed; record it durably when it may.

        `ancestor_hash(seq)`, when given, is the hash of block `seq` in the chain `cp` is on: the
        last signed checkpoint must be on that same chain."""
        if self._stopped is not None:
            raise GuardViolation(f"signing stopped: {self._stopped}")
        last = self._last
        if last is not None:
            if cp.network != last.network:
                raise GuardViolation(f"seq {cp.seq}: network {cp.network!r}, this node signs for {last.network!r}")
            if cp.seq < last.seq:
                raise GuardViolation(f"seq {cp.seq}: this node already signed seq {last.seq}")
            if cp.seq == last.seq:
                if cp != last:
                    raise GuardViolation(f"seq {cp.seq}: this node already signed a different checkpoint for it")
                return
            if ancestor_hash is not None and ancestor_hash(last.seq) != last.block_hash:
                raise GuardViolation(f"seq {cp.seq}: does not extend the chain of the last signed seq {last.seq}")
        self._write({"last": cp.as_dict(), "stopped": None})
        self._last = cp

    def stop(self, reason: str) -> None:
        """Never sign again (a node holding an equivocation proof stops signing), durably."""
        self._write({"last": None if self._last is None else self._last.as_dict(), "stopped": reason})
        self._stopped = reason

    def _write(self, d: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, orjson.dumps(d))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the rename itself must survive a crash
        finally:
            os.close(dfd)
