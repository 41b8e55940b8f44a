"""Strict network files (issue 15 items 1 and 13): every table refuses keys it does not know,
every value of the wrong type is a NetworkError naming its key, and every amount and every
currency's total is bounded, refused before anything is written."""

from __future__ import annotations

import contextlib
import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setara.core.ledger import _UNBOUNDED
from setara.core.money import AMOUNT_MINOR_MAX, SUPPLY_MINOR_MAX
from setara.core.network import (
    ACCOUNT_KEYS,
    ADD_MEMBER_ACCOUNT_KEYS,
    ADD_MEMBER_KEYS,
    CHANGE_KEYS,
    CREDIT_LINE_KEYS,
    CURRENCY_KEYS,
    LSM_KEYS,
    MEMBER_KEYS,
    NETWORK_KEYS,
    Network,
    NetworkError,
    example_toml,
    parse_network,
    parse_network_change,
)
from tests.conftest import run_cli

EXAMPLE: dict[str, Any] = tomllib.loads(example_toml())
# The example with a top-level [[accounts]] table and [liquidity_saving], so every table is present.
DOC: dict[str, Any] = copy.deepcopy(EXAMPLE)
DOC["members"][1]["opening"].pop("THB")
DOC["accounts"] = [{"member": DOC["members"][1]["id"], "currency": "THB", "opening_balance": "1.00",
                    "credit_line": "2.00", "net_debit_cap": "3.00"}]
DOC["liquidity_saving"] = {"on_entry": "bilateral", "periodic": "optimise", "period_s": 60}

ADD = """
[[add_member]]
id = "BANK_NEW"
bic = "NEWBIDJA"
country = "ID"
opening = { IDR = "100.00" }

[[add_member.accounts]]
currency = "MYR"
opening_balance = "5.00"

[[credit_line]]
member = "BANK_ID1"
currency = "IDR"
credit_line = "10.00"
"""


def net() -> Network:
    return parse_network(DOC)


def test_the_fixture_document_is_valid() -> None:
    thb = net().accounts[(DOC["members"][1]["id"], "THB")]
    assert (thb.opening_minor, thb.credit_line_minor, thb.net_debit_cap_minor) == (100, 200, 300)
    assert parse_network_change(ADD, net())["add_members"][0]["member"]["id"] == "BANK_NEW"


# (table path in the document, allowed keys, the table's name in errors)
TABLES = [
    ((), NETWORK_KEYS, "network"),
    (("currencies", 0), CURRENCY_KEYS, "currencies[0]"),
    (("members", 0), MEMBER_KEYS, "members[0]"),
    (("accounts", 0), ACCOUNT_KEYS, "accounts[0]"),
    (("liquidity_saving",), LSM_KEYS, "liquidity_saving"),
]


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,24}", fullmatch=True)


@pytest.mark.parametrize(("path", "allowed", "where"), TABLES, ids=[t[2] for t in TABLES])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=_KEY, value=st.one_of(st.just("0"), st.integers(), st.booleans(), st.just(["KP"])))
def test_every_network_table_refuses_an_unknown_key_by_name(path: tuple[Any, ...], allowed: frozenset[str],
                                                            where: str, key: str, value: Any) -> None:
    doc = copy.deepcopy(DOC)
    table = _at(doc, path)
    if key in allowed:
        return
    table[key] = value
    with pytest.raises(NetworkError, match=rf"^{re.escape(where)}: unknown key {key}$"):
        parse_network(doc)


def test_the_reported_typos_are_refused() -> None:
    doc = copy.deepcopy(EXAMPLE)
    doc["members"][0]["credit_line"] = {"IDR": "100.00"}
    with pytest.raises(NetworkError, match=r"^members\[0\]: unknown key credit_line$"):
        parse_network(doc)
    doc = copy.deepcopy(EXAMPLE)
    doc["comprehensive_sanction_country"] = ["IR"]
    with pytest.raises(NetworkError, match=r"^network: unknown key comprehensive_sanction_country$"):
        parse_network(doc)
    doc["other"] = 1
    with pytest.raises(NetworkError, match=r"^network: unknown keys comprehensive_sanction_country, other$"):
        parse_network(doc)


def test_a_role_that_is_not_a_string_is_named() -> None:
    doc = copy.deepcopy(EXAMPLE)
    doc["members"][0]["roles"] = [{"x": "member"}, "fx_provider"]
    with pytest.raises(NetworkError, match=r"^members\[0\]\.roles\[0\]: expected string, got table$"):
        parse_network(doc)
    doc["members"][0]["roles"] = ["member", "member"]
    with pytest.raises(NetworkError, match=r"members\[0\]\.roles\[1\]: role 'member' listed twice"):
        parse_network(doc)
    doc["members"][0]["roles"] = "member"
    with pytest.raises(NetworkError, match=r"members\[0\]\.roles: expected array, got string"):
        parse_network(doc)


