"""Liquidity saving and deferred-net cycles in the engine and the durable node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from setara.core import QUEUED, SETTLED, CloseCycle, Engine, EngineError, Fund, Init, Notice, StatusEvent
from setara.core.instructions import Instruction
from setara.core.network import parse_network
from setara.node import Node
from setara.node.verify import verify_store
from setara.store import open_store
from tests.test_engine import T, pay, statuses

_MEMBERS = [("A", "AAAAIDJA"), ("B", "BBBBIDJA"), ("C", "CCCCIDJA"), ("D", "DDDDIDJA")]


def cycles_network(caps: dict[str, str] | None = None, on_entry: str = "bilateral") -> dict[str, Any]:
    members = []
    for mid, bic in _MEMBERS:
        m: dict[str, Any] = {"id": mid, "bic": bic, "country": "ID", "opening": {"IDR": "100.00", "MYR": "100.00"}}
        if caps and mid in caps:
            m["net_debit_caps"] = {"IDR": caps[mid]}
        members.append(m)
    return {
        "currencies": [
            {"code": "IDR", "minor_units": 2, "agent": "CB_ID", "agent_bic": "CBIDIDJA", "settlement": "cycles"},
            {"code": "MYR", "minor_units": 2, "agent": "CB_MY", "agent_bic": "CBMYMYKL"},
        ],
        "members": members,
        "liquidity_saving": {"on_entry": on_entry},
    }


def engine_of(doc: dict[str, Any]) -> Engine:
    e = Engine()
    e.apply(Init(parse_network(doc).to_config(), T))
    return e


def notices(events: list[Any], kind: str) -> list[dict[str, Any]]:
    return [ev.data for ev in events if isinstance(ev, Notice) and ev.kind == kind]


def test_cycle_nets_gross_flows_with_little_liquidity() -> None:
    e = engine_of(cycles_network())
    # 1200.00 gross circulates A->B->C->D->A; every bank holds only 100.00.
    for pid, d, c in (("ab", "A", "B"), ("bc", "B", "C"), ("cd", "C", "D"), ("da", "D", "A")):
        assert statuses(e.apply(pay(pid, d, c, 30_000))) == {pid: QUEUED}
    ev = e.apply(CloseCycle("IDR", T))
    assert statuses(ev) == {"ab": SETTLED, "bc": SETTLED, "cd": SETTLED, "da": SETTLED}
    closed = notices(ev, "cycle_closed")[0]
    assert closed["gross_minor"] == 120_000 and closed["liquidity_needed_minor"] == 0
    assert closed["netting_efficiency_ppm"] == 1_000_000
    e.check()


def test_cycle_unwinds_a_member_that_cannot_cover() -> None:
    e = engine_of(cycles_network())
    e.apply(pay("ab", "A", "B", 30_000))  # A owes 300.00 net, holds 100.00: A is unwound
    e.apply(pay("bc", "B", "C", 5_000))
    e.apply(pay("cb", "C", "B", 2_000))
    ev = e.apply(CloseCycle("IDR", T))
    assert statuses(ev) == {"bc": SETTLED, "cb": SETTLED}
    unwound = notices(ev, "cycle_unwound")
    assert unwound and unwound[0]["member"] == "A" and unwound[0]["carried_over"] == ["ab"]
    assert e.status("ab") == QUEUED  # carried to the next cycle
    e.apply(Fund("f", "A", "IDR", 30_000, False, T))
    ev = e.apply(CloseCycle("IDR", T))
    assert statuses(ev) == {"ab": SETTLED}
    e.check()


def test_net_debit_cap_limits_the_cycle() -> None:
    e = engine_of(cycles_network(caps={"A": "20.00"}))
    e.apply(pay("ab", "A", "B", 5_000))  # within balance, beyond A's 20.00 cap
    ev = e.apply(CloseCycle("IDR", T))
    assert notices(ev, "cycle_unwound")[0]["member"] == "A"
    with pytest.raises(EngineError):
        e.apply(CloseCycle("MYR", T))  # MYR settles gross


def test_gridlock_ring_resolved_by_the_optimiser(tmp_path: Path) -> None:
    doc = cycles_network(on_entry="none")
    doc["currencies"][0]["settlement"] = "rtgs"
    path = str(tmp_path / "s.db")
    Node.create(path, parse_network(doc), T).close()
    with Node.open(path, write=True) as n:
        ring = [Instruction(f"r{i}", d, c, "IDR", 15_000) for i, (d, c) in
                enumerate((("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")))]
        assert [a.status for a in n.submit_instructions(ring)] == [QUEUED] * 4
        summary = n.resolve_gridlock("optimise")
        assert summary["settled"] == 4
        assert all(n.engine.status(f"r{i}") == SETTLED for i in range(4))
        assert summary["lp_bound"] is None or summary["lp_bound"] >= 60_000 - 1e-6
    store = open_store(path)
    try:
        verify_store(store)
    finally:
        store.close()


@pytest.mark.parametrize("algorithm", ["all-or-nothing", "partial", "bilateral"])
def test_t2_algorithms_via_the_node(tmp_path: Path, algorithm: str) -> None:
    doc = cycles_network(on_entry="none")
    doc["currencies"][0]["settlement"] = "rtgs"
    path = str(tmp_path / "s.db")
    Node.create(path, parse_network(doc), T).close()
    with Node.open(path, write=True) as n:
        n.submit_instructions([Instruction("ab", "A", "B", "IDR", 15_000), Instruction("ba", "B", "A", "IDR", 15_000)])
        assert n.resolve_gridlock(algorithm)["settled"] == 2
        ev_status = [n.engine.status(x) for x in ("ab", "ba")]
        assert ev_status == [SETTLED, SETTLED]
    _ = StatusEvent


def test_settle_cli_on_csv_files(tmp_path: Path) -> None:
    import json

    from tests.conftest import run_cli

    (tmp_path / "b.csv").write_text("member,currency,balance\nA,IDR,100.00\nB,IDR,0\nC,IDR,0\n")
    (tmp_path / "q.csv").write_text("id,debtor,creditor,currency,amount,priority,submitted_at\n"
                                    "p1,A,B,IDR,150.00,NORMAL,1\np2,B,C,IDR,150.00,NORMAL,2\n"
                                    "p3,C,A,IDR,150.00,NORMAL,3\np4,C,B,IDR,500.00,NORMAL,4\n")
    out = run_cli("settle", "--balances", str(tmp_path / "b.csv"), "--queue", str(tmp_path / "q.csv"),
                  "--out", str(tmp_path / "s.csv"))
    summary = json.loads(out.stdout)
    assert summary["settled_value"] == {"IDR": "450.00"} and summary["count"] == 3
    assert (tmp_path / "s.csv").read_text().split() == ["id", "p1", "p2", "p3"]
    bad = run_cli("settle", "--balances", str(tmp_path / "q.csv"), "--queue", str(tmp_path / "q.csv"), check=False)
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr


def test_joint_cycle_close_nets_pvp_across_currencies() -> None:
    doc = cycles_network()
    doc["currencies"][1]["settlement"] = "cycles"
    doc["members"].append({"id": "FX", "bic": "FXFXIDJA", "country": "ID", "roles": ["member", "fx_provider"],
                           "opening": {"IDR": "0", "MYR": "0"}})
    e = engine_of(doc)
    from setara.core import PostRate

    e.apply(PostRate("FX", "IDR", "MYR", "1", T + 10**9, T))
    # A pays B in MYR through FX, which holds nothing; the flows come back round, so everyone nets to 0.
    e.apply(pay("x1", "A", "B", 30_000, to="MYR"))
    e.apply(pay("x2", "B", "FX", 30_000, ccy="MYR"))
    e.apply(pay("x3", "FX", "A", 30_000))
    ev = e.apply(CloseCycle("*", T))
    assert statuses(ev) == {"x1": SETTLED, "x2": SETTLED, "x3": SETTLED}
    assert {n["currency"] for n in notices(ev, "cycle_closed")} == {"IDR", "MYR"}
    e.check()
