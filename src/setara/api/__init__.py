"""HTTP API and operator dashboard (`setara serve`).

`create_app` is imported lazily: the `setara` CLI registers the `serve` and `keys` commands from
`setara.api.commands` on every start, and must not pay for importing FastAPI unless it serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from setara.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from setara.api.app import create_app

        return create_app
    raise AttributeError(f"module 'setara.api' has no attribute {name!r}")
