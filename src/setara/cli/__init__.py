"""The `setara` command: one module per command group, each a thin shell over the node's use
cases and views (see docs/usage.md)."""

from setara.cli.main import app, main

__all__ = ["app", "main"]
