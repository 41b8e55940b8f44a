"""Named payments on the columnar path (issue 17) against the line-by-line path: the same acks,
state hash and `verify` result, for payments that settle, queue, are held or blocked by screening,
repeat an id, or are cut off by a country rule."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setara.core.instructions import fingerprint, parse_json_instruction, parties_digest_of
from setara.core.network import example_toml, load_network
from setara.node.intake import NameScreening, parse_lines
from setara.node.node import Node
from setara.node.screening import PaymentScreening
from setara.node.verify import verify_store
from setara.ports import NullScreening
from setara.store import open_store
from tests.conftest import requires_shared

T0 = 1_767_225_600_000
MEMBERS = ["BANK_ID1", "BANK_ID2", "BANK_MY1", "BANK_TH2", "BANK_PH1", "FX_STRAITS"]
# Clean names, a listed name (blocked), a near match (held), and blank text (no party data).
NAMES = ["PT Sinar Jaya", "Budi Santoso Trading", "Siam Rice Exports Co Ltd", "Mutassim Qadhafi",
         "Mutasim Qadafi", "  "]


@functools.cache
def _un_screening() -> PaymentScreening:
    from setara.compliance.lists import load_list_path

    un = requires_shared("sanctions", "un", "UN_consolidated.xml")
    return PaymentScreening({"un-xml": (1, load_list_path("un-xml", un))})


def _payment(i: int, d: int, c: int, ccy: str, amount: str, dn: str | None, cn: str | None,
             dc: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": f"p{i}", "debtor": MEMBERS[d], "creditor": MEMBERS[c], "currency": ccy,
                           "amount": amount}
    if dn is not None:
        rec["debtor_name"] = dn
    if cn is not None:
        rec["creditor_name"] = cn
    if dc is not None:
        rec["debtor_country"] = dc
    return rec


payments = st.lists(st.builds(
    _payment, st.integers(0, 40), st.integers(0, len(MEMBERS) - 1), st.integers(0, len(MEMBERS) - 1),
    st.sampled_from(["IDR", "IDR", "MYR", "THB", "PHP"]),
    st.sampled_from(["1.00", "250.00", "4000000.00", "900000000.00"]),
    st.one_of(st.none(), st.sampled_from(NAMES)), st.one_of(st.none(), st.sampled_from(NAMES)),
    st.sampled_from([None, None, "ID", "KP"])), min_size=1, max_size=60)


def _store(tmp: Path, name: str) -> str:
    url = str(tmp / name)
    Node.create(url, load_network(example_toml()), T0).close()
    return url


def _bulk(url: str, lines: list[bytes], screening: Any, chunk: int) -> tuple[list[str], str]:
    with Node.open(url, write=True) as node:
        node.screening = screening
        acks = [a.text() for acks in node.submit_lines(lines, batch_lines=chunk, clock=lambda: T0 + 1000)
                for a in acks]
        return acks, node.engine.state_hash()


def _one_by_one(url: str, lines: list[bytes], screening: Any) -> tuple[list[str], str]:
    with Node.open(url, write=True) as node:
        node.screening = screening
        b = node.begin()
        acks = [node.submit_instruction(b, parse_json_instruction(orjson.loads(raw), node.network), n, "-",
                                        T0 + 1000).text() for n, raw in enumerate(lines, start=1)]
        node.flush(b)
        return acks, node.engine.state_hash()


def _verified(url: str) -> str:
    store = open_store(url)
    try:
        return verify_store(store).state_hash
    finally:
        store.close()


def _logged_digests(url: str) -> dict[str, str]:
    """Each logged submission's party digest, by payment id (the last one logged for an id)."""
    from setara.core.commands import log_commands

    store = open_store(url)
    try:
        return {cmd.id: cmd.parties_digest for blk in store.iter_blocks(0)  # type: ignore[attr-defined]
                for _, cmd in log_commands(orjson.loads(blk.log)) if type(cmd).__name__ == "Submit"}
    finally:
        store.close()


def _intake(url: str) -> dict[str, Any]:
    store = open_store(url)
    try:
        out: dict[str, Any] = {}
        for blk in store.iter_blocks(1):
            out.update(orjson.loads(blk.intake)["payments"])
        return out
    finally:
        store.close()


@pytest.mark.parametrize("listed", [False, True])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=payments, chunk=st.sampled_from([1, 7, 100]))
def test_named_bulk_path_equals_line_by_line(tmp_path_factory: pytest.TempPathFactory, listed: bool,
                                             rows: list[dict[str, Any]], chunk: int) -> None:
    rows = [r for r in rows if r["debtor"] != r["creditor"]]
    if not rows:
        return
    screening = _un_screening() if listed else NullScreening()
    tmp = tmp_path_factory.mktemp("named")
    lines = [orjson.dumps(r) + b"\n" for r in rows]
    # one store copied: both then hold the same party key, which named payments' fingerprints depend on
    a = _store(tmp, "bulk.db")
    b = str(tmp / "line.db")
    shutil.copyfile(a, b)
    bulk_acks, bulk_hash = _bulk(a, lines, screening, chunk)
    line_acks, line_hash = _one_by_one(b, lines, screening)
    assert bulk_acks == line_acks
    assert bulk_hash == line_hash
    assert _verified(a) == _verified(b) == bulk_hash
    # the names stay in the operator's intake record, the same on both paths, never in the log
    assert _intake(a) == _intake(b)
    # on both paths the log's digest is the store's keyed digest of the party data in its intake
    for url in (a, b):
        intake, logged = _intake(url), _logged_digests(url)
        store = open_store(url)
        try:
            key = bytes.fromhex(store.meta("party_key") or "")
        finally:
            store.close()
        assert logged == {pid: parties_digest_of((intake.get(pid) or [None, None, None])[2] or {}, key)
                          for pid in logged}
        assert any(logged.values()) == any(v[2] for v in intake.values())
    store = open_store(a)
    try:
        assert all(b"Sinar" not in blk.log for blk in store.iter_blocks(0))
    finally:
        store.close()


