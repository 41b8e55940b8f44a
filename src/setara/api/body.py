"""Request bodies read strictly: bounded while they arrive, and JSON that cannot mean two things.

A body is refused on its Content-Length before any of it is read, and a body without one (chunked)
is counted as it streams in and refused as soon as it passes the limit: a client can never make
the server hold more than the limit in memory. JSON objects with a repeated key are refused (FF01,
naming the key): a gateway or signer reading the first value would see a different payment than
the engine, which would read the last.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from setara.api.problems import ApiProblem

__all__ = ["decode_json", "read_body", "too_large"]


def too_large(limit: int) -> ApiProblem:
    return ApiProblem(413, "Payload Too Large", f"the body is larger than {limit} bytes", field="body")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most `limit` bytes (413 otherwise, before reading past the limit)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ApiProblem(400, "Bad Request", "Content-Length is not a number", field="Content-Length") from None
        if n > limit:
            raise too_large(limit)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise too_large(limit)
    return bytes(buf)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return obj


def decode_json(raw: bytes) -> Any:
    """Decode a JSON body; 400 when it is not JSON, 422 (FF01, naming the key) for a repeated key."""
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as e:
        raise ApiProblem(422, "Invalid instruction", f"duplicate key {e.key}: a key may appear only once",
                         field=e.key, code="FF01") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError and undecodable bytes
        raise ApiProblem(400, "Malformed JSON", f"the body is not valid JSON ({e})", field="body") from None
