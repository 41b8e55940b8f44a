"""Strict JSON instructions (issue 15 items 2-4): amounts only as decimal strings, no key given
twice, URL-safe payment ids; on every path an instruction takes (one line, the API's decoded
object, the fast per-line path and the columnar path of the intake)."""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from setara.core.instructions import (
    ID_CHARS_MAX,
    NestingError,
    Rejection,
    duplicate_key,
    parse_json_instruction,
    parse_json_line,
    payment_id_problem,
)
from setara.core.network import Network, example_toml, load_network
from setara.node import Node
from setara.node.intake import Segment, parse_chunk
from setara.ports import NullScreening

NET: Network = load_network(example_toml())
KEY = bytes(32)
PLAIN = {"id": "p1", "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR", "amount": "12.50"}


def _line(obj: dict[str, Any], *, spaced: bool = False) -> bytes:
    return (json.dumps(obj) if spaced else orjson.dumps(obj).decode()).encode() + b"\n"


def verdicts(lines: list[bytes]) -> dict[int, tuple[str, Any]]:
    """Line number -> ("ok", (id, amount_minor)) or ("rejected", (code, text)), as the intake
    judges a chunk (all its paths: columnar, per line, full)."""
    out: dict[int, tuple[str, Any]] = {}
    seg: Segment
    for seg in parse_chunk(lines, 1, NET, KEY, NullScreening(), 0):
        if seg[0] == "batch":
            for i, n in enumerate(seg[2]):
                out[n] = ("ok", (seg[1]["id"][i], seg[1]["amount_minor"][i]))
        else:
            for n, row, _private, _audits, rej in seg[1]:
                out[n] = ("ok", (row[0], row[4])) if row is not None else ("rejected", rej[:2])
    return out


# ------------------------------------------------------------------ amounts as JSON numbers

@pytest.mark.parametrize("raw", ["1.999999999999999999", "1e2", "100", "12.5", "0.1", "-1"])
def test_a_json_number_amount_is_refused_on_every_path(raw: str) -> None:
    text = _line(PLAIN).replace(b'"12.50"', raw.encode())
    with pytest.raises(Rejection, match=r"write amounts as decimal strings") as e:
        parse_json_instruction(parse_json_line(text), NET)
    assert e.value.code == "AM12" and e.value.payment_id == "p1"
    # alone (per-line path), and among plain lines (which would take the columnar path)
    others = [_line({**PLAIN, "id": f"o{i}"}) for i in range(20)]
    for lines in ([text], [*others, text, *others]):
        v = verdicts(lines)
        bad = lines.index(text) + 1
        assert v[bad][0] == "rejected" and v[bad][1][0] == "AM12" and "decimal strings" in v[bad][1][1]
        assert sum(1 for x in v.values() if x[0] == "ok") == len(lines) - 1


@settings(max_examples=200, deadline=None)
@given(amount=st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False)))
def test_no_json_number_ever_becomes_an_amount(amount: float) -> None:
    text = orjson.dumps({**PLAIN, "amount": amount}) + b"\n"
    v = verdicts([text, _line({**PLAIN, "id": "p2"})])
    assert v[1][0] == "rejected" and v[1][1][0] == "AM12"
    assert v[2] == ("ok", ("p2", 1250))


def test_other_amount_types_are_refused_too() -> None:
    for value in (True, None, [], {}, ["12.50"]):
        with pytest.raises(Rejection, match="field amount must be a decimal string") as e:
            parse_json_instruction({**PLAIN, "amount": value}, NET)
        assert e.value.code == "AM12"


# ------------------------------------------------------------------ keys given twice

def test_the_reported_duplicate_amount_is_refused() -> None:
    text = b'{"id":"d1","debtor":"BANK_ID1","creditor":"BANK_ID2","currency":"IDR","amount":"1.00","amount":"5000.00"}'
    with pytest.raises(Rejection, match=r"^FF01 field amount appears more than once$") as e:
        parse_json_line(text)
    assert e.value.payment_id == "d1"
    others = [_line({**PLAIN, "id": f"o{i}"}) for i in range(30)]
    for lines in ([text + b"\n"], [*others, text + b"\n", *others]):
        v = verdicts(lines)
        n = lines.index(text + b"\n") + 1
        assert v[n] == ("rejected", ("FF01", "field amount appears more than once"))


