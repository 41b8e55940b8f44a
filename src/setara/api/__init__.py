"""HTTP API and operator dashboard (`setara serve`)."""

from __future__ import annotations

from setara.api.app import create_app

__all__ = ["create_app"]
