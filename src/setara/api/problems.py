"""RFC 9457 problem answers, and how refusals of the layers below become them."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from setara.core.instructions import Rejection
from setara.node import StoreError
from setara.node.usecases import Refused

__all__ = ["PROBLEM", "ApiProblem", "install_handlers", "not_found", "refused", "rejection_field",
           "rejection_problem", "unauthorized"]

PROBLEM = "application/problem+json"


class ApiProblem(Exception):
    """An RFC 9457 problem answer."""

    def __init__(self, status: int, title: str, detail: str | None = None, *, field: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.field, self.code = status, title, detail, field, code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.field is not None:
            body["field"] = self.field
        if self.code is not None:
            body["code"] = self.code
        return body

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, media_type=PROBLEM, headers=self.headers)


def unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, "Unauthorized", detail, field="Authorization",
                      headers={"WWW-Authenticate": 'Bearer realm="setara"'})


def not_found(pid: str) -> ApiProblem:
    return ApiProblem(404, "Not Found", f"no payment {pid}", field="id")


_REFUSED_STATUS = {"not_found": (404, "Not Found"), "conflict": (409, "Conflict"),
                   "invalid": (422, "Invalid request")}


def refused(e: Refused) -> ApiProblem:
    """A use case's refusal: the input cannot be done, nothing changed."""
    status, title = _REFUSED_STATUS[e.kind]
    return ApiProblem(status, title, str(e), field=e.field)


_FIELD_RES = (re.compile(r"^(?:missing |unknown )?field (\w+)"), re.compile(r"^(debtor|creditor|to_currency|amount)\b"))
_CODE_FIELD = {"AM12": "amount", "AM03": "currency", "AG01": "creditor"}


def rejection_field(r: Rejection) -> str:
    """The field an instruction's rejection is about (`body` when none can be told)."""
    field = getattr(r, "field", None)  # instructions that name their field say so directly
    if isinstance(field, str) and field:
        return field
    if r.code in ("AM12", "AG01"):
        return _CODE_FIELD[r.code]
    for rx in _FIELD_RES:
        m = rx.match(r.text)
        if m:
            return m.group(1)
    if r.code == "RC01":
        return "debtor" if r.text.startswith("debtor") else "creditor"
    return _CODE_FIELD.get(r.code, "body")


def rejection_problem(r: Rejection, prefix: str = "") -> ApiProblem:
    return ApiProblem(422, "Invalid instruction", r.text, field=prefix + rejection_field(r), code=r.code)


_TITLES = {404: "Not Found", 405: "Method Not Allowed", 401: "Unauthorized", 403: "Forbidden",
           413: "Payload Too Large"}


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def on_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return exc.response()

    @app.exception_handler(Refused)
    async def on_refused(request: Request, exc: Refused) -> JSONResponse:
        return refused(exc).response()

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
