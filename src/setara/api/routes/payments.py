"""Payments: instruct (one, or a batch in one group commit), list, read and cancel."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from setara.api.auth import Member, MemberOrOperator, Who
from setara.api.body import decode_json, read_body
from setara.api.problems import ApiProblem, rejection_field, rejection_problem
from setara.api.schemas import BATCH_BODY, JSON_BODY
from setara.api.state import Api, api_of, visible_reason
from setara.api.writer import Submitted, WriterFailed
from setara.core.instructions import Instruction, Rejection, parse_json_instruction
from setara.node import SetaraError
from setara.node.usecases import cancel_payment as cancel_use_case

__all__ = ["BATCH_BODY_BYTES_MAX", "BATCH_ITEMS_MAX", "BODY_BYTES_MAX", "PAGE_LIMIT_MAX", "router"]

BODY_BYTES_MAX = 64 * 1024
BATCH_BODY_BYTES_MAX = 16 * 1024 * 1024
BATCH_ITEMS_MAX = 10_000
PAGE_LIMIT_MAX = 1000

router = APIRouter(tags=["payments"])


def _check_debtor(who: Any, obj: dict[str, Any], prefix: str = "") -> None:
    debtor = obj.get("debtor")
    if isinstance(debtor, str) and debtor.strip() and debtor.strip() != who.member:
        raise ApiProblem(403, "Forbidden", f"only {debtor.strip()}'s key can instruct a debit of its account",
                         field=prefix + "debtor")


def _instruction(obj: dict[str, Any], api: Api) -> Instruction:
    """The one validation every front end shares (setara.core.instructions)."""
    if "amount" in obj and type(obj["amount"]) is not str:
        # Refused before the shared parser sees it: a JSON number has already been through a float.
        raise Rejection("AM12", "write amounts as decimal strings (\"1250.50\"), not JSON numbers",
                        obj.get("id") if isinstance(obj.get("id"), str) else None)
    return parse_json_instruction(obj, api.network)


async def _submit(api: Api, items: list[Instruction], source: str) -> list[Submitted]:
    try:
        done: list[Submitted] = await asyncio.wrap_future(api.writer.submit(items, source))
    except WriterFailed as e:
        raise ApiProblem(503, "Service Unavailable", str(e)) from None
    except SetaraError as e:
        raise ApiProblem(409, "Conflict", str(e)) from None
    except Exception as e:  # the engine refused the whole request before changing anything
        raise ApiProblem(409, "Conflict", str(e)) from None
    return done


def _ack_json(s: Submitted, who: Any) -> dict[str, Any]:
    a = s.ack
    code, reason = visible_reason(who, a.status, a.reason_code, a.reason)
    return {"id": a.id, "status": a.status, "reason_code": code, "reason": reason}


@router.post("/v1/payments", status_code=201, openapi_extra=JSON_BODY,
             responses={200: {"description": "already known: the current status (idempotent)"},
                        409: {"description": "id already used for a different instruction"},
                        413: {"description": f"body larger than {BODY_BYTES_MAX} bytes"}})
async def post_payment(request: Request, who: Member) -> JSONResponse:
    api = api_of(request)
    obj = decode_json(await read_body(request, BODY_BYTES_MAX))
    if not isinstance(obj, dict):
        raise ApiProblem(422, "Invalid instruction", "the body must be a JSON object", field="body")
    _check_debtor(who, obj)
    try:
        ins = _instruction(obj, api)
    except Rejection as r:
        raise rejection_problem(r) from None
    s = (await _submit(api, [ins], f"api:{who.key_id}"))[0]
    if s.ack.status == "REJECTED" and s.ack.reason_code == "DUPL":
        raise ApiProblem(409, "Conflict", s.ack.reason, field="id", code="DUPL")
    body = {**_ack_json(s, who), "debtor": ins.debtor, "creditor": ins.creditor, "currency": ins.currency,
            "amount": api.amount(ins.amount_minor, ins.currency)}
    return JSONResponse(body, status_code=200 if s.existed else 201)


@router.post("/v1/payments/batch", openapi_extra=BATCH_BODY,
             responses={413: {"description": f"body larger than {BATCH_BODY_BYTES_MAX} bytes"}})
async def post_batch(request: Request, who: Member) -> JSONResponse:
    """Many instructions in one request, one group commit: a result per item, in order. Items that fail
    validation are answered REJECTED with `field` and are not recorded."""
    api = api_of(request)
    raw = await read_body(request, BATCH_BODY_BYTES_MAX)
    objs = await anyio.to_thread.run_sync(decode_json, raw) if len(raw) > 65536 else decode_json(raw)
    if not isinstance(objs, list):
        raise ApiProblem(422, "Invalid batch", "the body must be a JSON array of instructions", field="body")
    if len(objs) > BATCH_ITEMS_MAX:
        raise ApiProblem(413, "Payload Too Large", f"at most {BATCH_ITEMS_MAX} instructions a batch", field="body")
    for i, o in enumerate(objs):
        if isinstance(o, dict):
            _check_debtor(who, o, f"[{i}].")

    def parse_all() -> tuple[list[dict[str, Any] | None], list[Instruction]]:
        out: list[dict[str, Any] | None] = []
        good: list[Instruction] = []
        for i, o in enumerate(objs):
            if not isinstance(o, dict):
                out.append({"index": i, "id": None, "status": "REJECTED", "reason_code": "FF01",
                            "reason": "an instruction must be a JSON object", "field": f"[{i}]"})
                continue
            try:
                good.append(_instruction(o, api))
                out.append(None)
            except Rejection as r:
                out.append({"index": i, "id": r.payment_id, "status": "REJECTED", "reason_code": r.code,
                            "reason": r.text, "field": f"[{i}].{rejection_field(r)}"})
        return out, good

    results, good = await anyio.to_thread.run_sync(parse_all) if len(objs) > 64 else parse_all()
    done = await _submit(api, good, f"api:{who.key_id}") if good else []
    it = iter(done)
    out = [r if r is not None else {"index": i, **_ack_json(next(it), who)} for i, r in enumerate(results)]
    return JSONResponse({"results": out, "count": len(out)})


@router.get("/v1/payments")
def list_payments(request: Request, who: Who,
                  status: Annotated[Literal["SETTLED", "QUEUED", "HELD", "REJECTED", "CANCELLED"] | None,
                                    Query()] = None,
                  after: Annotated[str | None, Query(max_length=64, description="last id of the previous page")]
                  = None,
                  limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
                  member: Annotated[str | None, Query(max_length=64,
                                                      description="admin roles: one member's payments")] = None,
                  ) -> dict[str, Any]:
    """A member's own payments (as debtor or creditor); admin roles see all. Ordered by id."""
    from setara.node import views

    api = api_of(request)
    if who.role == "member":
        member = who.member
    elif member is not None and member not in api.network.members:
        raise ApiProblem(404, "Not Found", f"unknown member {member}", field="member")
    rows = list(views.payments(api.fresh_reader(), member=member, status=status, after_id=after, limit=limit))
    return {"payments": [api.payment_json(p, who) for p in rows],
            "next_after": rows[-1].id if len(rows) == limit else None}


@router.get("/v1/payments/{payment_id}")
def get_payment(request: Request, payment_id: str, who: Who) -> dict[str, Any]:
    """One payment. A member reading its held payment sees HELD and a neutral reason only."""
    api = api_of(request)
    return api.payment_json(api.visible_payment(who, payment_id), who)


@router.post("/v1/payments/{payment_id}/cancel")
async def cancel_payment(request: Request, payment_id: str, who: MemberOrOperator) -> dict[str, Any]:
    """Cancel a QUEUED or HELD payment: the debtor's key, or an operator's."""
    api = api_of(request)
    row = await anyio.to_thread.run_sync(api.visible_payment, who, payment_id)
    if who.role == "member" and row.debtor != who.member:
        raise ApiProblem(403, "Forbidden", "only the debtor can cancel a payment", field="id")
    status = await api.call(lambda node: cancel_use_case(node, payment_id))
    return {"id": payment_id, "status": status}