def test_ids_with_colons_keep_the_fast_paths_and_escapes_do_not_hide_a_repeat() -> None:
    lines = [_line({**PLAIN, "id": f"urn:pay:{i}"}) for i in range(50)]
    segs = parse_chunk(lines, 1, NET, KEY, NullScreening(), 0)
    assert [s[0] for s in segs] == ["batch"] and segs[0][1]["id"][7] == "urn:pay:7"  # columnar
    segs = parse_chunk([*lines, _line({**PLAIN, "id": "x", "priority": "URGENT"})], 1, NET, KEY, NullScreening(), 0)
    assert segs[0][0] == "batch" and set(range(1, 51)) <= set(segs[0][2])  # per line, still batched
    # "\u003a" is a colon that leaves no colon byte: it must not pay for a repeated key's colon
    sly = b'{"id":"a\\u003ab","debtor":"BANK_ID1","creditor":"BANK_ID2","currency":"IDR","amount":"1.00",' \
          b'"amount":"5000.00"}\n'
    assert orjson.loads(sly)["id"] == "a:b" and sly.count(b":") == 6
    for chunk in ([sly], [*lines, sly]):
        v = verdicts(chunk)
        assert v[len(chunk)] == ("rejected", ("FF01", "field amount appears more than once"))


def _with_duplicate(obj: dict[str, Any], key: str, value: Any, at: int) -> bytes:
    """The JSON of obj with `key` given a second time, as the at-th member."""
    members = [f"{json.dumps(k)}:{json.dumps(v)}" for k, v in obj.items()]
    members.insert(at % (len(members) + 1), f"{json.dumps(key)}:{json.dumps(value)}")
    return ("{" + ",".join(members) + "}").encode()


