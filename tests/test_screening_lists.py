"""List versions: downgrade refusal (and --force by an officer), persisted screening indexes, the one
hold-reference format, and monotone scores per entity."""

from __future__ import annotations

import sqlite3
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setara.compliance import Screener
from setara.compliance.lists import Entity, ListData
from setara.node.screening import hold_reference, index_key, list_change_refusal, load_screener
from setara.store import open_store
from tests.conftest import requires_shared, run_cli


def _list(n: int, date: str | None = "2026-02-01", tag: str = "a", source: str = "un-xml") -> ListData:
    entities = tuple(Entity(str(1000 + i), (f"Person Number{i} Tester",), "person") for i in range(n))
    return ListData(source, date, f"{tag}{n}{date}", entities)


def test_a_list_older_than_the_current_one_is_refused() -> None:
    why = list_change_refusal(_list(100), _list(100, "2025-12-31", tag="b"))
    assert why is not None and "older" in why and "2025-12-31" in why


def test_a_list_dropping_more_than_five_percent_is_refused() -> None:
    current = _list(100)
    assert list_change_refusal(current, _list(95, "2026-03-01")) is None  # 5 of 100: allowed
    why = list_change_refusal(current, _list(94, "2026-03-01"))
    assert why is not None and "drops 6 of the current version's 100 entities" in why


def test_a_newer_growing_list_the_same_file_or_a_first_import_pass() -> None:
    current = _list(100)
    assert list_change_refusal(None, _list(1)) is None
    assert list_change_refusal(current, current) is None
    assert list_change_refusal(current, _list(120, "2026-03-01")) is None
    # No date in the file (OFAC legacy CSV): only the entities are compared.
    assert list_change_refusal(_list(100, None), _list(100, None, tag="c")) is None


def test_hold_reference_has_one_format() -> None:
    assert hold_reference("un-xml@1", "creditor_name", 0.8951, "un-xml", "111209") == \
        "un-xml@1 creditor_name 0.895 un-xml:111209"


_OLD_UN = """<?xml version="1.0" encoding="UTF-8"?>
<CONSOLIDATED_LIST dateGenerated="2020-01-01T00:00:00Z"><INDIVIDUALS><INDIVIDUAL>
<DATAID>1</DATAID><FIRST_NAME>ONLY</FIRST_NAME><SECOND_NAME>PERSON</SECOND_NAME>
<UN_LIST_TYPE>Test</UN_LIST_TYPE></INDIVIDUAL></INDIVIDUALS><ENTITIES/></CONSOLIDATED_LIST>
"""


def test_lists_import_refuses_a_downgrade_unless_an_officer_forces_it(tmp_path: Path) -> None:
    un = requires_shared("sanctions", "un", "UN_consolidated.xml")
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = tmp_path / "s.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    run_cli("lists", "import", "--source", "un-xml", str(un), "--db", str(db))
    old = tmp_path / "old.xml"
    old.write_text(_OLD_UN)
    proc = run_cli("lists", "import", "--source", "un-xml", str(old), "--db", str(db), check=False)
    assert proc.returncode == 2 and proc.stdout == b""
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and "older than the current version" in lines[0]
    proc = run_cli("lists", "import", "--source", "un-xml", str(old), "--force", "--db", str(db), check=False)
    assert proc.returncode == 2 and "--officer" in proc.stderr.decode()
    assert _entities(db) > 1000  # nothing was replaced
    run_cli("lists", "import", "--source", "un-xml", str(old), "--force", "--officer", "ana", "--db", str(db))
    assert _entities(db) == 1
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT subject, decision, list, explanation, time_ms FROM screening_audit "
                            "WHERE subject = 'list-import'").fetchall()
    assert len(rows) == 1 and rows[0][:3] == ("list-import", "forced", "un-xml")
    assert "officer ana forced un-xml@2" in rows[0][3] and rows[0][4] > 0
    # The import persisted the index for the list version now in force.
    with sqlite3.connect(db) as conn:
        keys = [r[0] for r in conn.execute("SELECT key FROM list_indexes")]
    assert "un-xml@2" in keys


def _entities(db: Path) -> int:
    import json

    return int(json.loads(run_cli("lists", "status", "--db", str(db)).stdout)["entities"])


@cache
def _un() -> ListData:
    from setara.compliance import load_list_path

    return load_list_path("un-xml", requires_shared("sanctions", "un", "UN_consolidated.xml"))


def test_persisted_index_screens_like_a_fresh_one(tmp_path: Path) -> None:
    un = _un()
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = tmp_path / "s.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    store = open_store(str(db))
    try:
        lists = {"un-xml": (7, un)}
        assert store.get_list_index(index_key(lists), "x") is None
        built = load_screener(store, lists, persist=True)
        from setara.compliance.matcher import index_fingerprint

        blob = store.get_list_index("un-xml@7", index_fingerprint())
        assert blob is not None
        assert store.get_list_index("un-xml@7", "another matcher") is None
        loaded = load_screener(store, lists)
        for name in ("Kim Jong Un", "Mutasim Qadafi", "김정은", "Budi Santoso", "Аль-Каида"):
            assert loaded.screen(name) == built.screen(name)
        with pytest.raises(ValueError, match="other entities"):
            Screener([_list(3)], index=blob)
    finally:
        store.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_exact_listed_name_never_scores_below_a_misspelling_of_it(data: st.DataObject) -> None:
    un = _un()
    screener = _screener()
    entity = data.draw(st.sampled_from(un.entities))
    name = data.draw(st.sampled_from((*entity.names, *entity.weak_names)))
    i = data.draw(st.integers(0, len(name) - 1))
    op = data.draw(st.sampled_from(("sub", "del", "ins", "swap")))
    ch = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz"))
    typo = {"sub": name[:i] + ch + name[i + 1:], "del": name[:i] + name[i + 1:], "ins": name[:i] + ch + name[i:],
            "swap": name[:i] + name[i + 1:i + 2] + name[i:i + 1] + name[i + 2:]}[op]
    if not typo.strip():
        return
    exact, misspelt = screener.screen(name), screener.screen(typo)
    if misspelt.entity_id == entity.id:
        assert exact.score >= misspelt.score, (name, exact, typo, misspelt)


@cache
def _screener() -> Screener:
    return Screener([_un()])
