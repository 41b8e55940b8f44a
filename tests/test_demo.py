"""`setara demo` end to end in a temporary folder (a small day)."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from setara.node.verify import verify_store
from setara.sim.commands import register
from setara.store import open_store


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_demo_in_an_empty_folder(tmp_path: Path) -> None:
    res = CliRunner().invoke(_app(), ["demo", "--dir", str(tmp_path), "--payments", "400", "--seed", "5"])
    assert res.exit_code == 0, res.output
    report = tmp_path / "report.html"
    assert res.stdout.strip().splitlines()[-1] == str(report.resolve())
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 5
    assert "SYNTHETIC LIST" in html and "netting efficiency" in html.lower()
    assert "RR04" in html or "REJECTED" in html
    store = open_store(str(tmp_path / "setara.db"))
    try:
        verify_store(store)
    finally:
        store.close()
    # a second run refuses to overwrite the database, in one line
    again = CliRunner().invoke(_app(), ["demo", "--dir", str(tmp_path), "--payments", "50"])
    assert again.exit_code == 2 and "already exists" in again.output and "Traceback" not in again.output
    bad = CliRunner().invoke(_app(), ["demo", "--dir", str(tmp_path / "x"), "--un-list", str(tmp_path / "nope.xml")])
    assert bad.exit_code == 2 and "--un-list" in bad.output and "Traceback" not in bad.output


def test_demo_catches_planted_parties(tmp_path: Path) -> None:
    from setara.sim.demo import run_demo

    r = run_demo(tmp_path, payments=300, seed=2)
    hits = r.summary["hits"]
    assert hits and all(h["planted"] for h in hits)
    assert all(h["status"] in ("HELD", "REJECTED") for h in hits)
    assert r.summary["settled"] + r.summary["statuses"].get("REJECTED", 0) + r.summary["holds"] \
        + r.summary["statuses"].get("QUEUED", 0) == 300


_UN_XML = """<?xml version="1.0" encoding="UTF-8"?>
<CONSOLIDATED_LIST dateGenerated="2026-01-01T00:00:00">
 <INDIVIDUALS>
  <INDIVIDUAL><DATAID>900001</DATAID><FIRST_NAME>TESTIVAN</FIRST_NAME><SECOND_NAME>PETROVSKY</SECOND_NAME>
   <UN_LIST_TYPE>DPRK</UN_LIST_TYPE></INDIVIDUAL>
 </INDIVIDUALS>
 <ENTITIES>
  <ENTITY><DATAID>900002</DATAID><FIRST_NAME>OCEAN DRAGON SHIPPING COMPANY</FIRST_NAME>
   <UN_LIST_TYPE>DPRK</UN_LIST_TYPE></ENTITY>
 </ENTITIES>
</CONSOLIDATED_LIST>
"""


def test_demo_with_a_un_list_file(tmp_path: Path) -> None:
    from setara.sim.demo import run_demo

    un = tmp_path / "consolidated.xml"
    un.write_text(_UN_XML)
    r = run_demo(tmp_path / "run", payments=200, seed=4, un_list=str(un))
    assert r.summary["lists"] == ["un-xml (2 entities)"]
    hits = r.summary["hits"]
    assert hits and {h["entity"].split()[0] for h in hits} <= {"900001", "900002"}
    assert "SYNTHETIC LIST" not in r.report.read_text()
