"""FX: the rates posted now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from setara.api.auth import Who
from setara.api.state import api_of
from setara.node import views
from setara.ports import now_ms

__all__ = ["router"]

router = APIRouter(tags=["fx"])


@router.get("/v1/fx/rates")
async def fx_rates(request: Request, who: Who) -> list[dict[str, Any]]:
    """Valid FX rates, best first per pair."""
    t = now_ms()
    found = await api_of(request).call(lambda node: views.rates(node.engine, t))
    return [{"provider": v.rate.provider, "pair": f"{v.rate.base}/{v.rate.quote}", "base": v.rate.base,
             "quote": v.rate.quote, "rate": v.rate.text, "posted_ms": v.rate.posted_ms,
             "expires_ms": v.rate.expires_ms} for v in found]
