"""The HTTP API: per-member payments, statements and ISO 20022; operator, compliance and auditor views.

One process owns the engine (`Writer`); routes (`setara.api.routes`) parse and authorise, then
call the node's use cases in the writer thread, which answers only once their block is durable.
Reads go to the store's read models through per-thread read connections, or, for the engine's
live state, to views the writer runs between blocks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi

from setara.api.auth import AUTH_CACHE_S
from setara.api.problems import ApiProblem, install_handlers
from setara.api.routes import accounts, admin, fx, infra, iso20022, payments
from setara.api.schemas import PROBLEM_RESPONSES
from setara.api.state import Api
from setara.ports import Screening

__all__ = ["AUTH_CACHE_S", "Api", "ApiProblem", "create_app"]


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(dependant: Any) -> Iterator[str]:
    """The query parameters of an operation and of the dependencies it uses (FastAPI's Dependant)."""
    for p in dependant.query_params:
        yield p.alias
    for d in dependant.dependencies:
        yield from _query_names(d)


def _known_query(request: Request) -> None:
    """Refuse a query parameter the operation does not define, or one given twice: FastAPI would
    ignore a typo (`?stauts=HELD` answers every payment) and keep the last of two values."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.url.query or not getattr(route, "include_in_schema", True):
        return  # the HTML pages (dashboard, docs) are not operations
    known = _QUERY_NAMES.get(id(route))
    if known is None:
        known = _QUERY_NAMES[id(route)] = frozenset(_query_names(dependant))
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name not in known:
            raise ApiProblem(422, "Unknown query parameter", f"unknown query parameter {name!r}; this operation "
                             f"takes {', '.join(sorted(known)) or 'none'}", field=name[:64] or "query")
        if name in seen:
            raise ApiProblem(422, "Repeated query parameter", f"query parameter {name} given more than once",
                             field=name)
        seen.add(name)


def create_app(db_url: str, *, screening: Screening | None = None, replication: Any = None) -> FastAPI:
    """The API over the network stored at `db_url`; opens it as the single writer.

    `screening` replaces the node's screening (by default the sanctions lists in the store);
    `replication` (node.replicate.ReplicationSettings) replicates every block before its acks.
    """
    api = Api(db_url, screening, replication)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await anyio.to_thread.run_sync(api.close)

    app = FastAPI(title="Setara API", version="1", lifespan=lifespan, responses=PROBLEM_RESPONSES,
                  docs_url=None, redoc_url=None, dependencies=[Depends(_known_query)],
                  description="Per-member payments, statements and ISO 20022 over HTTP; operator, compliance and "
                              "auditor views. Errors are application/problem+json with a `field` member.")
    app.state.api = api
    install_handlers(app)
    for module in (infra, payments, accounts, iso20022, fx, admin):
        app.include_router(module.router)

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
