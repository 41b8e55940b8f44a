"""Who is calling: the key's principal, and the roles an endpoint needs."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from setara.api.keys import Principal, authenticate
from setara.api.problems import ApiProblem, unauthorized
from setara.api.state import Api, api_of

__all__ = ["ADMIN_READ", "AUTH_CACHE_S", "AdminReader", "Compliance", "Member", "MemberOrOperator", "Operator",
           "Who", "check_key", "presented_key", "principal", "require", "require_now"]

AUTH_CACHE_S = 1.0  # a revoked key is refused at most this long after `setara keys revoke`
AUTH_CACHE_MAX = 10_000
ADMIN_READ = ("operator", "compliance", "auditor")


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


async def principal(request: Request) -> Principal:
    """The key's principal. The check is one indexed read on the event loop's own connection
    (WAL: it never waits for the writer), cached for AUTH_CACHE_S so a revocation is honoured within
    that time."""
    return check_key(api_of(request), request)


def check_key(api: Api, request: Request) -> Principal:
    key = presented_key(request)
    if not key:
        if request.headers.get("authorization"):
            raise unauthorized("the Authorization header must be `Bearer <API key>`")
        raise unauthorized("an API key is required (Authorization: Bearer <key>, or X-API-Key)")
    key = key.strip()
    t = time.monotonic()
    hit = api.auth_cache.get(key)
    if hit is not None and t - hit[1] < AUTH_CACHE_S:
        return hit[0]
    who = authenticate(api.reader(), key)
    if who is None:
        api.auth_cache.pop(key, None)
        raise unauthorized("the API key is unknown or revoked")
    if len(api.auth_cache) >= AUTH_CACHE_MAX:
        api.auth_cache.clear()
    api.auth_cache[key] = (who, t)
    return who


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    async def check(request: Request) -> Principal:
        who = check_key(api_of(request), request)
        require_now(who, *roles)
        return who

    return check


def require_now(who: Principal, *roles: str) -> None:
    if who.role not in roles:
        raise ApiProblem(403, "Forbidden", f"this needs the role {' or '.join(roles)}; the key has {who.role}",
                         field="Authorization")


Who = Annotated[Principal, Depends(principal)]
AdminReader = Annotated[Principal, Depends(require(*ADMIN_READ))]
Operator = Annotated[Principal, Depends(require("operator"))]
Compliance = Annotated[Principal, Depends(require("compliance"))]
Member = Annotated[Principal, Depends(require("member"))]
MemberOrOperator = Annotated[Principal, Depends(require("member", "operator"))]
