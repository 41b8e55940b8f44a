"""Infrastructure: health, metrics, whoami, the API reference and the dashboard page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from setara.api.auth import ADMIN_READ, Who, check_key, presented_key, require_now
from setara.api.keys import authenticate
from setara.api.problems import unauthorized
from setara.api.state import api_of
from setara.node import dashboard

__all__ = ["router"]

_HERE = Path(__file__).parent.parent

router = APIRouter()


@router.get("/healthz", tags=["infrastructure"])
async def healthz(request: Request) -> JSONResponse:
    api = api_of(request)
    ok = api.writer.alive
    body: dict[str, Any] = {"status": "ok" if ok else "failed", "block": api.block_seq,
                            "writer_queue": api.writer.queue_depth(), "screening_lists_loaded": api.screening_loaded}
    if not ok:
        body["detail"] = api.writer.failed or "the writer thread stopped"
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", tags=["infrastructure"], response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    api = api_of(request)
    if not api.metrics_public:
        require_now(check_key(api, request), *ADMIN_READ)
    summary = await api.call(dashboard.engine_summary)

    def text() -> str:
        return dashboard.metrics_text(api.fresh_reader(), api.network, summary, group_commits=api.writer.blocks,
                                      instructions=api.writer.instructions, writer_up=api.writer.alive)

    return PlainTextResponse(await anyio.to_thread.run_sync(text),
                             media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/v1/whoami", tags=["infrastructure"])
async def whoami(who: Who) -> dict[str, Any]:
    """The role, member and key id of the presented key."""
    return {"key_id": who.key_id, "role": who.role, "member": who.member}


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def docs() -> HTMLResponse:
    """The API reference rendered from /openapi.json by a self-contained page (works offline)."""
    return HTMLResponse((_HERE / "docs.html").read_text(encoding="utf-8"))


@router.get("/docs/swagger", response_class=HTMLResponse, include_in_schema=False)
def swagger() -> HTMLResponse:
    """Swagger UI, for browsers that can reach its CDN."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Setara API")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(request: Request) -> HTMLResponse:
    api = api_of(request)
    key = presented_key(request)
    if key:  # a key is optional here (the page asks for one), but a presented key must be right
        who = authenticate(api.reader(), key)
        if who is None:
            raise unauthorized("the API key is unknown or revoked")
        require_now(who, *ADMIN_READ)
    return HTMLResponse((_HERE / "dashboard.html").read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-store"})
