"""Screening in the payment flow, through the CLI: blocks, holds, review, freeze, list updates."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import requires_shared, run_cli


@pytest.fixture
def screened_db(tmp_path: Path) -> Path:
    un = requires_shared("sanctions", "un", "UN_consolidated.xml")
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = tmp_path / "s.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    run_cli("lists", "import", "--source", "un-xml", str(un), "--db", str(db))
    return db


def submit(db: Path, tmp_path: Path, *rows: dict[str, str]) -> list[str]:
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return run_cli("submit", str(f), "--db", str(db)).stdout.decode().splitlines()


def pay(pid: str, **parties: str) -> dict[str, str]:
    return {"id": pid, "debtor": "BANK_ID1", "creditor": "BANK_MY1", "currency": "IDR", "amount": "100.00",
            "debtor_name": "PT Sinar Jaya", **parties}


def test_listed_name_is_blocked_near_match_held_clean_settles(screened_db: Path, tmp_path: Path) -> None:
    acks = submit(screened_db, tmp_path, pay("s1", creditor_name="Mutassim Qadhafi"),
                  pay("s2", creditor_name="Mutasim Qadafi"), pay("s3", creditor_name="Budi Santoso"))
    assert acks[0].startswith("s1 REJECTED RR04") and "690775" in acks[0]
    assert acks[1].startswith("s2 HELD")
    assert acks[2] == "s3 SETTLED"
    held = [json.loads(x) for x in run_cli("holds", "list", "--db", str(screened_db)).stdout.splitlines()]
    assert [h["id"] for h in held] == ["s2"] and held[0]["earmarked"] is True
    out = run_cli("holds", "reject", "s2", "--officer", "ana", "--note", "true match", "--db", str(screened_db))
    assert out.stdout.decode().strip() == "s2 REJECTED"
    run_cli("verify", "--db", str(screened_db))


def test_comprehensive_country_measures_block_unlisted_parties(screened_db: Path, tmp_path: Path) -> None:
    acks = submit(screened_db, tmp_path, pay("k1", creditor_name="Acme Trading", creditor_country="KP"),
                  pay("k2", creditor_name="Acme Trading", creditor_address="Pyongyang"))
    assert all(" REJECTED RR04 " in a for a in acks), acks


def test_hold_release_settles(screened_db: Path, tmp_path: Path) -> None:
    submit(screened_db, tmp_path, pay("h1", creditor_name="Mutasim Qadafi"))
    out = run_cli("holds", "release", "h1", "--officer", "ana", "--note", "other person", "--db", str(screened_db))
    assert out.stdout.decode().strip() == "h1 SETTLED"


def test_no_list_warns(tmp_path: Path) -> None:
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = tmp_path / "s.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    proc = run_cli("network", "show", "--db", str(db))
    assert b"no sanctions list is loaded" not in proc.stderr  # it screens nothing: no warning
    out = run_cli("screen", "-", "--db", str(db), input=b"Some Name\n")
    assert b"no sanctions list is loaded" in out.stderr
    assert json.loads(out.stdout)["hit"] is False


def test_designated_member_is_frozen_and_queued_payments_held(tmp_path: Path) -> None:
    un = requires_shared("sanctions", "un", "UN_consolidated.xml")
    text = run_cli("network", "example").stdout.decode()
    # A member whose legal name is a listed entity's: the import must freeze it.
    text = text.replace('name = "Luzon Trade Bank"', 'name = "Mutassim Qadhafi"')
    net = tmp_path / "network.toml"
    net.write_text(text)
    db = tmp_path / "s.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"id": "q1", "debtor": "BANK_PH1", "creditor": "BANK_ID1", "currency": "MYR",
                             "amount": "900000.00"}) + "\n")
    assert run_cli("submit", str(f), "--db", str(db)).stdout.decode().strip() == "q1 QUEUED"
    proc = run_cli("lists", "import", "--source", "un-xml", str(un), "--db", str(db))
    assert b"1 member(s) frozen" in proc.stderr
    held = [json.loads(x)["id"] for x in run_cli("holds", "list", "--db", str(db)).stdout.splitlines()]
    assert held == ["q1"]
    f.write_text(json.dumps({"id": "q2", "debtor": "BANK_ID1", "creditor": "BANK_PH1", "currency": "IDR",
                             "amount": "1.00"}) + "\n")
    assert run_cli("submit", str(f), "--db", str(db)).stdout.decode().startswith("q2 REJECTED RR04")
    # A held payment of a frozen member cannot be released.
    refused = run_cli("holds", "release", "q1", "--officer", "ana", "--note", "x", "--db", str(db), check=False)
    assert refused.returncode == 2 and refused.stderr.count(b"\n") == 1
    run_cli("verify", "--db", str(db))


@pytest.fixture
def list_server() -> Iterator[str]:
    root = requires_shared("sanctions")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_lists_update_fetches_from_a_url(tmp_path: Path, list_server: str) -> None:
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = tmp_path / "s.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    out = run_cli("lists", "update", "--source", "un-xml", "--url", f"{list_server}/un/UN_consolidated.xml",
                  "--db", str(db))
    rec = json.loads(out.stdout)
    assert rec["source"] == "un-xml" and rec["entities"] > 500
    status = [json.loads(x) for x in run_cli("lists", "status", "--db", str(db)).stdout.splitlines()]
    assert status[0]["sha256"] == rec["sha256"]


def test_a_designated_member_is_frozen_when_it_joins(screened_db: Path, tmp_path: Path) -> None:
    change = tmp_path / "change.toml"
    change.write_text('[[add_member]]\nid = "BANK_X"\nname = "Mutassim Qadhafi"\nbic = "XBNKSGSG"\n'
                      'country = "SG"\nopening = { IDR = "10.00" }\n')
    proc = run_cli("network", "apply", str(change), "--db", str(screened_db))
    assert b"1 frozen" in proc.stderr
    acks = submit(screened_db, tmp_path, {"id": "f1", "debtor": "BANK_ID1", "creditor": "BANK_X",
                                          "currency": "IDR", "amount": "1.00"})
    assert acks[0].startswith("f1 REJECTED RR04")


def test_country_measures_apply_without_any_list(tmp_path: Path) -> None:
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = tmp_path / "s.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    acks = submit(db, tmp_path, pay("k1", creditor_name="Acme Trading", creditor_country="KP"),
                  pay("k2", creditor_name="Acme Trading"))
    assert acks[0].startswith("k1 REJECTED RR04") and acks[1] == "k2 SETTLED"
