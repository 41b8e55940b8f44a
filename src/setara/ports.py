"""The interfaces the core's callers plug in: how instructions are screened, and what time it is.

The engine has neither: the node stamps each command with a `Clock` (the wall clock in
production, simulated time in the simulator and in tests) and screens each instruction with a
`Screening` before the engine sees it, logging the decision inside the command so that replay never
screens again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from setara.core.instructions import Instruction
from setara.core.network import Network

__all__ = ["Clock", "NullScreening", "Screening", "ScreeningDecision", "now_ms"]

Clock = Callable[[], int]  # milliseconds since the Unix epoch


def now_ms() -> int:
    """The wall clock, in ms: production's Clock."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ScreeningDecision:
    decision: str  # clear | review | block
    ref: str  # audit reference: list version, score, matched entity
    audits: tuple[dict[str, Any], ...] = ()


class Screening(Protocol):
    """Decides on an instruction before the engine sees it. Names are what is screened: an
    instruction without party data gets one decision whatever its id, members and amount (the
    members themselves are screened when they join and on every list change), which the intake
    relies on to decide once for a whole chunk of such instructions."""

    def decide(self, ins: Instruction, network: Network) -> ScreeningDecision: ...


class NullScreening:
    """No list loaded: nothing is hit (the CLI warns on stderr that no list is loaded)."""

    def decide(self, ins: Instruction, network: Network) -> ScreeningDecision:
        return ScreeningDecision("clear", "no-list")
