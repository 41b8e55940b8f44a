"""The bulk path of submit: runs of plain payments settled by `settle_run` and logged as one entry.

Its claim is equivalence: whatever the state, settling a batch through `settle_run` (falling back
to `apply` where it stops) leaves the engine exactly where applying each row through `apply`
would, and the intake's fast parser agrees with the general one on every instruction it accepts.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setara.core import (
    SETTLED,
    SUBMIT_FIELDS,
    Command,
    Engine,
    EngineError,
    Freeze,
    Posting,
    SetSuspended,
    StatusEvent,
    Submit,
    settle_run,
    submits_rows,
)
from setara.core.instructions import Rejection, fingerprint, parse_json_instruction, parse_plain, parse_plain_many
from setara.core.network import example_toml, load_network
from setara.node import Node
from setara.node.intake import parse_lines
from setara.node.verify import VerificationError, verify_store
from setara.ports import NullScreening
from setara.store import open_store
from tests.test_engine import T
from tests.test_properties import commands, run

MEMBERS = ["A", "B", "C", "FX", "Z"]  # Z is not a member


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 40))
    ids = [draw(st.sampled_from([f"b{i}", f"b{max(0, i - 2)}", "p1", "p3"])) for i in range(n)]
    shared_ccy = draw(st.booleans())
    return {
        "id": ids,
        "debtor": [draw(st.sampled_from(MEMBERS)) for _ in range(n)],
        "creditor": [draw(st.sampled_from(MEMBERS)) for _ in range(n)],
        "currency": "IDR" if shared_ccy else [draw(st.sampled_from(["IDR", "IDR", "THB", "KRW", "XXX"]))
                                              for _ in range(n)],
        "amount_minor": [draw(st.integers(-5, 12_000)) for _ in range(n)],
        "priority": draw(st.sampled_from([1, 0, [draw(st.integers(0, 1)) for _ in range(n)]])),
        "fingerprint": [hash(p) & 0xFFFF for p in ids],
        "parties_digest": "", "screening": "clear", "screening_ref": "t", "time_ms": T + 10**6,
        "to_currency": None, "quote_id": None, "uetr": None,
    }


@st.composite
def disturbances(draw: st.DrawFn) -> list[Command]:
    """Commands the fast rule depends on: suspensions and asset freezes."""
    out: list[Command] = []
    for m in draw(st.lists(st.sampled_from(["A", "B", "C"]), max_size=2)):
        out.append(SetSuspended(m, True, T + 1) if draw(st.booleans()) else Freeze(m, True, "test", T + 1))
    return out


def _bulk(e: Engine, batch: dict[str, Any]) -> tuple[list[int], list[Any]]:
    """What the node does with a batch: settle_run, and the full path where it stops."""
    rows = submits_rows(batch)
    fast: list[int] = []
    events: list[Any] = []
    i = 0
    while i < len(rows):
        k = settle_run(e, batch, i)
        if k:
            fast.extend(range(i, i + k))
            i += k
            continue
        with contextlib.suppress(EngineError):  # a repeated id: the shell answers it before logging
            events.extend(e.apply(Submit(*rows[i])))
        i += 1
    return fast, events


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands(), disturbances(), batches())
def test_settle_run_reaches_the_state_apply_reaches(before: list[Command], extra: list[Command],
                                                     batch: dict[str, Any]) -> None:
    bulk, _ = run(before + extra)
    one_by_one, _ = run(before + extra)
    fast, _ = _bulk(bulk, batch)
    bulk.check()
    for i, row in enumerate(submits_rows(batch)):
        try:
            events = one_by_one.apply(Submit(*row))
        except EngineError:
            continue
        if i in fast:  # what settle_run settled, apply settles at once, alone
            assert [type(ev) for ev in events] == [StatusEvent, Posting]
            assert isinstance(events[0], StatusEvent) and events[0].status == SETTLED
    assert bulk.state_hash() == one_by_one.state_hash()
    assert bulk.applied == one_by_one.applied


_text = st.one_of(st.sampled_from(["BANK_ID1", "BANK_ID2", "BANK_MY1", "IDR", "MYR", "KRW", "XXX", "", " BANK_ID1",
                                   "b 1", "b1", "x" * 65, "١٢", "12.5", "1,5"]), st.text(max_size=6))
_amount = st.one_of(st.sampled_from(["1", "0", "-1", "1.5", "1.50", "1.505", "12.", ".5", " 7", "1e3", "1_0",
                                     "٣", "0.01", "9" * 16 + ".99", "9" * 17 + ".99", "1" + "0" * 18]),
                    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
                    st.integers(-10, 10**19), st.floats(allow_nan=False), st.none(), st.booleans())


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({"id": st.one_of(_text, st.integers()), "debtor": _text, "creditor": _text,
                              "currency": st.one_of(_text, st.lists(st.just("IDR"))), "amount": _amount}),
       st.dictionaries(st.sampled_from(["priority", "uetr", "debtor_name", "note"]), st.just("URGENT"),
                       max_size=1))
def test_fast_parser_agrees_with_the_general_one(obj: dict[str, Any], extra: dict[str, Any]) -> None:
    net = load_network(example_toml())
    obj = {**obj, **extra}
    raw = json.dumps(obj).encode()  # orjson cannot write integers beyond 64 bits
    plain = parse_plain(obj, net, raw)
    try:
        ins = parse_json_instruction(obj, net)
    except Rejection:
        assert plain is None
        return
    if extra:
        assert plain is None  # only the five-field form takes the fast path
        return
    assert plain == (ins.id, ins.debtor, ins.creditor, ins.currency, ins.amount_minor, ins.priority,
                     fingerprint(ins, b"any key: a plain instruction's fingerprint needs none"))


def _lines(rows: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(r) + b"\n" for r in rows]


def test_intake_batches_plain_lines_and_keeps_order() -> None:
    net = load_network(example_toml())
    plain = {"debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR", "amount": "1.00"}
    lines = [*_lines([{"id": "a", **plain}, {"id": "b", **plain}]), b"not json\n", b"\n",
             *_lines([{"id": "c", **plain, "debtor_name": "Budi"}, {"id": "d", **plain},
                      {"id": "e", **plain, "priority": "URGENT"}])]
    (chunk,) = list(parse_lines(iter(lines), net, b"k" * 32, 100, NullScreening(), lambda: T))
    kinds = [seg[0] for seg in chunk]
    assert kinds == ["batch", "rows", "batch"]
    assert chunk[0][1]["id"] == ["a", "b"] and chunk[0][2] == [1, 2]
    assert [r[0] for r in chunk[1][1]] == [3]  # the malformed line
    # a payment naming a party, cleared by screening, joins the batch; its name stays off the log
    assert chunk[2][1]["id"] == ["c", "d", "e"] and chunk[2][1]["priority"] == [1, 1, 0]
    assert chunk[2][2] == [5, 6, 7] and chunk[2][3] == [{"debtor_name": "Budi"}, None, None]
    assert chunk[2][1]["parties_digest"][0] and chunk[2][1]["parties_digest"][1:] == ["", ""]
    assert "Budi" not in orjson.dumps(chunk[2][1]).decode()
    assert set(chunk[0][1]) == set(SUBMIT_FIELDS)


def _verified_state(path: str) -> str:
    """`verify` on the store at `path`; its state hash."""
    store = open_store(path)
    try:
        return verify_store(store).state_hash
    finally:
        store.close()


def _store(tmp_path: Path) -> str:
    path = str(tmp_path / "s.db")
    Node.create(path, load_network(example_toml()), T).close()
    return path


def test_batch_with_repeats_and_queueing_answers_every_line_in_order(tmp_path: Path) -> None:
    path = _store(tmp_path)
    pay = {"creditor": "BANK_ID2", "currency": "IDR"}
    rows = [{"id": "a", "debtor": "BANK_ID1", "amount": "5.00", **pay},
            {"id": "a", "debtor": "BANK_ID1", "amount": "5.00", **pay},  # the same again: idempotent
            {"id": "a", "debtor": "BANK_ID1", "amount": "6.00", **pay},  # the id re-used: DUPL
            {"id": "big", "debtor": "BANK_ID3", "amount": "9000000000.00", **pay},  # queues
            {"id": "b", "debtor": "BANK_ID3", "amount": "1.00", **pay},  # behind the queue: FIFO
            {"id": "c", "debtor": "BANK_ID1", "amount": "1.00", **pay}]
    with Node.open(path, write=True) as node:
        acks = [a.text() for chunk in node.submit_lines(_lines(rows)) for a in chunk]
        state = node.engine.state_hash()
    assert acks == ["a SETTLED", "a SETTLED", "a REJECTED DUPL id already used for a different instruction",
                    "big QUEUED", "b QUEUED", "c SETTLED"]
    assert _verified_state(path) == state


def test_loading_replays_batches_to_the_state_verify_reaches(tmp_path: Path) -> None:
    path = _store(tmp_path)
    members = ["BANK_ID1", "BANK_ID2", "BANK_ID3", "FX_MERDEKA"]
    rows = [{"id": f"x{i}", "debtor": members[i % 4], "creditor": members[(i + 1) % 4], "currency": "IDR",
             "amount": f"{1 + i % 97}.00"} for i in range(3000)]
    with Node.open(path, write=True) as node:
        for _ in node.submit_lines(_lines(rows), batch_lines=700):
            pass
        state = node.engine.state_hash()
    store = open_store(path)
    try:
        store._query("DELETE FROM snapshots")  # open must replay every block
        logged = [kind for b in store.iter_blocks() for kind, _ in orjson.loads(b.log)]
        assert logged.count("submits") == 5
        assert verify_store(store).state_hash == state
    finally:
        store.close()
    with Node.open(path, write=False) as node:
        assert node.engine.state_hash() == state
        node.catch_up()
        assert node.store.get_payment("x2999") is not None
        assert node.store.get_payment("x2999").status == SETTLED  # type: ignore[union-attr]


def test_verify_fails_on_a_batch_that_would_not_settle_on_arrival(tmp_path: Path) -> None:
    """A logged batch claims its payments settled on arrival; replay must bear that out."""
    path = _store(tmp_path)
    with Node.open(path, write=True) as node:
        b = node.begin()
        b.cmds.append(["submits", {
            "id": ["huge"], "debtor": ["BANK_ID1"], "creditor": ["BANK_ID2"], "currency": "IDR",
            "amount_minor": [10**17], "priority": 1, "fingerprint": [1], "parties_digest": "",
            "screening": "clear", "screening_ref": "t", "time_ms": T, "to_currency": None, "quote_id": None,
            "uetr": None}])
        b.n_cmds += 1
        node.flush(b, check=False)
    store = open_store(path)
    try:
        with pytest.raises(VerificationError, match="does not settle at once on replay"):
            verify_store(store)
    finally:
        store.close()


def test_several_intake_workers_answer_like_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers take chunks in turn; acks, line numbers and order are those of a single worker."""
    members = ["BANK_ID1", "BANK_ID2", "BANK_ID3", "FX_MERDEKA"]
    lines: list[bytes] = []
    for i in range(1000):
        if i % 97 == 5:
            lines.append(b"\n")
        elif i % 89 == 7:
            lines.append(b"{broken\n")
        else:
            d, c = members[i % 4], members[(i * 7 + 1) % 4]
            amount = "90000000000.00" if i % 113 == 3 else f"{1 + i % 50}.00"
            lines += _lines([{"id": f"w{i % 900}", "debtor": d, "creditor": c, "currency": "IDR", "amount": amount}])
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(lines))
    answers = []
    for workers in ("1", "3"):
        monkeypatch.setenv("SETARA_INTAKE_WORKERS", workers)
        path = str(tmp_path / f"w{workers}.db")
        Node.create(path, load_network(example_toml()), T).close()
        with Node.open(path, write=True) as node:
            answers.append([(a.line_no, a.text()) for chunk in node.submit_file(str(src), batch_lines=37)
                            for a in chunk])
        _verified_state(path)
    assert answers[0] == answers[1]
    assert [n for n, _ in answers[0]] == [n for n, raw in enumerate(lines, start=1) if raw.strip()]
    assert any("line:" in text for _, text in answers[0]) and any("QUEUED" in text for _, text in answers[0])