def test_named_payments_take_the_batch_and_hits_fall_out() -> None:
    net = load_network(example_toml())
    screening = _un_screening()
    rows = [_payment(1, 0, 2, "IDR", "1.00", "PT Sinar Jaya", "Budi Santoso Trading", None),
            _payment(2, 0, 2, "IDR", "1.00", "PT Sinar Jaya", "Mutassim Qadhafi", None),
            _payment(3, 0, 2, "IDR", "1.00", "PT Sinar Jaya", None, "KP"),
            _payment(4, 0, 2, "IDR", "1.00", "Budi Santoso Trading", "PT Sinar Jaya", None)]
    names = NameScreening(screening, net)
    (chunk,) = list(parse_lines(iter([orjson.dumps(r) for r in rows]), net, b"k" * 32, 100, screening,
                                lambda: T0, names=names))
    assert [s[0] for s in chunk] == ["batch", "rows", "batch", "screened"]
    assert chunk[0][1]["id"] == ["p1"] and chunk[2][1]["id"] == ["p4"]
    assert [r[1][8] for r in chunk[1][1]] == ["block", "block"]  # the listed name, the country rule
    assert chunk[0][1]["screening_ref"] == "un-xml@1"
    # each distinct name once: two clean names, then the listed one; p4 is answered from the cache
    assert names.screened == 3 and [e[1:] for e in chunk[3][1]] == [
        ("PT Sinar Jaya", "", True), ("Budi Santoso Trading", "", True), ("Mutassim Qadhafi", "", False)]


def test_the_screening_cache_survives_a_restart(tmp_path: Path) -> None:
    screening = _un_screening()
    url = _store(tmp_path, "s.db")
    lines = [orjson.dumps(_payment(i, 0, 2, "IDR", "1.00", f"Trader {i % 5} Co", "PT Sinar Jaya", None))
             for i in range(20)]
    _bulk(url, lines, screening, 8)
    with Node.open(url, write=True) as node:
        node.screening = screening
        names = node.name_screening()
        assert {k[1] for k in names.names} == {*(f"Trader {i} Co" for i in range(5)), "PT Sinar Jaya"}
        assert all(k[0].startswith("un-xml@1#") for k in names.names)
    # another list version finds nothing cached
    with Node.open(url, write=True) as node:
        node.screening = PaymentScreening({"un-xml": (2, screening.lists["un-xml"][1])})
        assert node.name_screening().names == {}


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.builds(
    _payment, st.integers(0, 40), st.integers(0, len(MEMBERS) - 1), st.integers(0, len(MEMBERS) - 1),
    st.sampled_from(["IDR", "MYR", "THB", "PHP"]), st.sampled_from(["1.00", "250.5", "4000000.00", "0.00"]),
    st.sampled_from(NAMES), st.sampled_from([*NAMES, " Trailing Space Co "]), st.just("ID")), min_size=1, max_size=12))
def test_parse_named_many_equals_parse_named_line_by_line(rows: list[dict[str, Any]]) -> None:
    from setara.core.instructions import parse_named, parse_named_many

    net = load_network(example_toml())
    raws = [orjson.dumps(r) for r in rows]
    key = b"k" * 32
    many = parse_named_many(rows, net, raws, key)
    one = [parse_named(r, net, raw, key) for r, raw in zip(rows, raws, strict=True)]
    if many is None:
        return  # judged line by line
    assert all(x is not None for x in one)
    assert [x for x in one if x is not None] == [
        (*r, 1, fp, p, g) for r, fp, p, g in zip(zip(many["id"], many["debtor"], many["creditor"], many["currency"],
                                                     many["amount_minor"], strict=True), many["fingerprint"],
                                                 many["parties"], many["parties_digest"], strict=True)]
    ins = [parse_json_instruction(r, net) for r in rows]
    assert [x[6] for x in one if x is not None] == [fingerprint(i, key) for i in ins]
    assert [x[8] for x in one if x is not None] == [parties_digest_of(i.parties, key) for i in ins]


def test_parse_named_many_takes_a_mixed_currency_chunk() -> None:
    from setara.core.instructions import parse_named_many

    rows = [_payment(1, 0, 2, "IDR", "1.00", "PT Sinar Jaya", "Budi Santoso Trading", "ID"),
            _payment(2, 2, 0, "MYR", "2.50", "Budi Santoso Trading", "PT Sinar Jaya", "ID")]
    many = parse_named_many(rows, load_network(example_toml()), [orjson.dumps(r) for r in rows], b"k" * 32)
    assert many is not None and many["currency"] == ["IDR", "MYR"] and many["amount_minor"] == [100, 250]
