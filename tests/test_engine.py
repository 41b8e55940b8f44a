"""The settlement engine's rules, driven by commands directly (no storage)."""

from __future__ import annotations

from typing import Any

import pytest

from setara.core import (
    CANCELLED,
    HELD,
    QUEUED,
    REJECTED,
    SETTLED,
    Cancel,
    DayClose,
    DayOpen,
    Engine,
    EngineError,
    Fund,
    Init,
    PostRate,
    Review,
    SetSuspended,
    SettleSet,
    StatusEvent,
    Submit,
)
from setara.core.ledger import Posting
from setara.core.network import Network, parse_network

T = 1_767_225_600_000


def small_network(**extra: Any) -> Network:
    """Three banks in IDR, each with 100.00 and no credit, plus an FX provider in IDR and THB."""
    doc: dict[str, Any] = {
        "currencies": [
            {"code": "IDR", "minor_units": 2, "agent": "CB_ID", "agent_bic": "CBIDIDJA"},
            {"code": "THB", "minor_units": 2, "agent": "CB_TH", "agent_bic": "CBTHTHBK"},
            {"code": "KRW", "minor_units": 0, "agent": "CB_KR", "agent_bic": "CBKRKRSE"},
        ],
        "members": [
            {"id": "A", "bic": "AAAAIDJA", "country": "ID", "opening": {"IDR": "100.00"}},
            {"id": "B", "bic": "BBBBIDJA", "country": "ID", "opening": {"IDR": "100.00"}},
            {"id": "C", "bic": "CCCCIDJA", "country": "ID", "opening": {"IDR": "100.00", "THB": "0", "KRW": "0"}},
            {"id": "FX", "bic": "FXFXIDJA", "country": "ID", "roles": ["member", "fx_provider"],
             "opening": {"IDR": "1000.00", "THB": "1000.00", "KRW": "100000"}},
        ],
    }
    doc.update(extra)
    return parse_network(doc)


def engine(net: Network | None = None) -> Engine:
    e = Engine()
    e.apply(Init((net or small_network()).to_config(), T))
    return e


_fp = 0


def pay(pid: str, debtor: str, creditor: str, amount: int, *, ccy: str = "IDR", prio: int = 1,
        screening: str = "clear", to: str | None = None, fp: int | None = None, t: int = T) -> Submit:
    global _fp
    _fp += 1
    return Submit(pid, debtor, creditor, ccy, amount, prio, fp if fp is not None else _fp, "", screening,
                  "test", t, to)


def statuses(events: list[Any]) -> dict[str, str]:
    return {e.payment_id: e.status for e in events if isinstance(e, StatusEvent)}


def bal(e: Engine, member: str, ccy: str = "IDR") -> int:
    return e.ledger.balance((member, ccy))


def test_settles_at_once_when_covered() -> None:
    e = engine()
    ev = e.apply(pay("p1", "A", "B", 4000))
    assert statuses(ev) == {"p1": SETTLED}
    assert bal(e, "A") == 6000 and bal(e, "B") == 14000
    postings = [x for x in ev if isinstance(x, Posting)]
    assert [(p.payment_id, p.debit, p.credit, p.amount_minor) for p in postings] == [("p1", "A", "B", 4000)]
    e.check()


def test_queues_without_liquidity_and_settles_when_liquidity_arrives() -> None:
    e = engine()
    assert statuses(e.apply(pay("p1", "A", "B", 15000))) == {"p1": QUEUED}
    assert bal(e, "A") == 10000  # nothing moved
    ev = e.apply(pay("p2", "C", "A", 6000))
    assert statuses(ev) == {"p2": SETTLED, "p1": SETTLED}
    assert bal(e, "A") == 1000 and bal(e, "B") == 25000 and bal(e, "C") == 4000
    e.check()


def test_fifo_within_priority_and_urgent_first() -> None:
    e = engine()
    e.apply(pay("big", "A", "B", 15000))
    # A later NORMAL payment may not overtake the queued one even though it would fit.
    assert statuses(e.apply(pay("small", "A", "B", 100))) == {"small": QUEUED}
    # An URGENT payment goes ahead of queued NORMAL ones.
    assert statuses(e.apply(pay("urgent", "A", "C", 100, prio=0))) == {"urgent": SETTLED}
    ev = e.apply(Fund("f1", "A", "IDR", 5200, False, T))
    assert [s for s in statuses(ev)] == ["big", "small"]
    e.check()


