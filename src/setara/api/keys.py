"""API keys: random secrets shown once, stored as SHA-256 hashes, looked up by a public key id.

A key reads `<key_id>.<secret>`; the key id is the public, loggable part (it names the officer in
compliance reviews and is what `setara keys revoke` takes). Only the hash of the whole key is
stored, so a copy of the database does not give anyone a usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from setara.node import Store

__all__ = ["ROLES", "KeyError_", "Principal", "authenticate", "issue_key", "list_keys", "revoke_key"]

ROLES = ("member", "operator", "compliance", "auditor")
KEY_BYTES = 32
KEY_LEN_MAX = 256


class KeyError_(ValueError):
    """A key operation that cannot be done (unknown role or member, unknown key id)."""


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: str
    member: str | None

    @property
    def is_admin_reader(self) -> bool:
        return self.role in ("operator", "compliance", "auditor")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(store: Store, role: str, member: str | None, *, now_ms: int | None = None) -> tuple[str, str]:
    """Create a key; returns (key_id, key). The key itself is not stored and cannot be shown again."""
    if role not in ROLES:
        raise KeyError_(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if (role == "member") != (member is not None):
        raise KeyError_("a member key names exactly one member; other roles name none")
    t = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    for _ in range(8):
        key_id = "k" + secrets.token_hex(5)
        if not store.api_key_exists(key_id):
            break
    else:  # pragma: no cover - 2^40 ids
        raise KeyError_("could not find a free key id")
    key = f"{key_id}.{secrets.token_urlsafe(KEY_BYTES)}"
    store.add_api_key(key_id, _hash(key), role, member, t)
    return key_id, key


def revoke_key(store: Store, key_id: str, *, now_ms: int | None = None) -> bool:
    """Revoke a key; False when no such (unrevoked) key exists."""
    t = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    row = store.api_key(key_id)
    if row is None:
        raise KeyError_(f"no API key {key_id!r}")
    if row[3] is not None:
        return False
    store.revoke_api_key(key_id, t)
    return True


def list_keys(store: Store) -> list[dict[str, object]]:
    return [{"key_id": r[0], "role": r[1], "member": r[2], "created_ms": r[3], "revoked_ms": r[4]}
            for r in store.api_keys()]


def authenticate(store: Store, key: str) -> Principal | None:
    """The principal a presented key stands for, or None (unknown, malformed or revoked)."""
    if not key or len(key) > KEY_LEN_MAX or "." not in key:
        return None
    key_id = key.split(".", 1)[0]
    row = store.api_key(key_id)
    if row is None:
        return None
    key_hash, role, member, revoked = row
    if not hmac.compare_digest(str(key_hash), _hash(key)) or revoked is not None or role not in ROLES:
        return None
    return Principal(key_id, str(role), None if member is None else str(member))
