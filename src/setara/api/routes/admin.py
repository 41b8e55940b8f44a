"""Operator, compliance and auditor endpoints: queue, cycles, members, holds and their review,
the dashboard's overview."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request

from setara.api.auth import AdminReader, Compliance, Operator
from setara.api.body import decode_json, read_body
from setara.api.problems import ApiProblem
from setara.api.schemas import NOTE_BODY
from setara.api.state import Api, api_of
from setara.node import dashboard, usecases, views
from setara.ports import now_ms

__all__ = ["router"]

PAGE_LIMIT_MAX = 1000
NOTE_CHARS_MAX = 1000

router = APIRouter(tags=["admin"])


def _live_json(api: Api, p: Any) -> dict[str, Any]:
    return {"id": p.id, "debtor": p.debtor, "creditor": p.creditor, "currency": p.currency,
            "amount": api.amount(p.amount_minor, p.currency), "status": p.status,
            "priority": "URGENT" if p.priority == 0 else "NORMAL", "to_currency": p.to_currency,
            "accepted_ms": p.accepted_ms}


@router.get("/v1/admin/queue")
async def admin_queue(request: Request, who: AdminReader,
                      limit: Annotated[int, Query(ge=0, le=PAGE_LIMIT_MAX)] = 100,
                      currency: Annotated[str | None, Query(max_length=3)] = None) -> dict[str, Any]:
    """Payments waiting, in settlement order (per debtor and currency: priority, then arrival)."""
    api = api_of(request)
    if currency is not None and currency not in api.network.currencies:
        raise ApiProblem(404, "Not Found", f"currency {currency} is not in the network", field="currency")

    def run(node: Any) -> tuple[int, list[dict[str, Any]], dashboard.EngineSummary]:
        n, first = views.queue(node.engine, currency=currency, limit=limit)
        return n, [_live_json(api, p) for p in first], dashboard.engine_summary(node)

    n, items, summary = await api.call(run)
    by = summary.queued_by_currency if currency is None else \
        {c: v for c, v in summary.queued_by_currency.items() if c == currency}
    return {"count": n, "by_currency": dashboard.by_currency_json(api.network, by), "payments": items}


@router.post("/v1/admin/cycles/{currency}/close")
async def close_cycle(request: Request, currency: str, who: Operator) -> dict[str, Any]:
    """Close the current deferred-net cycle of a `settlement = "cycles"` currency ("*": all)."""
    api = api_of(request)
    found = await api.call(lambda node: usecases.close_cycle(node, currency))
    notices = [{"kind": n["event"], "data": {k: v for k, v in n.items() if k != "event"}} for n in found]
    settled = sum(int(n["data"].get("payments", 0)) for n in notices if n["kind"] == "cycle_closed")
    return {"currency": currency, "statuses": {"SETTLED": settled} if settled else {}, "notices": notices}


@router.get("/v1/admin/members")
def admin_members(request: Request, who: AdminReader) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = api_of(request).network.to_json()["members"]
    return members


@router.get("/v1/admin/holds")
async def admin_holds(request: Request, who: AdminReader,
                      limit: Annotated[int, Query(ge=0, le=PAGE_LIMIT_MAX)] = 100) -> dict[str, Any]:
    """Payments HELD by screening, oldest first, with the party data and the full screening
    decision (lists and versions, field, score, list, entity, matched name) compliance reviews."""
    api = api_of(request)
    n, held = await api.call(lambda node: views.holds(node.engine, limit=limit))

    def enrich() -> list[dict[str, Any]]:
        store = api.fresh_reader()
        rows = {h.payment.id: store.get_payment(h.payment.id) for h in held}
        found = dashboard.decisions(store, [r for r in rows.values() if r is not None])
        items = []
        for h in held:
            d = _live_json(api, h.payment)
            row = rows.get(h.payment.id)
            parties = store.payment_parties(h.payment.id) if row is not None else None
            d["earmarked"] = h.earmarked
            d["parties"] = parties or {}
            d["reason"] = row.reason if row is not None else None
            dec = found.get(h.payment.id)
            d["decision"] = dec.as_json() if dec is not None else None
            items.append(d)
        return items

    return {"count": n, "holds": await anyio.to_thread.run_sync(enrich)}


async def _review(request: Request, payment_id: str, officer: str, release: bool) -> dict[str, Any]:
    api = api_of(request)
    raw = await read_body(request, 64 * 1024)
    body = decode_json(raw) if raw.strip() else {}
    if not isinstance(body, dict):
        raise ApiProblem(422, "Invalid body", "the body must be a JSON object", field="body")
    note = body.get("note", "")
    if not isinstance(note, str) or not note.strip() or len(note) > NOTE_CHARS_MAX:
        raise ApiProblem(422, "Invalid note", f"note is required: a string of 1 to {NOTE_CHARS_MAX} characters "
                         "saying why", field="note")
    status = await api.call(lambda node: usecases.review_hold(node, payment_id, release=release, officer=officer,
                                                              note=note))
    return {"id": payment_id, "status": status, "officer": officer, "note": note.strip()}


@router.post("/v1/admin/holds/{payment_id}/release", openapi_extra=NOTE_BODY)
async def release_hold(request: Request, payment_id: str, who: Compliance) -> dict[str, Any]:
    """Release a screening hold (compliance): the payment settles or queues. The officer is the key."""
    return await _review(request, payment_id, who.key_id, True)


@router.post("/v1/admin/holds/{payment_id}/reject", openapi_extra=NOTE_BODY)
async def reject_hold(request: Request, payment_id: str, who: Compliance) -> dict[str, Any]:
    """Reject a screening hold (compliance): the payment is REJECTED (RR04)."""
    return await _review(request, payment_id, who.key_id, False)


@router.get("/v1/admin/overview")
async def admin_overview(request: Request, who: AdminReader) -> dict[str, Any]:
    """What the dashboard draws: balances and positions, queue, throughput, liquidity, netting."""
    api = api_of(request)
    summary = await api.call(dashboard.engine_summary)

    def read() -> dict[str, Any]:
        store = api.fresh_reader()
        return dashboard.overview(store, api.network, summary, api.cycles.read(store), time_ms=now_ms(),
                                  started_ms=api.started_ms)

    return await anyio.to_thread.run_sync(read)
