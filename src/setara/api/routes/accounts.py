"""Accounts and statements. Statements come from the entries read model, never from the engine,
paged and bounded; a JSON page is streamed and stops when its client goes away."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from setara.api.auth import Who
from setara.api.problems import ApiProblem
from setara.api.state import Api, api_of
from setara.node import Store
from setara.node.statements import STATEMENT_PAGE_MAX, EntryRange, account, camt053_page, date_range, json_chunks

__all__ = ["router"]

router = APIRouter(tags=["accounts"])


@router.get("/v1/accounts")
def accounts(request: Request, who: Who, member: Annotated[str | None, Query(max_length=64)] = None
             ) -> list[dict[str, str]]:
    """Settlement accounts (own for a member; all, or one member's, for admin roles)."""
    api = api_of(request)
    if who.role == "member":
        member = who.member
    net = api.network
    if member is not None and member not in net.members:
        raise ApiProblem(404, "Not Found", f"unknown member {member}", field="member")
    out = []
    for m, c, bal, avail in sorted(api.reader().balances()):
        if m not in net.members or (member is not None and m != member):
            continue
        out.append({"member": m, "currency": c, "balance": api.amount(bal, c), "available": api.amount(avail, c)})
    return out


_STATEMENT_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}, "application/xml": {}}}}


@router.get("/v1/statements/{currency}", responses=_STATEMENT_DOC)
async def statement(
    request: Request, currency: str, who: Who,
    format: Literal["json", "camt053"] = "json",
    member: Annotated[str | None, Query(max_length=64, description="admin roles: the account holder")] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="json: journal seq of the previous page's last entry")] = 0,
    limit: Annotated[int, Query(ge=1, le=STATEMENT_PAGE_MAX, description="json: entries a page")] = 100,
    business_day: Annotated[int | None, Query(ge=1, le=10**9, description="entries of one business day")] = None,
    from_: Annotated[date | None, Query(alias="from", description="first UTC date of a range (YYYY-MM-DD)")] = None,
    to: Annotated[date | None, Query(description="last UTC date of a range, inclusive")] = None,
    page: Annotated[int, Query(ge=1, le=10**9, description="camt053: page number, from 1")] = 1,
    page_size: Annotated[int, Query(ge=1, le=STATEMENT_PAGE_MAX, description="camt053: entries a page")]
    = STATEMENT_PAGE_MAX,
) -> Response:
    """One account's statement from the entries read model, bounded: JSON pages of at most 1000
    entries (`after`, `limit`, `next_after`), optionally within one `business_day` or a `from`/`to`
    date range; camt.053 for one business day or one date range, `page` by `page`."""
    api = api_of(request)
    if who.role == "member":
        member = who.member
    if member is None:
        raise ApiProblem(422, "Missing member", "admin roles name the account holder with ?member=", field="member")
    if business_day is not None and (from_ is not None or to is not None):
        raise ApiProblem(422, "Invalid request", "give business_day or from/to, not both", field="business_day")
    rng = EntryRange(business_day=business_day)
    if from_ is not None or to is not None:
        rng = date_range(from_, to)
    acct = account(api.network, member, currency)
    await api.entries_caught_up()
    if format == "camt053":
        doc = await api.in_statement_thread(
            lambda store: camt053_page(store, api.network, acct, rng, page=page, page_size=page_size, catch_up=False))
        return Response(doc, media_type="application/xml")
    chunks: Iterator[bytes] | None = None

    def start(store: Store) -> tuple[Iterator[bytes], bytes]:
        nonlocal chunks
        chunks = json_chunks(store, acct, after=after, limit=limit, rng=rng, catch_up=False)
        return chunks, next(chunks)  # validation happens here: a refusal is still a problem answer

    it, first = await api.in_statement_thread(start)
    return StreamingResponse(_stream(request, api, first, it), media_type="application/json")


async def _stream(request: Request, api: Api, first: bytes, chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The page's chunks; stops reading as soon as the client has gone. Chunks are built by the
    server's one statement thread (`Api.in_statement_thread`): however many statements run, they
    take turns there, within its CPU budget."""
    try:
        yield first
        while True:
            if await request.is_disconnected():
                return
            chunk = await api.in_statement_thread(lambda _store: next(chunks, None))
            if chunk is None:
                return
            yield chunk
    finally:
        with contextlib.suppress(Exception):
            await api.in_statement_thread(lambda _store: chunks.close())  # type: ignore[attr-defined]


def _next_or_none(it: Iterator[bytes]) -> bytes | None:
    return next(it, None)
