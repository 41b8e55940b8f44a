"""Strict input below the CLI (issue 15 items 8-10): FX rates, databases that do not exist, and
input in UTF-16 or UTF-32."""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from setara.core.money import RATE_DIGITS_MAX, RATE_MAX, RATE_MIN, RateError, parse_rate
from setara.core.network import example_toml, load_network
from setara.node import Node
from setara.node.intake import InputEncodingError, sniff_input, xml_as_utf8
from setara.store import NoDatabaseError, StoreError, open_store
from tests.conftest import T0_MS, requires_shared, run_cli

# ------------------------------------------------------------------ FX rates


@pytest.mark.parametrize("text", ["0.000283", "1", "4.25", "0.000000000001", "1000000000000", "00.5",
                                  "123456789.123456789", "0.000000000001234567890123456"])
def test_plain_rates_are_exact(text: str) -> None:
    assert parse_rate(text) == Fraction(Decimal(text))


@pytest.mark.parametrize(("text", "why"), [
    ("1e400", "not a plain decimal"), ("1E-3", "not a plain decimal"), ("-1", "not a plain decimal"),
    ("+1", "not a plain decimal"), (" 1", "not a plain decimal"), ("1 ", "not a plain decimal"),
    ("1,5", "not a plain decimal"), ("1_000", "not a plain decimal"), (".5", "not a plain decimal"),
    ("5.", "not a plain decimal"), ("1/3", "not a plain decimal"), ("nan", "not a plain decimal"),
    ("inf", "not a plain decimal"), ("\u0661", "not a plain decimal"), ("", "not a plain decimal"),
    ("0", "greater than zero"), ("0.000", "greater than zero"),
    ("1000000000000.1", "outside"), ("0.0000000000009", "outside"),
    ("1234567890.123456789", "more than 18 significant digits"), ("9" * 41, "not a plain decimal"),
])
def test_bad_rates_are_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(RateError, match=why):
        parse_rate(text)


def test_rate_error_is_a_value_error() -> None:
    assert issubclass(RateError, ValueError)
    with pytest.raises(ValueError, match="decimal string"):
        parse_rate(0.5)  # type: ignore[arg-type]


@settings(max_examples=500)
@given(digits=st.integers(1, 10**RATE_DIGITS_MAX - 1), scale=st.integers(0, 30), lead=st.integers(0, 3))
def test_a_rate_is_accepted_exactly_when_in_bounds(digits: int, scale: int, lead: int) -> None:
    """Any plain decimal of at most 18 significant digits: accepted, exactly, iff within bounds."""
    s = str(digits).rjust(scale + 1, "0")
    text = "0" * lead + (s[:-scale] + "." + s[-scale:] if scale else s)
    value = Fraction(digits, 10**scale)
    if RATE_MIN <= value <= RATE_MAX:
        assert parse_rate(text) == value
    else:
        with pytest.raises(RateError, match="outside"):
            parse_rate(text)


@settings(max_examples=300)
@given(st.text(max_size=24))
def test_any_text_is_a_rate_or_a_rate_error(text: str) -> None:
    try:
        value = parse_rate(text)
    except RateError:
        return
    assert RATE_MIN <= value <= RATE_MAX and text.replace(".", "", 1).isdigit() and text.isascii()


# ------------------------------------------------------------------ missing databases


def test_opening_a_missing_sqlite_database_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(NoDatabaseError, match=f"^no Setara database at {path}; run setara init$"):
        open_store(str(path))
    with pytest.raises(StoreError):  # NoDatabaseError is a StoreError: existing handlers still catch it
        Node.open(str(path), write=False)
    with pytest.raises(NoDatabaseError):
        Node.open(str(path), write=True)
    assert os.listdir(tmp_path) == []
    store = open_store(str(path), create=True)
    store.close()
    assert path.exists()
    open_store(str(path)).close()  # exists now: opens (an empty file is "no network", found by check_schema)


def test_read_commands_on_a_missing_database_create_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "typo.db")
    for args in (["verify"], ["export", "balances"], ["network", "show"], ["fx", "rates"], ["lists", "status"],
                 ["holds", "list"]):
        proc = run_cli(*args, "--db", db, check=False)
        err = proc.stderr.decode()
        assert proc.returncode != 0 and f"no Setara database at {db}; run setara init" in err, (args, err)
        assert "Traceback" not in err, args
    assert os.listdir(tmp_path) == []


