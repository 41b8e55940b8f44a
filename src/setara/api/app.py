"""The HTTP API: per-member payments, statements and ISO 20022; operator, compliance and auditor views.

One process owns the engine (`Writer`); request handlers parse and authorise, then hand validated
instructions to the writer and answer only once it has made them durable. Payment queries read
the `payments` projection through per-thread read connections, caught up from the blocks first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from setara.api.keys import Principal, authenticate
from setara.api.writer import Submitted, Writer, WriterFailed
from setara.core import HELD, REJECTED, Cancel, EngineError, Payment, Review
from setara.core.instructions import Instruction, Rejection, parse_json_instruction
from setara.core.money import format_amount
from setara.core.network import Network
from setara.node import Node, SetaraError
from setara.node.projection import project
from setara.ports import Screening, now_ms
from setara.store import PaymentRow, Store, StoreError, open_store

__all__ = ["Api", "ApiProblem", "create_app"]

PROBLEM = "application/problem+json"
BODY_BYTES_MAX = 64 * 1024
BATCH_BODY_BYTES_MAX = 16 * 1024 * 1024
BATCH_ITEMS_MAX = 10_000
XML_BYTES_MAX = 8 * 1024 * 1024
PAGE_LIMIT_MAX = 1000
AUTH_CACHE_S = 1.0  # a revoked key is refused at most this long after `setara keys revoke`
AUTH_CACHE_MAX = 10_000
LISTS_CHECK_S = 10.0  # how often the writer looks for a newly imported sanctions list
LATENCY_BUCKETS_MS = (1, 5, 10, 50, 100, 500, 1000, 5000, 60_000, 300_000, 3_600_000)
STATUSES = ("SETTLED", "QUEUED", "HELD", "REJECTED", "CANCELLED")
ADMIN_READ = ("operator", "compliance", "auditor")
_HERE = Path(__file__).parent


class ApiProblem(Exception):
    """An RFC 9457 problem answer."""

    def __init__(self, status: int, title: str, detail: str | None = None, *, field: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.field, self.code = status, title, detail, field, code
        self.headers = headers

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.field is not None:
            body["field"] = self.field
        if self.code is not None:
            body["code"] = self.code
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM, headers=self.headers)


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, "Unauthorized", detail, field="Authorization",
                      headers={"WWW-Authenticate": 'Bearer realm="setara"'})


def _not_found(pid: str) -> ApiProblem:
    return ApiProblem(404, "Not Found", f"no payment {pid}", field="id")


# ====================================================================== state


class Api:
    """What the handlers share: the writer-owned node, read connections, and small caches."""

    def __init__(self, db_url: str, screening: Screening | None = None) -> None:
        self.db_url = db_url
        self.node = Node.open(db_url, write=True)
        self.lists_version = -1
        self._lists_checked = 0.0
        self.fixed_screening = screening is not None
        if screening is not None:
            self.node.screening = screening
        else:
            self.refresh_screening(self.node, force=True)
        self.writer = Writer(self.node, before_block=None if self.fixed_screening else self.refresh_screening)
        self._local = threading.local()
        self._readers: list[Store] = []
        self._readers_lock = threading.Lock()
        self._project_lock = threading.Lock()
        self._cycles_lock = threading.Lock()
        self._cycles_upto = 0
        self._cycles: list[dict[str, Any]] = []
        self.started_ms = now_ms()
        self.metrics_public = os.environ.get("SETARA_METRICS_PUBLIC", "") == "1"
        self.auth_cache: dict[str, tuple[Principal, float]] = {}

    @property
    def network(self) -> Network:
        return self.node.network

    @property
    def screening_loaded(self) -> bool:
        return self.fixed_screening or self.lists_version > 0

    def refresh_screening(self, node: Node, *, force: bool = False) -> None:
        """Screen with the sanctions lists in the store, as `setara submit` does; a list imported while
        the server runs (`setara lists import`) is picked up within LISTS_CHECK_S."""
        t = time.monotonic()
        if not force and t - self._lists_checked < LISTS_CHECK_S:
            return
        self._lists_checked = t
        try:
            from setara.node.screening import PaymentScreening
        except ImportError:  # an engine without list screening: keep the node's own
            return
        version = node.store.lists_version()
        if version != self.lists_version:
            node.screening = PaymentScreening.from_store(node.store)
            if self.lists_version:  # a new version while serving: members and queue are screened again
                from setara.node.usecases import rescreen

                rescreen(node)
            self.lists_version = version

    def reader(self) -> Store:
        """This thread's read connection (SQLite connections are not shared between threads)."""
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = open_store(self.db_url)
            self._local.store = store
            with self._readers_lock:
                self._readers.append(store)
        return store

    def fresh_reader(self) -> Store:
        """A read connection whose payments projection includes every durable block."""
        store = self.reader()
        with self._project_lock:
            project(store)
        return store

    def close(self) -> None:
        self.writer.close()
        with self.writer.lock:
            self.node.close()
        with self._readers_lock:
            for s in self._readers:
                with contextlib.suppress(Exception):  # a connection of a finished thread
                    s.close()
            self._readers.clear()

    # ------------------------------------------------------------------ shapes
    def units(self, ccy: str | None) -> int:
        return (self.network.minor_units(ccy) if ccy else None) or 0

    def amount(self, minor: int, ccy: str) -> str:
        return format_amount(minor, self.units(ccy))

    def payment_json(self, p: PaymentRow) -> dict[str, Any]:
        return {
            "id": p.id, "debtor": p.debtor, "creditor": p.creditor, "currency": p.currency,
            "amount": self.amount(p.amount_minor, p.currency), "status": p.status,
            "reason_code": p.reason_code, "reason": p.reason, "priority": p.priority,
            "to_currency": p.to_currency,
            "credit_amount": None if p.credit_minor is None or not p.to_currency
            else self.amount(p.credit_minor, p.to_currency),
            "provider": p.provider, "rate": p.rate, "uetr": p.uetr, "end_to_end_id": p.end_to_end_id,
            "accepted_ms": p.accepted_ms, "updated_ms": p.updated_ms,
        }

    def live_json(self, p: Payment) -> dict[str, Any]:
        return {"id": p.id, "debtor": p.debtor, "creditor": p.creditor, "currency": p.currency,
                "amount": self.amount(p.amount_minor, p.currency), "status": p.status,
                "priority": "URGENT" if p.priority == 0 else "NORMAL", "to_currency": p.to_currency,
                "accepted_ms": p.accepted_ms}

    def visible_payment(self, who: Principal, pid: str) -> PaymentRow:
        row = self.fresh_reader().get_payment(pid)
        if row is None or (who.role == "member" and who.member not in (row.debtor, row.creditor)):
            raise _not_found(pid)  # another member's payment is indistinguishable from none
        return row

    # ------------------------------------------------------------------ cycles (netting)
    def cycles(self) -> list[dict[str, Any]]:
        """Notices of kind cycle_closed, scanned incrementally from the blocks."""
        with self._cycles_lock:
            store = self.reader()
            for b in store.iter_blocks(self._cycles_upto):
                try:
                    notices = orjson.loads(b.events).get("notices", [])
                except (orjson.JSONDecodeError, AttributeError):
                    notices = []
                for n in notices:
                    if len(n) >= 3 and n[1] == "cycle_closed" and isinstance(n[2], dict):
                        self._cycles.append({**n[2], "block": b.seq, "time_ms": b.time_ms})
                self._cycles_upto = b.seq
            self._cycles = self._cycles[-500:]
            return [dict(c, efficiency=_efficiency(c)) for c in self._cycles]