def _paths(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and array element of a document, as paths."""
    out = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for k, v in items:
        out.append((*path, k))
        out += _paths(v, (*path, k))
    return out


_TOML_VALUES = st.recursive(
    st.one_of(st.integers(-(2**63), 2**63 - 1), st.booleans(), st.text(max_size=8),
              st.floats(allow_nan=False), st.sampled_from(["1.00", "-1", "IDR", "KP", "member", "1e3", ""])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["IDR", "x", "id", "code"]), inner, max_size=2)),
    max_leaves=5)
_DOC_PATHS = _paths(DOC)


@settings(max_examples=400, deadline=None)
@given(path=st.sampled_from(_DOC_PATHS), value=_TOML_VALUES)
def test_any_value_anywhere_is_accepted_or_refused_with_a_network_error(path: tuple[Any, ...], value: Any) -> None:
    """Never a TypeError, KeyError or crash: replace any one value of a valid network by any TOML
    value and the file either loads or gives a NetworkError that names where."""
    doc = copy.deepcopy(DOC)
    _at(doc, path[:-1])[path[-1]] = value
    try:
        parse_network(doc)
    except NetworkError as e:
        top = path[0]
        assert str(e).startswith((top, "network", "members", "accounts")), str(e)


CHANGE_DOC: dict[str, Any] = tomllib.loads(ADD)
_CHANGE_PATHS = _paths(CHANGE_DOC)


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(_CHANGE_PATHS), value=_TOML_VALUES)
def test_any_value_in_a_change_file_is_accepted_or_refused_with_a_network_error(path: tuple[Any, ...],
                                                                                value: Any) -> None:
    import tomli_w

    doc = copy.deepcopy(CHANGE_DOC)
    _at(doc, path[:-1])[path[-1]] = value
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):  # not writable as TOML (e.g. a table inside an array of values)
        return
    with contextlib.suppress(NetworkError):
        parse_network_change(text, net())


CHANGE_TABLES = [
    ("", CHANGE_KEYS, "change"),
    ("add_member", ADD_MEMBER_KEYS, "add_member[0]"),
    ("add_member.accounts", ADD_MEMBER_ACCOUNT_KEYS, "add_member[0].accounts[0]"),
    ("credit_line", CREDIT_LINE_KEYS, "credit_line[0]"),
]


@pytest.mark.parametrize(("table", "allowed", "where"), CHANGE_TABLES, ids=[t[2] for t in CHANGE_TABLES])
@settings(max_examples=25, deadline=None)
@given(key=_KEY)
def test_every_change_table_refuses_an_unknown_key_by_name(table: str, allowed: frozenset[str], where: str,
                                                           key: str) -> None:
    if key in allowed:
        return
    if table:
        header = f"[[{table}]]"
        text = ADD.replace(header + "\n", f"{header}\n{key} = \"1\"\n", 1)
    else:
        text = f"{key} = \"1\"\n" + ADD
    with pytest.raises(NetworkError, match=rf"^{re.escape(where)}: unknown key {key}$"):
        parse_network_change(text, net())


def test_change_refuses_what_would_be_ignored_or_doubled() -> None:
    # an existing account's opening balance is history: a change cannot set it
    with pytest.raises(NetworkError, match=r"^credit_line\[0\]: unknown key opening_balance$"):
        parse_network_change(ADD.replace('credit_line = "10.00"', 'credit_line = "10.00"\nopening_balance = "1"'),
                             net())
    # the accounts of a new member are its own: a `member` key there would be silently overridden
    with pytest.raises(NetworkError, match=r"^add_member\[0\]\.accounts\[0\]: unknown key member$"):
        parse_network_change(ADD.replace('currency = "MYR"', 'currency = "MYR"\nmember = "BANK_ID1"'), net())
    # one account declared inline and in [[add_member.accounts]]
    with pytest.raises(NetworkError, match=r"add_member\[0\]\.accounts\[0\]: account BANK_NEW/IDR declared twice"):
        parse_network_change(ADD.replace('currency = "MYR"', 'currency = "IDR"'), net())
    with pytest.raises(NetworkError, match=r"^add_member: expected an array of tables"):
        parse_network_change('[add_member]\nid = "X"\n', net())
    twice = ADD + '\n[[credit_line]]\nmember = "BANK_ID1"\ncurrency = "IDR"\ncredit_line = "20.00"\n'
    with pytest.raises(NetworkError, match=r"^credit_line\[1\]: account BANK_ID1/IDR changed twice$"):
        parse_network_change(twice, net())


def test_the_supply_bound_is_the_ledger_issuance_floor() -> None:
    assert -_UNBOUNDED == SUPPLY_MINOR_MAX < 2**63 - 1


def _with_openings(total_minor: int, n: int = 3) -> dict[str, Any]:
    """The example network with IDR openings of its first n members summing to total_minor."""
    doc = copy.deepcopy(EXAMPLE)
    for m in doc["members"]:
        for t in ("opening", "credit_lines"):
            m.get(t, {}).pop("IDR", None)
    share = total_minor // n
    for i in range(n):
        part = share if i < n - 1 else total_minor - share * (n - 1)
        doc["members"][i].setdefault("opening", {})["IDR"] = f"{part // 100}.{part % 100:02d}"
    return doc


@settings(max_examples=60, deadline=None)
@given(total=st.integers(1, 3 * 10**18), n=st.integers(1, 3))
def test_openings_are_bounded_per_currency(total: int, n: int) -> None:
    doc = _with_openings(total, n)
    largest = total - total // n * (n - 1)
    if total <= SUPPLY_MINOR_MAX and largest <= AMOUNT_MINOR_MAX:
        assert sum(a.opening_minor for a in parse_network(doc).accounts.values() if a.currency == "IDR") == total
        return
    with pytest.raises(NetworkError, match=r"^members\[\d\]\.opening\.IDR: ") as e:
        parse_network(doc)
    assert "IDR" in str(e.value)


def test_credit_lines_count_toward_the_bound() -> None:
    doc = _with_openings(SUPPLY_MINOR_MAX - 100, 5)
    doc["members"][5].setdefault("credit_lines", {})["IDR"] = "1.01"
    with pytest.raises(NetworkError, match=r"^members\[5\]\.credit_lines\.IDR: opening balances and credit "
                                           r"lines in IDR would total 46116860184273879\.05, above the most"):
        parse_network(doc)
    doc["members"][5]["credit_lines"]["IDR"] = "1.00"
    big = parse_network(doc)
    raising = f'[[credit_line]]\nmember = "{doc["members"][5]["id"]}"\ncurrency = "IDR"\ncredit_line = "1.01"\n'
    with pytest.raises(NetworkError, match=r"^credit_line\[0\]\.credit_line: opening balances and credit lines"):
        parse_network_change(raising, big)
    adding = '[[add_member]]\nid = "BANK_NEW"\nbic = "NEWBIDJA"\ncountry = "ID"\nopening = { IDR = "0.01" }\n'
    with pytest.raises(NetworkError, match=r"^add_member\[0\]\.opening\.IDR: opening balances"):
        parse_network_change(adding, big)


def test_one_amount_above_the_bound_is_named() -> None:
    doc = copy.deepcopy(EXAMPLE)
    doc["members"][1]["opening"]["IDR"] = "10000000000000000.01"
    with pytest.raises(NetworkError, match=r"^members\[1\]\.opening\.IDR: amount .* larger than"):
        parse_network(doc)
    doc["members"][1]["opening"]["IDR"] = 1.5
    with pytest.raises(NetworkError, match=r"^members\[1\]\.opening\.IDR: expected a decimal string .* got float"):
        parse_network(doc)


def test_init_refuses_a_bad_network_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    import tomli_w

    cases = {
        "typo": tomli_w.dumps({**EXAMPLE, "members": [{**EXAMPLE["members"][0], "credit_line": {"IDR": "1"}},
                                                      *EXAMPLE["members"][1:]]}),
        "roles": tomli_w.dumps({**EXAMPLE, "members": [{**EXAMPLE["members"][0], "roles": [{"x": "member"},
                                                                                         "fx_provider"]},
                                                       *EXAMPLE["members"][1:]]}),
        "supply": tomli_w.dumps(_with_openings(SUPPLY_MINOR_MAX + 1, 5)),
    }
    for name, text in cases.items():
        f = tmp_path / f"{name}.toml"
        f.write_text(text)
        db = tmp_path / f"{name}.db"
        proc = run_cli("init", "--network", str(f), "--db", str(db), check=False)
        assert proc.returncode == 2, (name, proc.stderr)
        lines = proc.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr.decode(), (name, lines)
        assert not list(tmp_path.glob(f"{name}.db*")), name


def test_a_refused_change_file_leaves_the_state_as_it_was(tmp_path: Path) -> None:
    net_file = tmp_path / "network.toml"
    net_file.write_text(example_toml())
    db = str(tmp_path / "s.db")
    run_cli("init", "--network", str(net_file), "--db", db)
    before = run_cli("verify", "--db", db).stdout
    for name, text in {
        "typo": ADD.replace('credit_line = "10.00"', 'credit_lines = "10.00"'),
        "opening": ADD.replace('credit_line = "10.00"', 'credit_line = "10.00"\nopening_balance = "5.00"'),
        "roles": ADD.replace('country = "ID"', 'country = "ID"\nroles = [{ x = "member" }, "fx_provider"]'),
        "supply": ADD.replace('IDR = "100.00"', 'IDR = "46116860184273879.04"'),
    }.items():
        change = tmp_path / f"{name}.toml"
        change.write_text(text)
        proc = run_cli("network", "apply", str(change), "--db", db, check=False)
        err = proc.stderr.decode()
        # one error line (the "no sanctions list" warning is issue 15 item 11, the CLI's)
        errors = [ln for ln in err.splitlines() if not ln.startswith("warning:")]
        assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in err, (name, err)
    assert run_cli("verify", "--db", db).stdout == before
    assert "BANK_NEW" not in run_cli("network", "show", "--db", db).stdout.decode()