def test_init_still_creates(tmp_path: Path) -> None:
    db = str(tmp_path / "new.db")
    Node.create(db, load_network(example_toml()), T0_MS).close()
    with Node.open(db, write=False) as node:
        assert node.network is not None and "BANK_ID1" in node.network.members


def _pg_url() -> str:
    import psycopg

    base = os.environ.get("SETARA_TEST_PG", "postgresql://127.0.0.1:5432/test")
    try:
        psycopg.connect(base, connect_timeout=3).close()
    except Exception as e:  # any failure to reach the server is a reason to skip
        pytest.skip(f"PostgreSQL not reachable: {str(e).strip().splitlines()[0] if str(e).strip() else e}")
    return base


def test_a_missing_postgres_schema_is_not_created() -> None:
    import psycopg

    base = _pg_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    try:
        with pytest.raises(NoDatabaseError, match=f"no Setara database at .*no schema {schema}.*run setara init"):
            open_store(url)
        with psycopg.connect(base) as c:
            assert c.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None
        open_store(url, create=True).close()
        open_store(url).close()
    finally:
        with psycopg.connect(base, autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# ------------------------------------------------------------------ UTF-16 and UTF-32 input

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


def _first_line(data: bytes) -> bytes:
    return data.split(b"\n", 1)[0] + b"\n"


@pytest.mark.parametrize("enc", ENCODINGS)
def test_xml_in_any_unicode_encoding_is_read_as_xml(enc: str) -> None:
    from setara.iso20022 import parse_message

    sample = requires_shared("iso20022", "samples", "cbpr_rules_mit", "cbprplus_pacs008_2025.xml").read_text()
    declared = sample.replace("encoding='UTF-8'", f"encoding='{enc.upper().removesuffix('-SIG')}'").replace(
        'encoding="UTF-8"', f'encoding="{enc.upper().removesuffix("-SIG")}"')
    data = declared.encode(enc)
    assert sniff_input(_first_line(data)) == "xml"
    msg = parse_message(xml_as_utf8(data))
    assert msg.msg_type.startswith("pacs.008") and len(msg.transactions) == 1
    assert parse_message(sample.encode()).transactions[0].uetr == msg.transactions[0].uetr


@pytest.mark.parametrize("enc", [e for e in ENCODINGS if not e.startswith("utf-8")])
def test_json_lines_in_utf16_or_utf32_are_refused_once_naming_the_encoding(enc: str) -> None:
    data = '{"id":"p1","debtor":"BANK_ID1","creditor":"BANK_ID2","currency":"IDR","amount":"1.00"}\n'.encode(enc)
    with pytest.raises(InputEncodingError, match=r"^the input is UTF-(16|32).*: JSON Lines must be UTF-8"):
        sniff_input(_first_line(data))


_NOT_NUL = st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))


@settings(max_examples=400)
@given(first=st.sampled_from(list("<{[ \t\r\nax1\"")), rest=st.text(_NOT_NUL, max_size=30),
       enc=st.sampled_from(ENCODINGS))
def test_sniffing_agrees_with_the_first_character(first: str, rest: str, enc: str) -> None:
    """XML when the text, in whatever encoding, begins with '<' after white space; otherwise JSON
    Lines when it is UTF-8, and refused in any other encoding."""
    text = first + rest
    is_xml = text.lstrip(" \t\r\n").startswith("<")  # XML's white space only
    if is_xml or enc.startswith("utf-8"):
        assert sniff_input(text.encode(enc)) == ("xml" if is_xml else "jsonl")
    else:
        with pytest.raises(InputEncodingError):
            sniff_input(text.encode(enc))


def test_bad_utf16_is_refused_with_the_byte() -> None:
    data = "<x/>".encode("utf-16") + b"\x00\xd8"  # a lone high surrogate
    with pytest.raises(InputEncodingError, match="not valid UTF-16 at byte"):
        xml_as_utf8(data)
    assert xml_as_utf8(b"<x/>") == b"<x/>"