_ID_TEXT = st.text(alphabet=st.sampled_from("abc:XYZ019-._~"), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(pid=_ID_TEXT, key=st.sampled_from(sorted(PLAIN)), value=st.sampled_from(["5000.00", "BANK_ID3", "x", 1]),
       at=st.integers(0, 6), noise=st.sampled_from(["", "debtor_name", "uetr"]))
def test_any_key_given_twice_is_refused_naming_it(pid: str, key: str, value: Any, at: int, noise: str) -> None:
    obj: dict[str, Any] = {**PLAIN, "id": pid}
    if noise:
        obj[noise] = "Budi: Santoso" if noise == "debtor_name" else str(uuid.UUID(int=7))
    text = _with_duplicate(obj, key, value, at)
    assert duplicate_key(text) == key
    with pytest.raises(Rejection) as e:
        parse_json_line(text)
    assert (e.value.code, e.value.text) == ("FF01", f"field {key} appears more than once")
    plain = _line({**PLAIN, "id": "ok1"})
    v = verdicts([plain, text + b"\n", plain.replace(b"ok1", b"ok2")])
    assert v[2] == ("rejected", ("FF01", f"field {key} appears more than once"))
    assert v[1][0] == v[3][0] == "ok"


_TRICKY = st.text(alphabet=st.sampled_from(':"\\/\u00e9a{}[],'), max_size=6)


@settings(max_examples=500, deadline=None)
@given(obj=st.dictionaries(_TRICKY, st.one_of(_TRICKY, st.lists(_TRICKY, max_size=3), st.integers(-9, 9), st.none()),
                           min_size=1, max_size=5),
       which=st.integers(0, 4), value=st.one_of(_TRICKY, st.integers()), at=st.integers(0, 6),
       ascii_only=st.booleans())
def test_a_line_with_a_repeated_key_is_always_refused(obj: dict[str, Any], which: int, value: Any, at: int,
                                                       ascii_only: bool) -> None:
    """Whatever colons, quotes and escapes the keys and values hold, and however the text is
    escaped: a repeated key is found, and a line without one passes the check."""
    members = [f"{json.dumps(k, ensure_ascii=ascii_only)}:{json.dumps(v, ensure_ascii=ascii_only)}"
               for k, v in obj.items()]
    clean = ("{" + ",".join(members) + "}").encode()
    assert parse_json_line(clean) == obj
    key = list(obj)[which % len(obj)]
    members.insert(at % (len(members) + 1), f"{json.dumps(key, ensure_ascii=ascii_only)}:{json.dumps(value)}")
    with pytest.raises(Rejection) as e:
        parse_json_line(("{" + ",".join(members) + "}").encode())
    assert (e.value.code, e.value.text) == ("FF01", f"field {key} appears more than once")


@settings(max_examples=300, deadline=None)
@given(obj=st.dictionaries(st.text(max_size=5), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.text(alphabet=':"{},\\a', max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=8), max_size=6))
def test_json_without_a_repeated_key_is_never_flagged(obj: dict[str, Any]) -> None:
    """Colons in keys and values send a line to the full check; it must find nothing there."""
    for raw in (orjson.dumps(obj), json.dumps(obj).encode(), json.dumps([obj, obj]).encode()):
        assert duplicate_key(raw) is None


def test_duplicate_paths_are_named_inside_arrays_and_objects() -> None:
    assert duplicate_key(b'[{"a":1},{"b":1,"b":2}]') == "[1].b"
    assert duplicate_key(b'{"x":{"y":[{"z":1,"z":1}]}}') == "x.y[0].z"
    assert duplicate_key(b'{"a":"x:y","b":{"c":1}}') is None
    with pytest.raises(NestingError):  # too deep to check: the caller refuses it
        duplicate_key(b"[" * 5000 + b"]" * 5000)
    assert duplicate_key(b'{"":1,"":2}') == ""  # an empty key is a key


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 5), dup_at=st.one_of(st.none(), st.integers(0, 4)), colon_id=st.booleans())
def test_an_api_batch_body_names_the_item_with_a_repeated_key(n: int, dup_at: int | None, colon_id: bool) -> None:
    """The form the API uses on a whole body: the fast count first, the full check only when the
    counts differ (a colon in a value), and the path of the item."""
    items = [orjson.dumps({**PLAIN, "id": f"b:{i}" if colon_id else f"b{i}"}) for i in range(n)]
    if dup_at is not None and dup_at < n:
        items[dup_at] = items[dup_at][:-1] + b',"currency":"MYR"}'
    body = b"[" + b",".join(items) + b"]"
    expected = f"[{dup_at}].currency" if dup_at is not None and dup_at < n else None
    assert duplicate_key(body, orjson.loads(body)) == expected
    assert duplicate_key(body) == expected


def test_a_line_too_deep_to_check_is_refused() -> None:
    deep = b'{"id":"x:1","a":' + b"[" * 1020 + b"]" * 1020 + b"}"
    assert orjson.loads(deep)["id"] == "x:1"  # orjson reads it (its limit is 1024 levels)
    with pytest.raises(Rejection, match=r"^FF01 the line nests too deeply to check its keys$"):
        parse_json_line(deep)


# ------------------------------------------------------------------ payment ids

@pytest.mark.parametrize("pid", ["a/b?c#d%2F", "..", ".", "", "a b", "x" * (ID_CHARS_MAX + 1), "é", "a\u200bb",
                                 "a%20b", "[bold]x[/bold]", "a\\b", "a+b"])
def test_ids_that_cannot_be_addressed_are_refused(pid: str) -> None:
    assert payment_id_problem(pid) is not None
    with pytest.raises(Rejection, match=r"^FF01 field id must be 1-64 characters") as e:
        parse_json_instruction({**PLAIN, "id": pid}, NET)
    assert e.value.payment_id is None
    v = verdicts([_line({**PLAIN, "id": pid}), _line(PLAIN)])
    assert v[1][0] == "rejected" and v[1][1][0] == "FF01" and v[2][0] == "ok"


