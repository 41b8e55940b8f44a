"""Statements from the entries read model (paged, by business day or date range, camt.053 pages),
no tipping-off of held payments, strict and bounded request bodies, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import itertools

from fastapi.testclient import TestClient
from lxml import etree

from setara.api import create_app
from setara.core.instructions import Instruction
from setara.core.network import Network
from setara.node import Node, open_store
from setara.node.statements import STATEMENT_CHUNK, account, json_chunks
from setara.node.usecases import close_day, fund, open_day
from setara.ports import ScreeningDecision
from tests.test_api import auth, is_problem, keys, make_db, pay

CAMT = "{urn:iso:std:iso:20022:tech:xsd:camt.053.001.08}"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    db = make_db(tmp_path)
    k = keys(db)
    with TestClient(create_app(db)) as client:
        yield client, k, db


def _pages(c: TestClient, h: dict[str, str], query: str) -> list[dict[str, Any]]:
    pages, after = [], 0
    while True:
        r = c.get(f"/v1/statements/IDR?{query}&after={after}", headers=h)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        after = pages[-1]["next_after"]
        if after is None:
            return pages


def _signed(e: dict[str, Any]) -> Decimal:
    return Decimal(e["amount"]) * (1 if e["direction"] == "credit" else -1)


def test_json_statement_pages_reconcile_and_end_at_the_balance(env: tuple[TestClient, dict[str, str], str]) -> None:
    c, k, _ = env
    h = auth(k["BANK_ID1"])
    r = c.post("/v1/payments/batch", json=[pay(f"J-{i}", amount="1.25") for i in range(23)], headers=h)
    assert r.status_code == 200
    pages = _pages(c, h, "limit=10")
    assert [len(p["entries"]) for p in pages] == [10, 10, 4]  # the opening posting, then 23 payments
    for prev, p in itertools.pairwise(pages):
        assert p["opening_balance"] == prev["closing_balance"]
    for p in pages:
        assert Decimal(p["opening_balance"]) + sum(map(_signed, p["entries"])) == Decimal(p["closing_balance"])
        assert all(e["balance_after"] for e in p["entries"])
    balance = next(a for a in c.get("/v1/accounts", headers=h).json() if a["currency"] == "IDR")["balance"]
    assert pages[-1]["closing_balance"] == balance
    assert [e["payment_id"] for e in pages[1]["entries"]][:2] == ["J-9", "J-10"]
    is_problem(c.get("/v1/statements/IDR?limit=1001", headers=h), 422, "limit")
    is_problem(c.get("/v1/statements/IDR?after=-1", headers=h), 422, "after")
    # the creditor sees the same payments as credits
    credits = _pages(c, auth(k["BANK_ID2"]), "limit=1000")[0]["entries"]
    assert sum(1 for e in credits if e["direction"] == "credit" and e["payment_id"].startswith("J-")) == 23


def test_business_day_date_range_and_camt053_pages(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    k = keys(db)
    with Node.open(db, write=True) as node:  # day 1: openings and one funding; day 2: another funding
        fund(node, "BANK_ID1", "IDR", 500_00, fund_id="F-day1")
        close_day(node)
        open_day(node)
        fund(node, "BANK_ID1", "IDR", 700_00, fund_id="F-day2")
    with TestClient(create_app(db)) as c:
        h = auth(k["BANK_ID1"])
        for i in range(5):
            assert c.post("/v1/payments", json=pay(f"D-{i}", amount="2.00"), headers=h).status_code == 201
        day1 = c.get("/v1/statements/IDR?business_day=1&limit=1000", headers=h).json()
        assert [e["payment_id"] for e in day1["entries"]] == ["open:BANK_ID1:IDR", "F-day1"]
        assert Decimal(day1["opening_balance"]) == 0
        day2 = c.get("/v1/statements/IDR?business_day=2&limit=1000", headers=h).json()
        assert [e["payment_id"] for e in day2["entries"]] == ["F-day2"] + [f"D-{i}" for i in range(5)]
        assert day2["opening_balance"] == day1["closing_balance"]
        today = datetime.now(UTC).date().isoformat()
        ranged = c.get(f"/v1/statements/IDR?from={today}&to={today}&limit=1000", headers=h).json()
        assert "open:BANK_ID1:IDR" not in {e["payment_id"] for e in ranged["entries"]}  # booked at T0
        assert {f"D-{i}" for i in range(5)} <= {e["payment_id"] for e in ranged["entries"]}
        is_problem(c.get(f"/v1/statements/IDR?from={today}", headers=h), 422, "to")
        is_problem(c.get("/v1/statements/IDR?from=2026-02-01&to=2026-01-01", headers=h), 422, "to")
        is_problem(c.get(f"/v1/statements/IDR?business_day=1&from={today}&to={today}", headers=h), 422)

        docs = []
        for page in (1, 2, 3):
            r = c.get(f"/v1/statements/IDR?format=camt053&business_day=2&page_size=2&page={page}", headers=h)
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml"), r.text
            docs.append(etree.fromstring(r.content))
        for n, doc in enumerate(docs, start=1):
            stmt = doc.find(f"{CAMT}BkToCstmrStmt/{CAMT}Stmt")
            assert stmt is not None
            assert stmt.findtext(f"{CAMT}StmtPgntn/{CAMT}PgNb") == str(n)
            assert stmt.findtext(f"{CAMT}StmtPgntn/{CAMT}LastPgInd") == ("true" if n == 3 else "false")
            assert len(stmt.findall(f"{CAMT}Ntry")) == 2
        is_problem(c.get("/v1/statements/IDR?format=camt053&business_day=2&page_size=2&page=4", headers=h), 404,
                   "page")
        is_problem(c.get("/v1/statements/IDR?format=camt053&page_size=1001", headers=h), 422, "page_size")
        # without a day or range: the business day in force (day 2)
        cur = etree.fromstring(c.get("/v1/statements/IDR?format=camt053", headers=h).content)
        assert len(cur.findall(f".//{CAMT}Ntry")) == 6


def test_statement_stops_reading_when_the_client_leaves(env: tuple[TestClient, dict[str, str], str]) -> None:
    from setara.api.routes.accounts import _stream

    c, k, db = env
    h = auth(k["BANK_ID1"])
    assert c.post("/v1/payments/batch", json=[pay(f"X-{i}", amount="1.00") for i in range(3 * STATEMENT_CHUNK)],
                  headers=h).status_code == 200
    store = open_store(db)
    read: list[int] = []

    def counted() -> Iterator[bytes]:
        for chunk in json_chunks(store, account(c.app.state.api.network, "BANK_ID1", "IDR"), limit=1000):  # type: ignore[attr-defined]
            read.append(len(chunk))
            yield chunk

    class Gone:
        async def is_disconnected(self) -> bool:
            return len(read) >= 2  # the client left after the first page of entries

    chunks = counted()
    first = next(chunks)

    api = c.app.state.api  # type: ignore[attr-defined]

    async def drain() -> list[bytes]:
        return [b async for b in _stream(Gone(), api, first, chunks)]  # type: ignore[arg-type]

    got = asyncio.run(drain())
    assert len(got) == 2 and len(read) == 2  # the head and one chunk; the other chunks were never read
    complete = c.get("/v1/statements/IDR?limit=1000", headers=h).json()
    assert len(complete["entries"]) == 3 * STATEMENT_CHUNK + 1


class _ReviewScreening:
    """Puts a payment to a named creditor on hold for review, as list screening does."""

    ref = "un-xml@7 creditor_name 0.912 un-xml:4242"

    def decide(self, ins: Instruction, network: Network) -> ScreeningDecision:
        if (ins.parties or {}).get("creditor_name") == "Listed Person":
            return ScreeningDecision("review", self.ref, ({
                "subject": "creditor_name", "decision": "review", "score": 0.912, "entity_id": "4242",
                "list": "un-xml", "matched_name": "LISTED PERSONNE", "list_versions": "un-xml@7",
                "explanation": "test"},))
        return ScreeningDecision("clear", "un-xml@7")


def test_members_are_not_tipped_off_compliance_sees_the_decision(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    k = keys(db)
    with TestClient(create_app(db, screening=_ReviewScreening())) as c:
        r = c.post("/v1/payments", json=pay("H-1", creditor_name="Listed Person"), headers=auth(k["BANK_ID1"]))
        assert r.status_code == 201 and r.json()["status"] == "HELD"
        assert r.json()["reason"] == "held for compliance review" and r.json()["reason_code"] is None
        for member in ("BANK_ID1", "BANK_ID2"):  # debtor and creditor
            for body in (c.get("/v1/payments/H-1", headers=auth(k[member])).json(),
                         c.get("/v1/payments?status=HELD", headers=auth(k[member])).json()["payments"][0]):
                assert body["status"] == "HELD" and body["reason"] == "held for compliance review"
                text = str(body)
                assert "un-xml" not in text and "4242" not in text and "0.912" not in text
        for role in ("compliance", "auditor", "operator"):
            assert "un-xml:4242" in c.get("/v1/payments/H-1", headers=auth(k[role])).json()["reason"]
        holds = c.get("/v1/admin/holds", headers=auth(k["auditor"])).json()["holds"]
        d = holds[0]["decision"]
        assert holds[0]["id"] == "H-1"
        assert d["lists"] == [{"source": "un-xml", "version": 7}] and d["field"] == "creditor_name"
        assert d["score"] == 0.912 and d["list"] == "un-xml" and d["entity_id"] == "4242"
        assert d["matched_name"] == "LISTED PERSONNE"
        is_problem(c.get("/v1/admin/holds", headers=auth(k["BANK_ID1"])), 403)
        r = c.post("/v1/admin/holds/H-1/reject", json={"note": "true match"}, headers=auth(k["compliance"]))
        assert r.status_code == 200 and r.json()["status"] == "REJECTED"
        mine = c.get("/v1/payments/H-1", headers=auth(k["BANK_ID1"])).json()
        assert mine["reason_code"] == "RR04" and "true match" not in mine["reason"]


def test_bodies_are_bounded_and_strict(env: tuple[TestClient, dict[str, str], str]) -> None:
    from setara.api.routes.iso20022 import XML_BYTES_MAX
    from setara.api.routes.payments import BATCH_BODY_BYTES_MAX, BODY_BYTES_MAX

    c, k, _ = env
    h = {**auth(k["BANK_ID1"]), "content-type": "application/json"}
    big = b'{"id": "' + b"x" * BODY_BYTES_MAX + b'"}'
    is_problem(c.post("/v1/payments", content=big, headers=h), 413, "body")

    def chunked(total: int) -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        sent = 0
        while sent < total:
            sent += 65536
            yield b" " * 65536

    is_problem(c.post("/v1/payments", content=chunked(BODY_BYTES_MAX + 65536), headers=h), 413, "body")
    is_problem(c.post("/v1/payments/batch", content=chunked(BATCH_BODY_BYTES_MAX + 65536), headers=h), 413, "body")
    is_problem(c.post("/v1/payments/batch", headers={**h, "content-length": str(BATCH_BODY_BYTES_MAX + 1)},
                      content=b"[]"), 413, "body")
    xml_h = {**auth(k["BANK_ID1"]), "content-type": "application/xml"}
    assert XML_BYTES_MAX == 1024 * 1024  # the parser's own limit: one documented value
    is_problem(c.post("/v1/iso20022", content=b"<a>" + b" " * XML_BYTES_MAX + b"</a>", headers=xml_h), 413, "body")
    # a repeated key could be read two ways: refused, naming it
    dup = (b'{"id":"dup-1","debtor":"BANK_ID1","creditor":"BANK_ID2","currency":"IDR",'
           b'"amount":"1.00","amount":"5000.00"}')
    body = is_problem(c.post("/v1/payments", content=dup, headers=h), 422, "amount")
    assert body["code"] == "FF01"
    body = is_problem(c.post("/v1/payments/batch", content=b"[" + dup + b"]", headers=h), 422, "amount")
    # amounts as JSON numbers have been through a float: refused
    num = b'{"id":"num-1","debtor":"BANK_ID1","creditor":"BANK_ID2","currency":"IDR","amount":1.999999999999999999}'
    is_problem(c.post("/v1/payments", content=num, headers=h), 422, "amount")
    r = c.post("/v1/payments/batch", content=b"[" + num + b"]", headers=h)
    assert r.json()["results"][0]["field"] == "[0].amount" and r.json()["results"][0]["status"] == "REJECTED"
    for pid in ("dup-1", "num-1"):
        is_problem(c.get(f"/v1/payments/{pid}", headers=auth(k["BANK_ID1"])), 404)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_exits_0_on_sigterm(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "setara.cli", "serve", "--db", db, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        err = proc.stderr.read() if proc.stderr else b""
        assert b"Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()



def test_a_schema_1_database_upgrades_and_its_statements_cover_every_block(tmp_path: Path) -> None:
    import sqlite3

    db = make_db(tmp_path)
    k = keys(db)
    with Node.open(db, write=True) as node:
        fund(node, "BANK_ID1", "IDR", 250_00, fund_id="F-old")
    con = sqlite3.connect(db)  # lay the database out as schema version 1 had it
    con.execute("DROP TABLE account_entries")
    con.execute("DROP TABLE list_indexes")
    con.execute("DROP TABLE screening_cache")
    con.execute("DELETE FROM meta WHERE key IN ('entries_upto', 'entries_day')")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    store = open_store(db)
    try:
        assert store.upgrade() == ["migrated to schema version 2", "migrated to schema version 3",
                                   "migrated to schema version 4"]
    finally:
        store.close()
    with TestClient(create_app(db)) as c:
        st = c.get("/v1/statements/IDR?limit=1000", headers=auth(k["BANK_ID1"])).json()
        assert [e["payment_id"] for e in st["entries"]] == ["open:BANK_ID1:IDR", "F-old"]