def test_bilateral_offset_on_entry_resolves_a_pair() -> None:
    e = engine()
    assert statuses(e.apply(pay("ab", "A", "B", 15000))) == {"ab": QUEUED}
    # B pays A 15000 too: neither can alone, together they net to zero.
    ev = e.apply(pay("ba", "B", "A", 15000))
    assert statuses(ev) == {"ab": SETTLED, "ba": SETTLED}
    assert bal(e, "A") == 10000 and bal(e, "B") == 10000
    e.check()


def test_cancel_queued_and_refuse_cancel_of_settled() -> None:
    e = engine()
    e.apply(pay("q", "A", "B", 50000))
    assert statuses(e.apply(Cancel("q", T))) == {"q": CANCELLED}
    e.apply(pay("s", "A", "B", 10))
    with pytest.raises(EngineError):
        e.apply(Cancel("s", T))
    with pytest.raises(EngineError):
        e.apply(Cancel("nope", T))


def test_day_close_rejects_queued_and_day_open_settles_warehoused() -> None:
    e = engine()
    e.apply(pay("q", "A", "B", 50000))
    ev = e.apply(DayClose(T))
    assert statuses(ev) == {"q": REJECTED}
    assert e.reasons["q"][0] == "TM01"
    # Accepted while closed: waits for the next day instead of being rejected by the clock.
    assert statuses(e.apply(pay("w", "A", "B", 10))) == {"w": QUEUED}
    assert statuses(e.apply(DayOpen(T))) == {"w": SETTLED}


def test_suspended_member_is_refused_and_resumed() -> None:
    e = engine()
    e.apply(SetSuspended("B", True, T))
    ev = e.apply(pay("p", "A", "B", 10))
    assert statuses(ev) == {"p": REJECTED} and e.reasons["p"][0] == "AG01"
    e.apply(SetSuspended("B", False, T))
    assert statuses(e.apply(pay("p2", "A", "B", 10))) == {"p2": SETTLED}


def test_amount_beyond_supply_is_rejected() -> None:
    e = engine()
    supply = e.supply("IDR")
    assert statuses(e.apply(pay("huge", "A", "B", supply + 1))) == {"huge": REJECTED}
    assert e.reasons["huge"][0] == "AM12"


def test_duplicate_id_is_refused_by_the_engine() -> None:
    e = engine()
    e.apply(pay("p", "A", "B", 10))
    with pytest.raises(EngineError):
        e.apply(pay("p", "A", "B", 10))


def test_hold_earmarks_funds_release_settles_reject_voids() -> None:
    e = engine()
    assert statuses(e.apply(pay("h1", "A", "B", 6000, screening="review"))) == {"h1": HELD}
    assert e.available("A", "IDR") == 4000  # earmarked
    # The earmark is not spendable by other payments.
    assert statuses(e.apply(pay("p", "A", "C", 5000))) == {"p": QUEUED}
    ev = e.apply(Review("h1", True, "officer-1", "false positive", T))
    assert statuses(ev)["h1"] == SETTLED
    e.apply(pay("h2", "A", "B", 100, screening="review"))
    ev = e.apply(Review("h2", False, "officer-1", "true match", T))
    assert statuses(ev) == {"h2": REJECTED} and e.reasons["h2"][0] == "RR04"
    e.check()


def test_block_is_rejected_rr04() -> None:
    e = engine()
    assert statuses(e.apply(pay("x", "A", "B", 10, screening="block"))) == {"x": REJECTED}
    assert e.reasons["x"][0] == "RR04"


def test_settle_set_is_atomic_and_checks_every_floor() -> None:
    e = engine()
    # A ring A->B->C->A of 150.00 each: gridlocked, each bank holds only 100.00.
    for pid, d, c in (("ab", "A", "B"), ("bc", "B", "C"), ("ca", "C", "A")):
        e.apply(pay(pid, d, c, 15000))
    assert len(list(e.queued())) == 3
    with pytest.raises(EngineError):
        e.apply(SettleSet(("ab", "bc"), "test", T))  # B would go below its floor? no: A would
    ev = e.apply(SettleSet(("ab", "bc", "ca"), "test", T))
    assert statuses(ev) == {"ab": SETTLED, "bc": SETTLED, "ca": SETTLED}
    assert bal(e, "A") == bal(e, "B") == bal(e, "C") == 10000
    e.check()