def _efficiency(c: dict[str, Any]) -> float | None:
    ppm = c.get("netting_efficiency_ppm")
    if isinstance(ppm, int | float) and c.get("gross_minor"):
        return float(ppm) / 1_000_000
    for k in ("efficiency", "netting_efficiency"):
        v = c.get(k)
        if isinstance(v, int | float):
            return float(v)
    gross = c.get("gross_minor", c.get("gross"))
    net = c.get("liquidity_needed_minor", c.get("net_minor", c.get("net")))
    try:
        g, n = float(gross), float(net)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if g <= 0 else 1.0 - n / g


# ====================================================================== auth


def _api(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


async def principal(request: Request) -> Principal:
    """The key's principal. The check is one indexed SQLite read on the event loop's own connection
    (WAL: it never waits for the writer), cached for AUTH_CACHE_S so a revocation is honoured within
    that time."""
    return _principal(_api(request), request, _presented_key(request))


def _principal(api: Api, request: Request, key: str | None) -> Principal:
    if not key:
        if request.headers.get("authorization"):
            raise _unauthorized("the Authorization header must be `Bearer <API key>`")
        raise _unauthorized("an API key is required (Authorization: Bearer <key>, or X-API-Key)")
    key = key.strip()
    t = time.monotonic()
    hit = api.auth_cache.get(key)
    if hit is not None and t - hit[1] < AUTH_CACHE_S:
        return hit[0]
    who = authenticate(api.reader(), key)
    if who is None:
        api.auth_cache.pop(key, None)
        raise _unauthorized("the API key is unknown or revoked")
    if len(api.auth_cache) >= AUTH_CACHE_MAX:
        api.auth_cache.clear()
    api.auth_cache[key] = (who, t)
    return who


Who = Annotated[Principal, Depends(principal)]


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    async def check(request: Request) -> Principal:
        who = _principal(_api(request), request, _presented_key(request))
        _require_now(who, *roles)
        return who

    return check


def _require_now(who: Principal, *roles: str) -> None:
    if who.role not in roles:
        raise ApiProblem(403, "Forbidden", f"this needs the role {' or '.join(roles)}; the key has {who.role}")


AdminReader = Annotated[Principal, Depends(require(*ADMIN_READ))]
Operator = Annotated[Principal, Depends(require("operator"))]
Compliance = Annotated[Principal, Depends(require("compliance"))]
Member = Annotated[Principal, Depends(require("member"))]


# ====================================================================== validation helpers

_FIELD_RES = (re.compile(r"^(?:missing |unknown )?field (\w+)"), re.compile(r"^(debtor|creditor|to_currency)\b"))
_CODE_FIELD = {"AM12": "amount", "AM03": "currency", "AG01": "creditor"}


def _rejection_field(r: Rejection) -> str:
    if r.code in ("AM12", "AG01"):
        return _CODE_FIELD[r.code]
    for rx in _FIELD_RES:
        m = rx.match(r.text)
        if m:
            return m.group(1)
    if r.code == "RC01":
        return "debtor" if r.text.startswith("debtor") else "creditor"
    return _CODE_FIELD.get(r.code, "body")


def _rejection_problem(r: Rejection, prefix: str = "") -> ApiProblem:
    return ApiProblem(422, "Invalid instruction", r.text, field=prefix + _rejection_field(r), code=r.code)


def _decode_json(raw: bytes, limit: int) -> Any:
    if len(raw) > limit:
        raise ApiProblem(413, "Payload Too Large", f"the body is larger than {limit} bytes", field="body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ApiProblem(400, "Malformed JSON", f"the body is not valid JSON ({e.msg})", field="body") from None


def _check_debtor(who: Principal, obj: dict[str, Any], prefix: str = "") -> None:
    debtor = obj.get("debtor")
    if isinstance(debtor, str) and debtor.strip() and debtor.strip() != who.member:
        raise ApiProblem(403, "Forbidden", f"only {debtor.strip()}'s key can instruct a debit of its account",
                         field=prefix + "debtor")


def _ack_json(s: Submitted) -> dict[str, Any]:
    a = s.ack
    return {"id": a.id, "status": a.status, "reason_code": a.reason_code, "reason": a.reason}


async def _await(fut: Any) -> Any:
    try:
        return await asyncio.wrap_future(fut)
    except WriterFailed as e:
        raise ApiProblem(503, "Service Unavailable", str(e)) from None
    except SetaraError as e:
        raise ApiProblem(409, "Conflict", str(e)) from None
    except EngineError as e:
        raise ApiProblem(409, "Conflict", str(e)) from None


_INSTRUCTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "debtor", "creditor", "currency", "amount"],
    "properties": {
        "id": {"type": "string", "description": "1-64 printable characters; idempotency key"},
        "debtor": {"type": "string", "description": "member id; must be the key's member"},
        "creditor": {"type": "string"},
        "currency": {"type": "string", "description": "ISO 4217 code of the network"},
        "amount": {"type": "string", "description": "decimal string in major units, e.g. 1250.50"},
        "priority": {"type": "string", "enum": ["URGENT", "NORMAL"]},
        "to_currency": {"type": "string"}, "quote_id": {"type": "string"}, "uetr": {"type": "string"},
        "end_to_end_id": {"type": "string"}, "debtor_name": {"type": "string"},
        "creditor_name": {"type": "string"}, "debtor_country": {"type": "string"},
        "creditor_country": {"type": "string"},
    },
}
_JSON_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": _INSTRUCTION_SCHEMA}}}}
_BATCH_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "array", "maxItems": BATCH_ITEMS_MAX, "items": _INSTRUCTION_SCHEMA}}}}}
_XML_BODY = {"requestBody": {"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}}}
_NOTE_BODY = {"requestBody": {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"note": {"type": "string", "maxLength": 1000}}}}}}}
_PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"description": d, "content": {PROBLEM: {"schema": {"type": "object"}}}}
    for s, d in ((401, "missing, unknown or revoked key"), (403, "wrong role or not the debtor"),
                 (404, "unknown, or not visible to this key"), (422, "invalid, with `field` naming it"))
}