_ODD = {"id": ["b 1", "x" * 65, "é", 7], "debtor": ["BANK_XX", "BANK_ID2", 3], "creditor": ["BANK_ID1", ""],
        "currency": ["KRW", "MYR", "idr"], "amount": ["0.00", "7", "7.5", "١.00", "9" * 17 + ".00", " 1.00", 5]}


@st.composite
def plain_chunks(draw: st.DrawFn) -> list[Any]:
    """Mostly valid plain lines in one currency, now and then one odd field, key or line."""
    out: list[Any] = []
    for i in range(draw(st.integers(1, 8))):
        line: Any = {"id": f"a{i}", "debtor": draw(st.sampled_from(["BANK_ID1", "BANK_ID3"])),
                     "creditor": "BANK_ID2", "currency": "IDR",
                     "amount": draw(st.sampled_from(["1.00", "12.50", "9" * 16 + ".99", "0.01"]))}
        odd = draw(st.sampled_from([None] * 12 + [*_ODD, "extra", "list"]))
        if odd == "extra":
            line["priority"] = "NORMAL"
        elif odd == "list":
            line = [1]
        elif odd is not None:
            line[odd] = draw(st.sampled_from(_ODD[odd]))
        out.append(line)
    return out


@settings(max_examples=300, deadline=None)
@given(plain_chunks())
def test_parsing_many_lines_at_once_agrees_with_one_by_one(objs: list[Any]) -> None:
    net = load_network(example_toml())
    raws = [orjson.dumps(o) for o in objs]
    many = parse_plain_many(objs, net, raws)
    one_by_one = [parse_plain(o, net, r) if isinstance(o, dict) else None for o, r in zip(objs, raws, strict=True)]
    if many is None:  # judged line by line instead (an odd line, or an amount without its decimals)
        return
    assert list(zip(many["id"], many["debtor"], many["creditor"], many["currency"], many["amount_minor"],
                    [1] * len(objs), many["fingerprint"], strict=True)) == one_by_one