def test_fx_payment_settles_both_legs_or_neither() -> None:
    e = engine()
    e.apply(PostRate("FX", "IDR", "THB", "0.0021", T + 86_400_000, T))
    ev = e.apply(pay("x", "A", "C", 10000, to="THB"))
    assert statuses(ev) == {"x": SETTLED}
    legs = [(p.currency, p.debit, p.credit, p.amount_minor) for p in ev if isinstance(p, Posting)]
    assert legs == [("IDR", "A", "FX", 10000), ("THB", "FX", "C", 21)]
    # The provider lacks THB for a big one: the whole payment waits, no leg moves.
    e.apply(Fund("f", "A", "IDR", 10**9, False, T))
    e.apply(Fund("g", "C", "THB", 10**6, False, T))  # more THB exists, but not at the provider
    before = (bal(e, "A"), bal(e, "FX"), bal(e, "FX", "THB"), bal(e, "C", "THB"))
    assert statuses(e.apply(pay("y", "A", "C", 4 * 10**8, to="THB"))) == {"y": QUEUED}
    assert (bal(e, "A"), bal(e, "FX"), bal(e, "FX", "THB"), bal(e, "C", "THB")) == before
    # Once the provider has THB, both legs settle together.
    ev = e.apply(Fund("h", "FX", "THB", 10**6, False, T))
    assert statuses(ev) == {"y": SETTLED}
    assert [p.currency for p in ev if isinstance(p, Posting) and p.payment_id == "y"] == ["IDR", "THB"]
    e.check()


def test_fx_rounding_zero_minor_units_and_expiry() -> None:
    e = engine()
    e.apply(PostRate("FX", "IDR", "KRW", "0.0833", T + 1000, T))
    ev = e.apply(pay("k", "A", "C", 1000, to="KRW", t=T + 10))  # 10.00 IDR x 0.0833 = 0.833 -> 1 KRW
    legs = [p for p in ev if isinstance(p, Posting)]
    assert legs[1].currency == "KRW" and legs[1].amount_minor == 1
    # Expired: no valid rate, the payment is rejected with a reason.
    ev = e.apply(pay("k2", "A", "C", 1000, to="KRW", t=T + 1000))
    assert statuses(ev) == {"k2": REJECTED} and "no valid FX rate" in e.reasons["k2"][1]


def test_best_rate_wins() -> None:
    net = small_network()
    doc = net.to_config()
    doc["members"].append({"id": "FX2", "bic": "FXBBIDJA", "country": "ID", "name": "", "lei": None,
                           "roles": ["member", "fx_provider"], "lists": ["un-xml"], "suspended": False})
    doc["accounts"] += [{"member": "FX2", "currency": c, "opening_minor": 10**6, "credit_line_minor": 0,
                         "net_debit_cap_minor": None} for c in ("IDR", "THB")]
    e = Engine()
    e.apply(Init(doc, T))
    e.apply(PostRate("FX", "IDR", "THB", "0.0020", T + 10**6, T))
    e.apply(PostRate("FX2", "IDR", "THB", "0.0022", T + 10**6, T))
    ev = e.apply(pay("x", "A", "C", 10000, to="THB"))
    assert next(p.credit for p in ev if isinstance(p, Posting)) == "FX2"


def test_state_round_trips_through_snapshot() -> None:
    e = engine()
    e.apply(pay("q", "A", "B", 50000))
    e.apply(pay("h", "A", "B", 10, screening="review"))
    e.apply(pay("s", "B", "C", 10))
    e.apply(PostRate("FX", "IDR", "THB", "0.0021", T + 10**6, T))
    restored = Engine.from_state(e.to_state())
    assert restored.state_hash() == e.state_hash()
    # The restored engine behaves identically.
    a = e.apply(Fund("f", "A", "IDR", 50000, False, T))
    b = restored.apply(Fund("f", "A", "IDR", 50000, False, T))
    assert statuses(a) == statuses(b) and restored.state_hash() == e.state_hash()