# ====================================================================== app


def create_app(db_url: str, *, screening: Screening | None = None) -> FastAPI:
    """The API over the network stored at `db_url`; opens it as the single writer.

    `screening` replaces the node's screening (by default whatever `Node.open` configured).
    """
    api = Api(db_url, screening)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        await anyio.to_thread.run_sync(api.close)

    app = FastAPI(title="Setara API", version="1", lifespan=lifespan, responses=_PROBLEM_RESPONSES,
                  docs_url=None, redoc_url=None,
                  description="Per-member payments, statements and ISO 20022 over HTTP; operator, compliance and "
                              "auditor views. Errors are application/problem+json with a `field` member.")
    app.state.api = api
    _handlers(app)

    # ------------------------------------------------------------------ infrastructure
    @app.get("/healthz", tags=["infrastructure"])
    async def healthz() -> JSONResponse:
        ok = api.writer.alive
        body = {"status": "ok" if ok else "failed", "block": api.node.block_seq,
                "writer_queue": api.writer.queue_depth(), "screening_lists_loaded": api.screening_loaded}
        if not ok:
            body["detail"] = api.writer.failed or "the writer thread stopped"
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["infrastructure"], response_class=PlainTextResponse)
    def metrics(request: Request) -> PlainTextResponse:
        if not api.metrics_public:
            _require_now(_principal(api, request, _presented_key(request)), *ADMIN_READ)
        return PlainTextResponse(_metrics_text(api), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/whoami", tags=["infrastructure"])
    async def whoami(who: Who) -> dict[str, Any]:
        """The role, member and key id of the presented key."""
        return {"key_id": who.key_id, "role": who.role, "member": who.member}

    # ------------------------------------------------------------------ payments
    @app.post("/v1/payments", tags=["payments"], status_code=201, openapi_extra=_JSON_BODY,
              responses={200: {"description": "already known: the current status (idempotent)"},
                         409: {"description": "id already used for a different instruction"}})
    async def post_payment(request: Request, who: Member) -> JSONResponse:
        obj = _decode_json(await request.body(), BODY_BYTES_MAX)
        if not isinstance(obj, dict):
            raise ApiProblem(422, "Invalid instruction", "the body must be a JSON object", field="body")
        _check_debtor(who, obj)
        try:
            ins = parse_json_instruction(obj, api.network)
        except Rejection as r:
            raise _rejection_problem(r) from None
        res: list[Submitted] = await _await(api.writer.submit([ins], f"api:{who.key_id}"))
        s = res[0]
        if s.ack.status == REJECTED and s.ack.reason_code == "DUPL":
            raise ApiProblem(409, "Conflict", s.ack.reason, field="id", code="DUPL")
        body = {**_ack_json(s), "debtor": ins.debtor, "creditor": ins.creditor, "currency": ins.currency,
                "amount": api.amount(ins.amount_minor, ins.currency)}
        return JSONResponse(body, status_code=200 if s.existed else 201)

    @app.post("/v1/payments/batch", tags=["payments"], openapi_extra=_BATCH_BODY)
    async def post_batch(request: Request, who: Member) -> JSONResponse:
        """Many instructions in one request, one group commit: a result per item, in order. Items that fail
        validation are answered REJECTED with `field` and are not recorded."""
        objs = _decode_json(await request.body(), BATCH_BODY_BYTES_MAX)
        if not isinstance(objs, list):
            raise ApiProblem(422, "Invalid batch", "the body must be a JSON array of instructions", field="body")
        if len(objs) > BATCH_ITEMS_MAX:
            raise ApiProblem(413, "Payload Too Large", f"at most {BATCH_ITEMS_MAX} instructions a batch",
                             field="body")
        for i, o in enumerate(objs):
            if isinstance(o, dict):
                _check_debtor(who, o, f"[{i}].")

        def parse_all() -> tuple[list[dict[str, Any] | None], list[Instruction]]:
            net = api.network
            out: list[dict[str, Any] | None] = []
            good: list[Instruction] = []
            for i, o in enumerate(objs):
                if not isinstance(o, dict):
                    out.append({"index": i, "id": None, "status": REJECTED, "reason_code": "FF01",
                                "reason": "an instruction must be a JSON object", "field": f"[{i}]"})
                    continue
                try:
                    good.append(parse_json_instruction(o, net))
                    out.append(None)
                except Rejection as r:
                    out.append({"index": i, "id": r.payment_id, "status": REJECTED, "reason_code": r.code,
                                "reason": r.text, "field": f"[{i}].{_rejection_field(r)}"})
            return out, good

        if len(objs) > 64:
            results, good = await anyio.to_thread.run_sync(parse_all)
        else:
            results, good = parse_all()
        done: list[Submitted] = await _await(api.writer.submit(good, f"api:{who.key_id}")) if good else []
        it = iter(done)
        out = []
        for i, r in enumerate(results):
            out.append(r if r is not None else {"index": i, **_ack_json(next(it))})
        return JSONResponse({"results": out, "count": len(out)})

    @app.get("/v1/payments", tags=["payments"])
    def list_payments(who: Who,
                      status: Annotated[Literal["SETTLED", "QUEUED", "HELD", "REJECTED", "CANCELLED"] | None,
                                        Query()] = None,
                      after: Annotated[str | None, Query(max_length=64, description="last id of the previous page")]
                      = None,
                      limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
                      member: Annotated[str | None, Query(max_length=64,
                                                          description="admin roles: one member's payments")] = None,
                      ) -> dict[str, Any]:
        """A member's own payments (as debtor or creditor); admin roles see all. Ordered by id."""
        if who.role == "member":
            member = who.member
        rows = list(api.fresh_reader().iter_payments(member=member, status=status, after_id=after, limit=limit))
        return {"payments": [api.payment_json(p) for p in rows],
                "next_after": rows[-1].id if len(rows) == limit else None}

    @app.get("/v1/payments/{payment_id}", tags=["payments"])
    def get_payment(payment_id: str, who: Who) -> dict[str, Any]:
        return api.payment_json(api.visible_payment(who, payment_id))

    @app.post("/v1/payments/{payment_id}/cancel", tags=["payments"])
    async def cancel_payment(payment_id: str, who: Annotated[Principal, Depends(require("member", "operator"))]
                             ) -> dict[str, Any]:
        """Cancel a QUEUED or HELD payment: the debtor's key, or an operator's."""
        row = await anyio.to_thread.run_sync(api.visible_payment, who, payment_id)
        if who.role == "member" and row.debtor != who.member:
            raise ApiProblem(403, "Forbidden", "only the debtor can cancel a payment", field="id")

        def run(node: Node) -> None:
            node.run(Cancel(payment_id, now_ms()))

        await _await(api.writer.call(run))
        return {"id": payment_id, "status": "CANCELLED"}

    # ------------------------------------------------------------------ accounts and statements
    @app.get("/v1/accounts", tags=["accounts"])
    def accounts(who: Who, member: Annotated[str | None, Query(max_length=64)] = None) -> list[dict[str, str]]:
        """Settlement accounts (own for a member; all, or one member's, for admin roles)."""
        if who.role == "member":
            member = who.member
        net = api.network
        out = []
        for m, c, bal, avail in sorted(api.reader().balances()):
            if m not in net.members or (member is not None and m != member):
                continue
            out.append({"member": m, "currency": c, "balance": api.amount(bal, c),
                        "available": api.amount(avail, c)})
        return out

    @app.get("/v1/statements/{currency}", tags=["accounts"],
             responses={200: {"content": {"application/json": {}, "application/xml": {}}}})
    def statement(currency: str, who: Who, format: Literal["json", "camt053"] = "json",
                  member: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        """A statement of one account since the network started, as JSON or camt.053."""
        from setara.node.messaging import statement_camt053, statement_json

        if who.role == "member":
            member = who.member
        if member is None:
            raise ApiProblem(422, "Missing member", "admin roles name the account holder with ?member=",
                             field="member")
        if currency not in api.network.currencies:
            raise ApiProblem(404, "Not Found", f"currency {currency} is not in the network", field="currency")
        with api.writer.lock:
            try:
                if format == "camt053":
                    return Response(statement_camt053(api.node, member, currency), media_type="application/xml")
                return JSONResponse(statement_json(api.node, member, currency))
            except ValueError as e:
                raise ApiProblem(404, "Not Found", str(e), field="currency") from None

    # ------------------------------------------------------------------ ISO 20022
    @app.post("/v1/iso20022", tags=["iso20022"], openapi_extra=_XML_BODY,
              responses={200: {"description": "pacs.002 (camt.029 for camt.056)",
                               "content": {"application/xml": {}}}})
    async def post_iso(request: Request, who: Member) -> Response:
        """One ISO 20022 message (pacs.008/009/004, camt.056), answered once durable."""
        from setara.node.messaging import submit_xml

        data = await request.body()
        if len(data) > XML_BYTES_MAX:
            raise ApiProblem(413, "Payload Too Large", f"the message is larger than {XML_BYTES_MAX} bytes",
                             field="body")
        if not data.strip():
            raise ApiProblem(422, "Empty message", "the body must be an ISO 20022 message", field="body")
        await anyio.to_thread.run_sync(_check_xml_debtor, api, who, data)
        result = await _await(api.writer.call(lambda node: submit_xml(node, data, source=f"api:{who.key_id}")))
        docs = [doc for _, doc in result.replies]
        if len(docs) == 1:
            return Response(docs[0], media_type="application/xml")
        inner = b"".join(re.sub(rb"^<\?xml[^>]*\?>\s*", b"", d) for d in docs)
        return Response(b'<?xml version="1.0" encoding="UTF-8"?>\n<SetaraReplies>' + inner + b"</SetaraReplies>",
                        media_type="application/xml")

    # ------------------------------------------------------------------ FX
    @app.get("/v1/fx/rates", tags=["fx"])
    def fx_rates(who: Who) -> list[dict[str, Any]]:
        t = now_ms()
        with api.writer.lock:
            rates = list(api.node.engine.valid_rates(t))
        return [{"provider": r.provider, "pair": f"{r.base}/{r.quote}", "base": r.base, "quote": r.quote,
                 "rate": r.text, "posted_ms": r.posted_ms, "expires_ms": r.expires_ms}
                for r in sorted(rates, key=lambda r: (r.base, r.quote, -r.value, r.provider))]

    # ------------------------------------------------------------------ admin
    @app.get("/v1/admin/queue", tags=["admin"])
    def admin_queue(who: AdminReader, limit: Annotated[int, Query(ge=0, le=PAGE_LIMIT_MAX)] = 100,
                    currency: Annotated[str | None, Query(max_length=3)] = None) -> dict[str, Any]:
        with api.writer.lock:
            queued = [p for p in api.node.engine.queued() if currency is None or p.currency == currency]
            queued.sort(key=lambda p: p.order)
            items = [api.live_json(p) for p in queued[:limit]]
        return {"count": len(queued), "by_currency": _sum_by_currency(api, queued), "payments": items}

    @app.post("/v1/admin/cycles/{currency}/close", tags=["admin"],
              responses={501: {"description": "this engine has no netting cycles yet"}})
    async def close_cycle(currency: str, who: Operator) -> dict[str, Any]:
        from setara.core import CloseCycle as close_cls
        if currency not in api.network.currencies:
            raise ApiProblem(404, "Not Found", f"currency {currency} is not in the network", field="currency")

        def run(node: Node) -> list[Any]:
            events: list[Any] = node.run(close_cls(currency, now_ms()))
            return events

        events = await _await(api.writer.call(run))
        notices = [{"kind": e.kind, "data": e.data} for e in events if type(e).__name__ == "Notice"]
        statuses: dict[str, int] = {}
        for e in events:
            st = getattr(e, "status", None)
            if isinstance(st, str):
                statuses[st] = statuses.get(st, 0) + 1
        return {"currency": currency, "statuses": statuses, "notices": notices}

    @app.get("/v1/admin/members", tags=["admin"])
    def admin_members(who: AdminReader) -> list[dict[str, Any]]:
        members: list[dict[str, Any]] = api.network.to_json()["members"]
        return members

    @app.get("/v1/admin/holds", tags=["admin"])
    def admin_holds(who: AdminReader, limit: Annotated[int, Query(ge=0, le=PAGE_LIMIT_MAX)] = 100
                    ) -> dict[str, Any]:
        """Payments HELD by screening, oldest first, with the party data compliance reviews."""
        with api.writer.lock:
            held = sorted(api.node.engine.held(), key=lambda p: p.order)
        store = api.fresh_reader()
        items = []
        for p in held[:limit]:
            d = api.live_json(p)
            row = store.get_payment(p.id)
            d["parties"] = orjson.loads(row.parties) if row is not None and row.parties else {}
            items.append(d)
        return {"count": len(held), "holds": items}

    async def review(payment_id: str, who: Principal, request: Request, release: bool) -> dict[str, Any]:
        raw = await request.body()
        note = ""
        if raw.strip():
            body = _decode_json(raw, BODY_BYTES_MAX)
            if not isinstance(body, dict):
                raise ApiProblem(422, "Invalid body", "the body must be a JSON object", field="body")
            n = body.get("note", "")
            if not isinstance(n, str) or len(n) > 1000:
                raise ApiProblem(422, "Invalid note", "note must be a string of at most 1000 characters",
                                 field="note")
            note = n

        def run(node: Node) -> str:
            st = node.engine.status(payment_id)
            if st is None:
                raise _not_found(payment_id)
            if st != HELD:
                raise ApiProblem(409, "Conflict", f"payment {payment_id} is {st}, not HELD", field="id")
            node.run(Review(payment_id, release, who.key_id, note, now_ms()))
            return node.engine.status(payment_id) or ""

        status = await _await(api.writer.call(run))
        return {"id": payment_id, "status": status, "officer": who.key_id, "note": note}

    @app.post("/v1/admin/holds/{payment_id}/release", tags=["admin"], openapi_extra=_NOTE_BODY)
    async def release_hold(payment_id: str, who: Compliance, request: Request) -> dict[str, Any]:
        """Release a screening hold (compliance): the payment settles or queues."""
        return await review(payment_id, who, request, True)

    @app.post("/v1/admin/holds/{payment_id}/reject", tags=["admin"], openapi_extra=_NOTE_BODY)
    async def reject_hold(payment_id: str, who: Compliance, request: Request) -> dict[str, Any]:
        """Reject a screening hold (compliance): the payment is REJECTED (RR04)."""
        return await review(payment_id, who, request, False)

    @app.get("/v1/admin/overview", tags=["admin"])
    def admin_overview(who: AdminReader) -> dict[str, Any]:
        """What the dashboard draws: balances and positions, queue, throughput, liquidity, netting."""
        return _overview(api)

    # ------------------------------------------------------------------ docs and dashboard
    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> HTMLResponse:
        """The API reference rendered from /openapi.json by a self-contained page (works offline)."""
        return HTMLResponse((_HERE / "docs.html").read_text(encoding="utf-8"))

    @app.get("/docs/swagger", response_class=HTMLResponse, include_in_schema=False)
    def swagger() -> HTMLResponse:
        """Swagger UI, for browsers that can reach its CDN."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Setara API")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(request: Request) -> HTMLResponse:
        key = _presented_key(request)
        if key:  # a key is optional here (the page asks for one), but a presented key must be right
            who = authenticate(api.reader(), key)
            if who is None:
                raise _unauthorized("the API key is unknown or revoked")
            _require_now(who, *ADMIN_READ)
        return HTMLResponse((_HERE / "dashboard.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-store"})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API key from `setara keys issue`"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            for path, ops in schema.get("paths", {}).items():
                if path != "/healthz":
                    for op in ops.values():
                        op["security"] = [{"bearer": []}, {"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


def _check_xml_debtor(api: Api, who: Principal, data: bytes) -> None:
    """Every transaction of the message must debit the key's member (camt.056: cancel its own)."""
    from setara import iso20022 as iso

    try:
        msg = iso.parse_message(data)
    except Exception:  # unreadable: submit_xml answers it with a rejection and records nothing
        return
    net = api.network
    for tx in msg.transactions:
        if msg.msg_type.startswith("camt.056"):
            orig = tx.original
            oid = (orig.uetr or orig.end_to_end_id) if orig is not None else None
            if oid is None:
                continue
            with api.writer.lock:
                p = api.node.engine.live.get(oid)
            if p is not None and p.debtor != who.member:
                raise ApiProblem(403, "Forbidden", "only the debtor can cancel a payment", field="OrgnlUETR")
            continue
        debit, _ = iso.settlement_members(tx, net.member_by_bic)
        if debit is not None and debit != who.member:
            raise ApiProblem(403, "Forbidden", f"only {debit}'s key can instruct a debit of its account",
                             field="DbtrAgt")


def _sum_by_currency(api: Api, payments: list[Payment]) -> list[dict[str, Any]]:
    acc: dict[str, list[int]] = {}
    for p in payments:
        a = acc.setdefault(p.currency, [0, 0])
        a[0] += 1
        a[1] += p.amount_minor
    return [{"currency": c, "count": n, "value": api.amount(v, c)} for c, (n, v) in sorted(acc.items())]


# ====================================================================== error handlers


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def on_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = [str(x) for x in first.get("loc", ())]
        field = ".".join(loc[1:]) if len(loc) > 1 else (loc[0] if loc else "body")
        if first.get("type") == "json_invalid":
            return ApiProblem(400, "Malformed JSON", "the body is not valid JSON", field="body").response()
        return ApiProblem(422, "Invalid request", str(first.get("msg", "invalid request")),
                          field=field or "body").response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiProblem(exc.status_code, _TITLES.get(exc.status_code, "Error"), str(exc.detail),
                          headers=dict(exc.headers) if exc.headers else None).response()

    @app.exception_handler(StoreError)
    async def on_store(request: Request, exc: StoreError) -> JSONResponse:
        return ApiProblem(503, "Service Unavailable", str(exc)).response()


_TITLES = {404: "Not Found", 405: "Method Not Allowed", 401: "Unauthorized", 403: "Forbidden"}


# ====================================================================== metrics and overview


def _metrics_text(api: Api) -> str:
    store = api.fresh_reader()
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: Iterator[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, v in samples:
            lines.append(f"{name}{labels} {_num(v)}")

    counts = dict.fromkeys(STATUSES, 0)
    counts.update(store.payment_counts())
    metric("setara_payments", "gauge", "Payments by current status.",
           ((f'{{status="{s}"}}', n) for s, n in sorted(counts.items())))
    with api.writer.lock:
        queued = list(api.node.engine.queued())
        holds = sum(1 for _ in api.node.engine.held())
        block = api.node.block_seq
    by_ccy: dict[str, list[int]] = {c: [0, 0] for c in api.network.currencies}
    for p in queued:
        by_ccy.setdefault(p.currency, [0, 0])
        by_ccy[p.currency][0] += 1
        by_ccy[p.currency][1] += p.amount_minor
    metric("setara_queue_length", "gauge", "Payments waiting in the RTGS queue.",
           ((f'{{currency="{c}"}}', v[0]) for c, v in sorted(by_ccy.items())))
    metric("setara_queue_value", "gauge", "Value waiting in the RTGS queue, in major units.",
           ((f'{{currency="{c}"}}', v[1] / 10 ** api.units(c)) for c, v in sorted(by_ccy.items())))
    metric("setara_screening_holds", "gauge", "Payments held for compliance review.", iter([("", holds)]))
    total, sum_ms, within = store.settlement_latency(LATENCY_BUCKETS_MS)
    name = "setara_settlement_latency_seconds"
    lines.append(f"# HELP {name} Time from acceptance to settlement of settled payments.")
    lines.append(f"# TYPE {name} histogram")
    for b, n in zip(LATENCY_BUCKETS_MS, within, strict=True):
        lines.append(f'{name}_bucket{{le="{_num(b / 1000)}"}} {n}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {total}')
    lines.append(f"{name}_sum {_num(sum_ms / 1000)}")
    lines.append(f"{name}_count {total}")
    metric("setara_block_height", "gauge", "Last durable block.", iter([("", block)]))
    metric("setara_api_group_commits_total", "counter", "Group commits written by this server.",
           iter([("", api.writer.blocks)]))
    metric("setara_api_instructions_total", "counter", "Instructions committed by this server.",
           iter([("", api.writer.instructions)]))
    metric("setara_api_writer_up", "gauge", "1 while the writer accepts work.", iter([("", int(api.writer.alive))]))
    return "\n".join(lines) + "\n"


def _num(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    return repr(float(v))


THROUGHPUT_MINUTES = 60


def _overview(api: Api) -> dict[str, Any]:
    store = api.fresh_reader()
    net = api.network
    t = now_ms()
    balances = []
    for m, c, bal, avail in sorted(store.balances()):
        if m not in net.members:
            continue
        acct = net.accounts.get((m, c))
        opening = acct.opening_minor if acct is not None else 0
        balances.append({"member": m, "currency": c, "balance": api.amount(bal, c), "available": api.amount(avail, c),
                         "position": api.amount(bal - opening, c)})
    with api.writer.lock:
        eng = api.node.engine
        queued = list(eng.queued())
        holds = sum(1 for _ in eng.held())
        day, day_open, block = eng.business_day, eng.day_open, api.node.block_seq
    since = (t // 60_000 - THROUGHPUT_MINUTES + 1) * 60_000
    per_min = store.settled_per_minute(since)
    first = since // 60_000
    throughput = [{"minute_ms": (first + i) * 60_000, "settled": per_min.get(first + i, 0)}
                  for i in range(THROUGHPUT_MINUTES)]
    counts = store.payment_counts()
    # Liquidity: gross settled value against the sum of members' net debit positions it needed.
    flows: dict[str, dict[str, int]] = {}
    gross: dict[str, int] = {}
    for ccy, dr, cr, amt in store.settled_flows():
        f = flows.setdefault(ccy, {})
        f[dr] = f.get(dr, 0) - amt
        f[cr] = f.get(cr, 0) + amt
        gross[ccy] = gross.get(ccy, 0) + amt
    liquidity = []
    for ccy in sorted(gross):
        used = sum(-v for v in flows[ccy].values() if v < 0)
        liquidity.append({"currency": ccy, "gross": api.amount(gross[ccy], ccy), "used": api.amount(used, ccy),
                          "ratio": used / gross[ccy] if gross[ccy] else None})
    return {
        "time_ms": t, "business_day": day, "day_open": day_open, "block": block,
        "currencies": [{"code": c, "minor_units": api.units(c)} for c in net.currencies],
        "balances": balances, "queue": {"count": len(queued), "by_currency": _sum_by_currency(api, queued)},
        "holds": holds, "payments_by_status": counts, "throughput": throughput,
        "liquidity": liquidity, "cycles": api.cycles(), "started_ms": api.started_ms,
        "uptime_s": (t - api.started_ms) / 1000, "now_s": time.time(),
    }
