"""The engine's whole state as plain data, and its hash.

`to_state` is what snapshots store and what the state hash covers: two engines that applied the
same log have byte-identical states (insertion-ordered dicts only, integer money, rates as the
decimal text they were posted as), so every member can compare one hash.
"""

from __future__ import annotations

import operator
from dataclasses import fields
from typing import Any

from setara.core.engine import Engine, Payment, Queue
from setara.core.fx import rate_from, rate_state
from setara.core.ledger import Ledger
from setara.core.network import Network

__all__ = ["from_state", "to_state"]

# asdict() copies deeply and costs ~20x this; a snapshot may hold a million queued payments.
_PAYMENT_FIELDS = tuple(f.name for f in fields(Payment))
_payment_values = operator.attrgetter(*_PAYMENT_FIELDS)


def to_state(e: Engine) -> dict[str, Any]:
    return {
        "network": None if e.network is None else e.network.to_config(),
        "ledger": e.ledger.to_state(),
        "live": [dict(zip(_PAYMENT_FIELDS, _payment_values(p), strict=True)) for p in e.live.values()],
        "final": e.final,
        "reasons": e.reasons,
        "queues": [[d, c, list(q.urgent), list(q.normal)] for (d, c), q in e.queues.items() if q],
        "cycle_pending": {c: list(ids) for c, ids in e.cycle_pending.items()},
        "cycles_closed": e.cycles_closed,
        "rates": [rate_state(r) for r in e.rates.values()],
        "quotes": [[k, rate_state(r)] for k, r in e.quotes.items()],
        "day_open": e.day_open,
        "business_day": e.business_day,
        "order": e.order,
        "applied": e.applied,
        "funds": sorted(e.funds),
        "frozen": e.frozen,
    }


def from_state(state: dict[str, Any]) -> Engine:
    e = Engine()
    e.network = None if state["network"] is None else Network.from_config(state["network"])
    e.ledger = Ledger.from_state(state["ledger"])
    for d in state["live"]:
        p = Payment(**d)
        e.live[p.id] = p
    e.final = dict(state["final"])
    e.reasons = {k: list(v) for k, v in state["reasons"].items()}
    for d, c, urgent, normal in state["queues"]:
        q = e.queues[(d, c)] = Queue(dict.fromkeys(urgent), dict.fromkeys(normal))
        for pid in q.ordered():
            p = e.live[pid]
            if p.provider is not None and p.to_currency is not None:
                e.pvp_waiting.setdefault((p.provider, p.to_currency), {})[pid] = None
    e.cycle_pending = {c: dict.fromkeys(ids) for c, ids in state["cycle_pending"].items()}
    e.cycles_closed = dict(state["cycles_closed"])
    for r in state["rates"]:
        rate = rate_from(r)
        e.rates[(rate.provider, rate.base, rate.quote)] = rate
    for k, r in state["quotes"]:
        e.quotes[k] = rate_from(r)
    e.day_open = state["day_open"]
    e.business_day = state["business_day"]
    e.order = state["order"]
    e.applied = state["applied"]
    e.funds = set(state["funds"])
    e.frozen = dict(state["frozen"])
    return e