@settings(max_examples=500)
@given(pid=st.one_of(st.text(max_size=70), _ID_TEXT, st.sampled_from([".", "..", "...", ":", "~", str(uuid.uuid4())])))
def test_an_accepted_id_is_its_own_url_path_segment(pid: str) -> None:
    """The one rule: an id is accepted exactly when it needs no escaping in a URL path and is not
    a dot segment, so /v1/payments/{id} and `setara cancel ID` reach it as written."""
    problem = payment_id_problem(pid)
    ok = bool(re.fullmatch(r"[A-Za-z0-9._~:-]{1,64}", pid)) and pid not in (".", "..")
    assert (problem is None) == ok
    if ok:
        assert urllib.parse.quote(pid, safe=":") == pid
        parts = urllib.parse.urlsplit(f"https://h/v1/payments/{pid}?x=1")
        assert parts.path.split("/")[-1] == pid and parts.query == "x=1" and not parts.fragment
        assert parse_json_instruction({**PLAIN, "id": pid}, NET).id == pid


def test_iso20022_ids_used_as_payment_ids_follow_the_same_rule(node: Node) -> None:
    """A pacs.004 return is named by its return id: one with a slash could never be addressed."""
    from datetime import UTC, date, datetime

    from setara import iso20022 as iso
    from setara.node.messaging import submit_xml
    from tests.test_iso_flow import message

    uetr = str(uuid.uuid4())
    assert submit_xml(node, message("500.00", uetr=uetr, e2e="E2E-R-1")).acks[0].status == "SETTLED"

    def ret(return_id: str) -> bytes:
        return iso.pacs004(
            iso.OriginalRef(msg_id="M1", msg_type="pacs.008.001.08", instr_id=None, end_to_end_id="E2E-R-1",
                            tx_id=None, uetr=uetr),
            return_id=return_id, currency="IDR", minor_units=2, amount_minor=100,
            instructing_agent_bic="SELAMYKLXXX", instructed_agent_bic="NUSAIDJAXXX", reason_code="AC04",
            msg_id=f"RET-{return_id[:8]}", created_at=datetime.now(UTC), settlement_date=date.today())

    res = submit_xml(node, ret("RTR/2026/1"))
    ack = res.acks[0]
    assert (ack.status, ack.reason_code) == ("REJECTED", "FF01")
    assert "payment id 'RTR/2026/1' must be 1-64 characters" in (ack.reason or "")
    assert b"RJCT" in res.replies[0][1]
    assert node.store.get_payment("RTR/2026/1") is None
    assert submit_xml(node, ret("RTR:2026:1")).acks[0].status == "SETTLED"


def test_submit_answers_each_refused_line_and_settles_the_rest(tmp_path: Path) -> None:
    """Through the real CLI and its intake workers: a file of plain lines with a JSON-number amount,
    a repeated key and an unaddressable id among them."""
    from tests.conftest import run_cli

    net_file = tmp_path / "network.toml"
    net_file.write_text(example_toml())
    db = str(tmp_path / "s.db")
    run_cli("init", "--network", str(net_file), "--db", db)
    lines = [_line({**PLAIN, "id": f"ok{i}"}) for i in range(3000)]
    lines[100] = _line({**PLAIN, "id": "num"}).replace(b'"12.50"', b"12.50")
    lines[1500] = b'{"id":"dup","debtor":"BANK_ID1","creditor":"BANK_ID2","currency":"IDR","amount":"1.00",' \
                  b'"amount":"5000.00"}\n'
    lines[2999] = _line({**PLAIN, "id": "a/b?c#d%2F"})
    f = tmp_path / "in.jsonl"
    f.write_bytes(b"".join(lines))
    out = run_cli("submit", str(f), "--db", db, "--batch", "1000").stdout.decode().splitlines()
    assert len(out) == 3000
    assert out[100].startswith("num REJECTED AM12") and "decimal strings" in out[100]
    assert out[1500] == "dup REJECTED FF01 field amount appears more than once"
    assert out[2999].startswith("line:3000 REJECTED FF01 field id must be 1-64 characters")
    assert sum(1 for x in out if x.endswith(" SETTLED")) == 2997
    run_cli("verify", "--db", db)
