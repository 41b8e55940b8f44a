"""Node keys (Ed25519) and the registry of the network's nodes with its quorum rule.

A private key file is PKCS#8 PEM, created with mode 0600 and never overwritten. A public key
travels as base64 of its 32 raw bytes (what `setara node keygen` prints and `[[node]]` holds).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "KeyFileError",
    "KeyFileExists",
    "KeyFormatError",
    "KeyRegistry",
    "NodeKey",
    "RegistryError",
    "default_quorum",
    "generate",
    "keygen",
    "load_private_key",
    "parse_public_key",
    "public_key_b64",
    "sign",
    "signature_b64",
    "signature_from_b64",
    "verify",
    "write_private_key",
]

# Node names end up in NATS subjects (`<stream>.checkpoints.<node>`): one token, no wildcards.
NODE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_KEY_FILE_BYTES = 16 * 1024
SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32


class KeyFormatError(ValueError):
    """A key or a signature is malformed."""


class KeyFileError(OSError):
    """A key file cannot be written or read (the CLI exits 2 with this message)."""


class KeyFileExists(KeyFileError):
    """The key file exists already: a key is never overwritten."""


class RegistryError(ValueError):
    """The `[[node]]` tables or `[finality]` are inconsistent."""


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write_private_key(key: Ed25519PrivateKey, path: str | os.PathLike[str]) -> None:
    """Write `key` to a new file `path` with mode 0600, fsynced; refuse an existing path."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    p = Path(path)
    try:
        # O_EXCL: refuse atomically (no check-then-create race); the mode applies at creation.
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileExists(f"{p}: exists already; a node key is never overwritten") from None
    except OSError as e:
        raise KeyFileError(f"{p}: cannot create the key file: {e.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # a umask cannot widen it, but be explicit against odd filesystems
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)


def keygen(path: str | os.PathLike[str]) -> str:
    """A new key written to `path`; returns its public key (base64 of the 32 raw bytes)."""
    key = generate()
    write_private_key(key, path)
    return public_key_b64(key)


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as e:
        raise KeyFileError(f"{p}: cannot read the key file: {e.strerror}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{p}: not a node key (larger than {MAX_KEY_FILE_BYTES} bytes)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{p}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{p}: not an Ed25519 key")
    return key


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def _b64(text: str, what: str, size: int) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"{what}: not base64") from None
    if len(raw) != size:
        raise KeyFormatError(f"{what}: {len(raw)} bytes, expected {size}")
    return raw


def parse_public_key(text: str, what: str = "public_key") -> Ed25519PublicKey:
    if not isinstance(text, str):
        raise KeyFormatError(f"{what}: not a string")
    return Ed25519PublicKey.from_public_bytes(_b64(text, what, PUBLIC_KEY_BYTES))


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def verify(public_key: str | Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """True when `signature` (64 raw bytes) is `public_key`'s over `data`."""
    try:
        pub = parse_public_key(public_key) if isinstance(public_key, str) else public_key
        pub.verify(signature, data)
    except (InvalidSignature, KeyFormatError, ValueError):
        return False
    return True


def signature_from_b64(text: str, what: str = "signature") -> bytes:
    if not isinstance(text, str):
        raise KeyFormatError(f"{what}: not a string")
    return _b64(text, what, SIGNATURE_BYTES)


def signature_b64(signature: bytes) -> str:
    return base64.b64encode(signature).decode()


@dataclass(frozen=True, slots=True)
class NodeKey:
    """One registered node: `member` set for a member's node; `sequencer` may sign blocks."""

    name: str
    public_key: str
    member: str | None = None
    sequencer: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NODE_NAME_RE.match(self.name):
            raise RegistryError(f"node name {self.name!r}: 1 to 64 of A-Z a-z 0-9 _ -")
        try:
            parse_public_key(self.public_key, f"node {self.name}: public_key")
        except KeyFormatError as e:
            raise RegistryError(str(e)) from None
        if self.member is not None and (not isinstance(self.member, str) or not self.member):
            raise RegistryError(f"node {self.name}: member must be a member id")
        if not isinstance(self.sequencer, bool):
            raise RegistryError(f"node {self.name}: sequencer must be true or false")


def default_quorum(members: int) -> int:
    """⌊2M/3⌋+1 of the M member nodes: any two quorums share more than a third of them."""
    return 2 * members // 3 + 1


@dataclass(frozen=True, slots=True)
class KeyRegistry:
    """The network's node keys (as the log registers them) and its finality quorum."""

    nodes: Mapping[str, NodeKey]
    quorum: int

    @classmethod
    def build(cls, nodes: Iterable[NodeKey], quorum: int | None = None) -> KeyRegistry:
        by_name: dict[str, NodeKey] = {}
        keys: dict[str, str] = {}
        for n in nodes:
            if n.name in by_name:
                raise RegistryError(f"node {n.name}: registered twice")
            if n.public_key in keys:
                raise RegistryError(f"node {n.name}: same public_key as node {keys[n.public_key]}")
            by_name[n.name] = n
            keys[n.public_key] = n.name
        m = sum(1 for n in by_name.values() if n.member is not None)
        q = default_quorum(m) if quorum is None else quorum
        if isinstance(q, bool) or not isinstance(q, int) or q < 1:
            raise RegistryError(f"finality.quorum: {q!r} is not a positive integer")
        if m and q > m:
            raise RegistryError(f"finality.quorum: {q} is more than the {m} member nodes")
        return cls(by_name, q)

    @classmethod
    def from_toml(cls, node_tables: list[dict[str, Any]], finality: Mapping[str, Any] | None = None) -> KeyRegistry:
        """From a network TOML's `[[node]]` tables and `[finality]` table (already parsed)."""
        nodes = []
        for i, t in enumerate(node_tables, 1):
            if not isinstance(t, dict):
                raise RegistryError(f"node #{i}: not a table")
            unknown = set(t) - {"name", "public_key", "member", "sequencer"}
            if unknown:
                raise RegistryError(f"node #{i}: unknown field {sorted(unknown)[0]}")
            for f in ("name", "public_key"):
                if f not in t:
                    raise RegistryError(f"node #{i}: {f} is missing")
            nodes.append(NodeKey(t["name"], t["public_key"], t.get("member"), t.get("sequencer", False)))
        quorum = None if finality is None else finality.get("quorum")
        return cls.build(nodes, quorum)

    @property
    def member_nodes(self) -> list[NodeKey]:
        return [n for n in self.nodes.values() if n.member is not None]

    def sequencer(self, name: str) -> NodeKey | None:
        n = self.nodes.get(name)
        return n if n is not None and n.sequencer else None

    def by_public_key(self, public_key: str) -> NodeKey | None:
        for n in self.nodes.values():
            if n.public_key == public_key:
                return n
        return None
