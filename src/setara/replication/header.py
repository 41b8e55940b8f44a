"""The signed block header and the wire format of one block message.

A block message is what the sequencer publishes for each block: the payload is the block's
replayable `log`, zlib-compressed; the NATS headers carry the header JSON (`Setara-Header`) and
the sequencer's Ed25519 signature over the header's canonical bytes (`Setara-Signature`, base64).
The header binds the log through `hash` = block_hash(prev_hash, seq, first_cmd, n_cmds, log), so
the signature covers the log, the chain and the epoch together.

Every check raises `BlockRejected` naming the block's seq: a follower stops on the first one.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from setara.replication.keys import (
    NODE_NAME_RE,
    KeyFormatError,
    KeyRegistry,
    sign,
    signature_b64,
    signature_from_b64,
    verify,
)
from setara.store.base import block_hash

__all__ = [
    "GENESIS_TIP",
    "HEADER_FIELD",
    "MAX_LOG_BYTES",
    "SIGNATURE_FIELD",
    "BlockHeader",
    "BlockMessage",
    "BlockRejected",
    "ChainTip",
    "build_block_message",
    "decode_block",
    "encode_block",
    "header_signed_by_sequencer",
    "parse_signed_header",
    "signed_header_json",
    "verify_block",
]

HEADER_FIELD = "Setara-Header"
SIGNATURE_FIELD = "Setara-Signature"
# A signature over a header can never be replayed as one over a checkpoint, or the reverse.
HEADER_DOMAIN = b"setara/block-header/v1\n"
MAX_LOG_BYTES = 64 * 1024 * 1024  # decompressed; a bigger "block" is refused before it is inflated
MAX_HEADER_BYTES = 4096
MAX_NETWORK_CHARS = 128
ZLIB_LEVEL = 1  # the writer's acknowledgement waits on it: speed over the last few percent
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_INT_FIELDS = ("epoch", "seq", "first_cmd", "n_cmds", "time_ms")


class BlockRejected(ValueError):
    """A block message fails a check. `seq` is the block's (None when not even that was readable)."""

    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(f"block {'?' if seq is None else seq}: {problem}")
        self.seq = seq
        self.problem = problem


@dataclass(frozen=True, slots=True)
class BlockHeader:
    network: str
    epoch: int
    seq: int
    first_cmd: int
    n_cmds: int
    time_ms: int
    prev_hash: str  # hex
    hash: str  # hex
    signer: str  # the sequencer node's name

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def canonical_bytes(self) -> bytes:
        """What the sequencer signs: sorted-key compact JSON, prefixed by a domain tag."""
        return HEADER_DOMAIN + orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)

    def to_json(self) -> str:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_dict(cls, d: Any, seq_hint: int | None = None) -> BlockHeader:
        if not isinstance(d, dict):
            raise BlockRejected(seq_hint, "header is not a JSON object")
        seq = d.get("seq")
        seq_ = seq if isinstance(seq, int) and not isinstance(seq, bool) else seq_hint
        fields = {"network", "signer", "prev_hash", "hash", *_INT_FIELDS}
        missing = fields - set(d)
        if missing:
            raise BlockRejected(seq_, f"header field {sorted(missing)[0]} is missing")
        extra = set(d) - fields
        if extra:
            raise BlockRejected(seq_, f"header field {sorted(extra)[0]} is unknown")
        for f in _INT_FIELDS:
            v = d[f]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BlockRejected(seq_, f"header field {f} is not a non-negative integer")
        # n_cmds may be 0: a block of refused lines only is still a link of the chain.
        if d["seq"] < 1 or d["first_cmd"] < 1:
            raise BlockRejected(seq_, "header fields seq and first_cmd start at 1")
        for f in ("prev_hash", "hash"):
            if not isinstance(d[f], str) or not _HEX64.match(d[f]):
                raise BlockRejected(seq_, f"header field {f} is not 64 lowercase hex digits")
        if not isinstance(d["network"], str) or not 0 < len(d["network"]) <= MAX_NETWORK_CHARS:
            raise BlockRejected(seq_, f"header field network is not a string of 1 to {MAX_NETWORK_CHARS} characters")
        if not isinstance(d["signer"], str) or not NODE_NAME_RE.match(d["signer"]):
            raise BlockRejected(seq_, "header field signer is not a node name")
        return cls(**d)

    @classmethod
    def from_json(cls, data: str | bytes, seq_hint: int | None = None) -> BlockHeader:
        if len(data) > MAX_HEADER_BYTES:
            raise BlockRejected(seq_hint, f"header is larger than {MAX_HEADER_BYTES} bytes")
        try:
            d = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise BlockRejected(seq_hint, "header is not JSON") from None
        return cls.from_dict(d, seq_hint)

    def tip(self) -> ChainTip:
        return ChainTip(self.seq, self.hash, self.first_cmd + self.n_cmds - 1, self.epoch)


@dataclass(frozen=True, slots=True)
class ChainTip:
    """Where a chain stands after its last block: what the next block must extend. A follower
    starting from a snapshot builds it from its store (no header needed)."""

    seq: int
    hash: str  # hex
    cmd_count: int
    epoch: int


GENESIS_TIP = ChainTip(0, "00" * 32, 0, 0)


