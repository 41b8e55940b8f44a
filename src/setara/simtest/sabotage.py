"""Deliberate bugs, to test the tester (`setara simtest --sabotage NAME`).

A module-level switch: only `setara simtest` sets it, in its own process; nothing read from the
network, a file or an instruction can. Off (None) by default, and every hook in the node code
tests it with one comparison.
"""

from __future__ import annotations

__all__ = ["ACTIVE", "NAMES"]

NAMES = ("ack-before-commit", "skip-signature-check", "apply-block-twice")

ACTIVE: str | None = None