def test_parsing_many_takes_a_clean_chunk_whole() -> None:
    net = load_network(example_toml())
    objs = [{"id": f"c{i}", "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR", "amount": "3.25"}
            for i in range(50)]
    many = parse_plain_many(objs, net, [orjson.dumps(o) for o in objs])
    assert many is not None and many["amount_minor"] == [325] * 50
    odd = [*objs, {**objs[0], "amount": "3.2"}]
    assert parse_plain_many(odd, net, [orjson.dumps(o) for o in odd]) is None  # one odd line: line by line


def test_a_closed_day_sends_a_batch_down_the_full_path(tmp_path: Path) -> None:
    """Payments accepted while the day is closed wait for `day open`, batch or not."""
    from setara.core import DayClose, DayOpen

    path = _store(tmp_path)
    rows = [{"id": f"d{i}", "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR", "amount": "1.00"}
            for i in range(20)]
    with Node.open(path, write=True) as node:
        node.run(DayClose(T + 1))
        acks = [a.status for chunk in node.submit_lines(_lines(rows)) for a in chunk]
        assert acks == ["QUEUED"] * 20
        node.run(DayOpen(T + 2))
        assert all(node.engine.status(f"d{i}") == SETTLED for i in range(20))
        state = node.engine.state_hash()
    assert _verified_state(path) == state