@dataclass(frozen=True, slots=True)
class BlockMessage:
    """One block as it travels: signed header and the (uncompressed) log."""

    header: BlockHeader
    signature: bytes
    log: bytes


def build_block_message(key: Ed25519PrivateKey, *, signer: str, network: str, epoch: int, seq: int,
                        first_cmd: int, n_cmds: int, time_ms: int, prev_hash: bytes, log: bytes) -> BlockMessage:
    """Sign the header of a sealed block (`prev_hash` and the hash are the store's raw 32 bytes)."""
    h = block_hash(prev_hash, seq, first_cmd, n_cmds, log)
    header = BlockHeader.from_dict({
        "network": network, "epoch": epoch, "seq": seq, "first_cmd": first_cmd, "n_cmds": n_cmds,
        "time_ms": time_ms, "prev_hash": prev_hash.hex(), "hash": h.hex(), "signer": signer,
    })
    return BlockMessage(header, sign(key, header.canonical_bytes()), log)


def encode_block(msg: BlockMessage) -> tuple[bytes, dict[str, str]]:
    """(payload, NATS headers) of a block message."""
    return (zlib.compress(msg.log, ZLIB_LEVEL),
            {HEADER_FIELD: msg.header.to_json(), SIGNATURE_FIELD: signature_b64(msg.signature)})


def decode_block(payload: bytes, headers: Mapping[str, str] | None, seq_hint: int | None = None) -> BlockMessage:
    """Parse a block message; checks its form only (see verify_block for the rest)."""
    headers = headers or {}
    raw = headers.get(HEADER_FIELD)
    if raw is None:
        raise BlockRejected(seq_hint, f"no {HEADER_FIELD} header")
    header = BlockHeader.from_json(raw, seq_hint)
    try:
        signature = signature_from_b64(headers.get(SIGNATURE_FIELD, ""), SIGNATURE_FIELD)
    except KeyFormatError as e:
        raise BlockRejected(header.seq, str(e)) from None
    inflate = zlib.decompressobj()
    try:
        log = inflate.decompress(payload, MAX_LOG_BYTES + 1)
    except zlib.error:
        raise BlockRejected(header.seq, "payload is not zlib data") from None
    if len(log) > MAX_LOG_BYTES or inflate.unconsumed_tail:
        raise BlockRejected(header.seq, f"log is larger than {MAX_LOG_BYTES} bytes")
    if not inflate.eof:
        raise BlockRejected(header.seq, "payload is truncated")
    return BlockMessage(header, signature, log)


def verify_block(msg: BlockMessage, registry: KeyRegistry, prev: ChainTip, network: str) -> ChainTip:
    """Check one block against the registered keys and the chain so far; return the new tip.

    Checked: the network; the signer is a registered sequencer and the signature is its; the
    hash covers the log and the previous hash; seq, command numbering and prev_hash extend
    `prev`; the epoch does not go backwards.
    """
    h = msg.header
    if h.network != network:
        raise BlockRejected(h.seq, f"network {h.network!r} is not {network!r}")
    node = registry.sequencer(h.signer)
    if node is None:
        what = "not a sequencer" if h.signer in registry.nodes else "not a registered node"
        raise BlockRejected(h.seq, f"signer {h.signer} is {what}")
    if not verify(node.public_key, msg.signature, h.canonical_bytes()):
        raise BlockRejected(h.seq, f"signature is not {h.signer}'s")
    if block_hash(bytes.fromhex(h.prev_hash), h.seq, h.first_cmd, h.n_cmds, msg.log).hex() != h.hash:
        raise BlockRejected(h.seq, "hash does not match the log")
    if h.seq != prev.seq + 1:
        raise BlockRejected(h.seq, f"expected block {prev.seq + 1}")
    if h.prev_hash != prev.hash:
        raise BlockRejected(h.seq, f"prev_hash does not chain to block {prev.seq}")
    if h.first_cmd != prev.cmd_count + 1:
        raise BlockRejected(h.seq, f"first_cmd {h.first_cmd}, expected {prev.cmd_count + 1}")
    if h.epoch < prev.epoch:
        raise BlockRejected(h.seq, f"epoch {h.epoch} goes back from {prev.epoch}")
    return h.tip()


def header_signed_by_sequencer(header: BlockHeader, signature: bytes, registry: KeyRegistry) -> bool:
    node = registry.sequencer(header.signer)
    return node is not None and verify(node.public_key, signature, header.canonical_bytes())


def signed_header_json(header: BlockHeader, signature: bytes) -> bytes:
    """A seen header as nodes gossip it (`<stream>.headers.<node>`) and as a proof carries it."""
    return orjson.dumps({"header": header.as_dict(), "signature": signature_b64(signature)},
                        option=orjson.OPT_SORT_KEYS)


def parse_signed_header(data: bytes | str | Mapping[str, Any]) -> tuple[BlockHeader, bytes]:
    try:
        d = orjson.loads(data) if isinstance(data, bytes | str) else data
    except orjson.JSONDecodeError:
        raise BlockRejected(None, "signed header is not JSON") from None
    if not isinstance(d, Mapping) or set(d) != {"header", "signature"}:
        raise BlockRejected(None, "signed header is not {header, signature}")
    header = BlockHeader.from_dict(d["header"])
    try:
        return header, signature_from_b64(d["signature"])
    except KeyFormatError as e:
        raise BlockRejected(header.seq, str(e)) from None
