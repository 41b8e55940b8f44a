"""Deferred-net settlement cycles: net a window's payments, unwind who cannot cover, settle the rest
all-or-nothing.

A payment of a currency that settles in cycles waits for the currency's next cycle close. At the
close, each account's net position over the cycle's payments must fit its available balance (and
its net debit cap); while some do not, the member with the largest shortfall is removed with all
its payments (they carry over to the next cycle) and the net positions are recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from setara.core.commands import CloseCycle, EngineError, Notice
from setara.core.ledger import Account, InvariantViolation, Leg, net_effect

if TYPE_CHECKING:
    from setara.core.engine import Engine, Payment

__all__ = ["close_cycle", "shortfalls"]


def _legs(chosen: Sequence[Payment]) -> list[Leg]:
    return [leg for p in chosen for leg in p.legs()]


def shortfalls(deltas: Mapping[Account, int], room: Mapping[Account, int]) -> list[tuple[int, str]]:
    """(shortfall, member) for every account whose net debit exceeds its room."""
    out = []
    for acct, delta in deltas.items():
        if delta < 0 and -delta > room[acct]:
            out.append((-delta - room[acct], acct[0]))
    return out


def _room(engine: Engine, deltas: Mapping[Account, int]) -> dict[Account, int]:
    """What each net debtor may take in the cycle: its available balance, capped by its net
    debit cap."""
    caps = engine.net().accounts
    room = {}
    for acct, delta in deltas.items():
        if delta >= 0:
            continue
        r = engine.ledger.available(acct)
        cfg = caps.get(acct)
        if cfg is not None and cfg.net_debit_cap_minor is not None:
            r = min(r, cfg.net_debit_cap_minor)
        room[acct] = r
    return room


def close_cycle(engine: Engine, cmd: CloseCycle) -> None:
    """Close one currency's cycle, or with currency "*" every cycled currency in one netting:
    cross-currency payments then net across both currencies instead of waiting in one."""
    net = engine.net()
    if cmd.currency == "*":
        currencies = [c for c, cfg in net.currencies.items() if cfg.settlement == "cycles"]
        if not currencies:
            raise EngineError("no currency settles in cycles")
    else:
        cfg = net.currencies.get(cmd.currency)
        if cfg is None:
            raise EngineError(f"currency {cmd.currency} is not in the network")
        if cfg.settlement != "cycles":
            raise EngineError(f"currency {cmd.currency} does not settle in cycles")
        currencies = [cmd.currency]
    if not engine.day_open:
        raise EngineError("the business day is closed")
    chosen = [engine.live[pid] for c in currencies for pid in engine.cycle_pending.get(c, {})]
    numbers = {}
    for c in currencies:
        numbers[c] = engine.cycles_closed.get(c, 0) + 1
        engine.cycles_closed[c] = numbers[c]
    gross = {c: sum(leg.amount_minor for leg in _legs(chosen) if leg.currency == c) for c in currencies}
    unwound: list[dict[str, Any]] = []
    while chosen:
        deltas = net_effect(_legs(chosen))
        failing = shortfalls(deltas, _room(engine, deltas))
        if not failing:
            break
        shortfall, member = max(failing)
        removed = [p for p in chosen if member in (p.debtor, p.creditor, p.provider)]
        chosen = [p for p in chosen if member not in (p.debtor, p.creditor, p.provider)]
        unwound.append({"member": member, "shortfall_minor": shortfall, "payments": [p.id for p in removed]})
        engine.emit(Notice("cycle_unwound", {
            "currency": cmd.currency, "cycle": numbers[currencies[0]], "member": member,
            "shortfall_minor": shortfall, "carried_over": [p.id for p in removed]}))
    needed = dict.fromkeys(currencies, 0)
    if chosen:
        for (_, ccy), v in net_effect(_legs(chosen)).items():
            if v < 0 and ccy in needed:
                needed[ccy] -= v
        postings = engine.ledger.post([(p.id, p.legs()) for p in chosen])  # covered: checked above
        for p in chosen:
            if p.cycle is None:
                raise InvariantViolation(f"payment {p.id} settles in a cycle it does not wait for")
            del engine.cycle_pending[p.cycle][p.id]
            engine.finish(p, cmd.time_ms)
        engine.emit_all(postings)
    for c in currencies:
        settled_gross = sum(leg.amount_minor for leg in _legs(chosen) if leg.currency == c)
        engine.emit(Notice("cycle_closed", {
            "currency": c, "cycle": numbers[c],
            "payments": sum(1 for p in chosen if c in (p.currency, p.to_currency)),
            "gross_minor": settled_gross, "submitted_gross_minor": gross[c],
            "liquidity_needed_minor": needed[c],
            # 1 - liquidity needed / gross value, in parts per million (no floats in the engine)
            "netting_efficiency_ppm": (settled_gross - needed[c]) * 1_000_000 // settled_gross
            if settled_gross else 0,
            "unwound": unwound, "carried_over": len(engine.cycle_pending.get(c, {})),
        }))
    engine.drain()
