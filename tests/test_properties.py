"""Property tests: random command sequences keep every invariant, and replay is deterministic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setara.core import (
    QUEUED,
    SETTLED,
    Cancel,
    Command,
    DayClose,
    DayOpen,
    Engine,
    EngineError,
    Fund,
    Init,
    PostRate,
    Review,
    SettleSet,
    StatusEvent,
    Submit,
)
from setara.core.instructions import Instruction
from setara.core.ledger import Posting
from setara.node import Node
from setara.node.verify import verify_store
from tests.test_engine import T, small_network

MEMBERS = ["A", "B", "C", "FX"]


@st.composite
def commands(draw: st.DrawFn) -> list[Command]:
    n = draw(st.integers(min_value=1, max_value=60))
    out: list[Command] = [PostRate("FX", "IDR", "THB", "0.0021", T + 10**9, T)]
    ids: list[str] = []
    for i in range(n):
        kind = draw(st.sampled_from(["pay", "pay", "pay", "pay", "fx", "fund", "cancel", "review", "settle", "day"]))
        t = T + i
        if kind in ("pay", "fx"):
            d, c = draw(st.permutations(MEMBERS))[:2]
            pid = draw(st.sampled_from([f"p{i}", *(ids[-3:] or [f"p{i}"])]))  # sometimes re-used ids
            amount = draw(st.integers(min_value=1, max_value=40_000))
            screening = draw(st.sampled_from(["clear", "clear", "clear", "review", "block"]))
            out.append(Submit(pid, d, c, "IDR", amount, draw(st.integers(0, 1)), hash(pid) & 0xFFFF, "",
                              screening, "t", t, "THB" if kind == "fx" else None))
            ids.append(pid)
        elif kind == "fund":
            out.append(Fund(f"f{i}", draw(st.sampled_from(MEMBERS)), "IDR", draw(st.integers(1, 30_000)),
                            draw(st.booleans()), t))
        elif kind == "cancel" and ids:
            out.append(Cancel(draw(st.sampled_from(ids)), t))
        elif kind == "review" and ids:
            out.append(Review(draw(st.sampled_from(ids)), draw(st.booleans()), "o", "n", t))
        elif kind == "settle" and ids:
            out.append(SettleSet(tuple(draw(st.lists(st.sampled_from(ids), max_size=4, unique=True))), "t", t))
        elif kind == "day":
            out.append(DayClose(t))
            out.append(DayOpen(t))
    return out


def run(cmds: list[Command]) -> tuple[Engine, list[Any]]:
    e = Engine()
    e.apply(Init(small_network().to_config(), T))
    events: list[Any] = []
    for c in cmds:
        try:
            events.extend(e.apply(c))
        except EngineError:
            continue
        e.check()  # conservation, floors, reservations, nothing both live and final
    return e, events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands())
def test_invariants_hold_under_random_sequences(cmds: list[Command]) -> None:
    e, events = run(cmds)
    settled = [ev.payment_id for ev in events if isinstance(ev, StatusEvent) and ev.status == SETTLED]
    assert len(settled) == len(set(settled)), "a payment settled twice"
    posted: dict[str, set[str]] = {}
    for ev in events:
        if isinstance(ev, Posting) and not ev.payment_id.startswith(("f", "open:")):
            posted.setdefault(ev.payment_id, set()).add(ev.currency)
    for pid in posted:
        assert e.status(pid) == SETTLED
    # PvP: a cross-currency payment has both legs or none.
    for ev in events:
        if isinstance(ev, Posting) and ev.rate:
            assert posted[ev.payment_id] == {"IDR", "THB"}
    for p in e.live.values():
        assert p.id not in posted
        assert p.status != QUEUED or p.id not in e.final


@settings(max_examples=40, deadline=None)
@given(commands())
def test_same_log_same_state_hash(cmds: list[Command]) -> None:
    a, _ = run(cmds)
    b, _ = run(cmds)
    assert a.state_hash() == b.state_hash()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["BANK_ID1", "BANK_ID2", "BANK_ID3", "FX_MERDEKA"]),
                          st.sampled_from(["BANK_ID1", "BANK_ID2", "BANK_ID3", "FX_MERDEKA"]),
                          st.integers(1, 10**13), st.integers(0, 30)), min_size=1, max_size=40))
def test_stored_node_is_idempotent_and_verifies(tmp_path_factory: Any, rows: list[tuple[str, str, int, int]]
                                                ) -> None:
    """Through the durable node: re-submitting settles nothing twice; verify replays to the same hash."""
    path = str(tmp_path_factory.mktemp("prop") / "s.db")
    from setara.core.network import example_toml, load_network

    Node.create(path, load_network(example_toml()), T).close()
    ins = [Instruction(f"id{k}", d, c, "IDR", amt) for d, c, amt, k in rows if d != c]
    with Node.open(path, write=True) as n:
        first = [a.status for a in n.submit_instructions(ins)]
        again = [a.status for a in n.submit_instructions(ins)]
        state = n.engine.state_hash()
        balances = dict(n.engine.ledger.balances)
    assert len(first) == len(again)
    for a, b in zip(first, again, strict=True):
        assert b in (a, "REJECTED", SETTLED)  # a resubmission reports the current status
    with Node.open(path, write=False) as n:
        assert n.engine.state_hash() == state
        assert n.engine.ledger.balances == balances
    from setara.store import open_store

    store = open_store(path)
    try:
        report = verify_store(store)
    finally:
        store.close()
    assert report.state_hash == state


def test_two_separate_runs_of_one_log_agree(tmp_path: Path) -> None:
    """The same stored log replayed by two independent processes (different hash seeds) gives one
    state hash."""
    import os
    import subprocess
    import sys

    from setara.core.network import example_toml, load_network

    path = str(tmp_path / "s.db")
    Node.create(path, load_network(example_toml()), T).close()
    with Node.open(path, write=True) as n:
        n.submit_instructions([Instruction(f"x{i}", "BANK_ID1", "BANK_ID2", "IDR", 100 + i) for i in range(50)])
        n.submit_instructions([Instruction(f"q{i}", "BANK_ID3", "BANK_MY1", "MYR", 10**8) for i in range(5)])
    hashes = set()
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-m", "setara.cli", "verify", "--db", path], capture_output=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, check=True, timeout=120)
        hashes.add(out.stdout.strip())
    assert len(hashes) == 1