def test_alternating_queued_and_settling_payments_answer_in_order(tmp_path: Path) -> None:
    """Half the lines queue behind a stuck payment, half settle: runs of one, in input order."""
    path = _store(tmp_path)
    rows = [{"id": "stuck", "debtor": "BANK_TH1", "creditor": "BANK_ID1", "currency": "IDR",
             "amount": "90000000000.00"}]
    rows += [{"id": f"m{i}", "debtor": "BANK_TH1" if i % 2 else "BANK_ID2", "creditor": "BANK_ID3",
              "currency": "IDR", "amount": "1.00"} for i in range(300)]
    with Node.open(path, write=True) as node:
        acks = [a.text() for chunk in node.submit_lines(_lines(rows), batch_lines=64) for a in chunk]
        state = node.engine.state_hash()
    assert acks == ["stuck QUEUED"] + [f"m{i} {'QUEUED' if i % 2 else 'SETTLED'}" for i in range(300)]
    assert _verified_state(path) == state


def test_submit_from_stdin_answers_every_line(tmp_path: Path) -> None:
    """`setara submit -`: the engine process reads on past what it has buffered; nothing is lost."""
    from tests.conftest import run_cli

    net = tmp_path / "n.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = str(tmp_path / "s.db")
    run_cli("init", "--network", str(net), "--db", db)
    rows = _lines([{"id": f"s{i}", "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR",
                    "amount": "1.00"} for i in range(5000)])
    data = b"".join([*rows[:3], b"\n", b"garbage\n", *rows[3:]])
    out = run_cli("submit", "-", "--db", db, input=data).stdout.decode().splitlines()
    assert len(out) == 5001
    assert out[:3] == ["s0 SETTLED", "s1 SETTLED", "s2 SETTLED"]
    assert out[3].startswith("line:5 REJECTED FF01")  # the blank line 4 is skipped, its number kept
    assert out[-1] == "s4999 SETTLED"


def test_a_bad_intake_workers_setting_is_a_usage_error(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    src = tmp_path / "in.jsonl"
    src.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "setara.cli", "submit", str(src), "--db", str(tmp_path / "s.db")],
                          capture_output=True, env={**os.environ, "SETARA_INTAKE_WORKERS": "many"}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.decode().strip() == "error: SETARA_INTAKE_WORKERS must be a number, not 'many'"


def test_a_byte_order_mark_at_the_start_is_ignored(tmp_path: Path) -> None:
    path = _store(tmp_path)
    rows = _lines([{"id": f"bom{i}", "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR",
                    "amount": "1.00"} for i in range(3)])
    rows[0] = b"\xef\xbb\xbf" + rows[0]
    rows[1] = rows[1].replace(b"\n", b"\r\n")
    with Node.open(path, write=True) as node:
        acks = [a.text() for chunk in node.submit_lines(rows) for a in chunk]
    assert acks == ["bom0 SETTLED", "bom1 SETTLED", "bom2 SETTLED"]
