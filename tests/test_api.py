"""The HTTP API in process (FastAPI TestClient): auth and roles, visibility, validation, idempotency."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from setara.api import create_app
from setara.api.app import AUTH_CACHE_S
from setara.api.keys import issue_key, list_keys, revoke_key
from setara.core.network import example_toml, load_network
from setara.node import Node
from setara.store import open_store

T0 = 1_700_000_000_000


def make_db(tmp_path: Path) -> str:
    db = str(tmp_path / "s.db")
    Node.create(db, load_network(example_toml()), T0).close()
    return db


def keys(db: str) -> dict[str, str]:
    store = open_store(db)
    try:
        out = {m: issue_key(store, "member", m)[1] for m in ("BANK_ID1", "BANK_ID2", "BANK_MY1", "BANK_MY2")}
        for role in ("operator", "compliance", "auditor"):
            out[role] = issue_key(store, role, None)[1]
        return out
    finally:
        store.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    db = make_db(tmp_path)
    k = keys(db)
    with TestClient(create_app(db)) as client:
        yield client, k, db


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def pay(pid: str | None = None, debtor: str = "BANK_ID1", creditor: str = "BANK_ID2", amount: str = "1000.00",
        currency: str = "IDR", **extra: Any) -> dict[str, Any]:
    return {"id": pid or f"P-{uuid.uuid4().hex[:12]}", "debtor": debtor, "creditor": creditor,
            "currency": currency, "amount": amount, **extra}


def is_problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"]
    if field is not None:
        assert body.get("field") == field, body
    return body


def test_debtor_posts_creditor_reads_third_member_gets_404(env: tuple[TestClient, dict[str, str], str]) -> None:
    c, k, _ = env
    p = pay("P-1")
    r = c.post("/v1/payments", json=p, headers=auth(k["BANK_ID1"]))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "SETTLED" and r.json()["amount"] == "1000.00"
    r = c.get("/v1/payments/P-1", headers=auth(k["BANK_ID2"]))
    assert r.status_code == 200 and r.json()["debtor"] == "BANK_ID1" and r.json()["status"] == "SETTLED"
    r = c.get("/v1/payments/P-1", headers={"X-API-Key": k["BANK_ID1"]})
    assert r.status_code == 200
    third = is_problem(c.get("/v1/payments/P-1", headers=auth(k["BANK_MY1"])), 404)
    unknown = is_problem(c.get("/v1/payments/NOPE", headers=auth(k["BANK_MY1"])), 404)
    assert third["title"] == unknown["title"]
    assert c.get("/v1/payments/P-1", headers=auth(k["operator"])).status_code == 200
    # Lists: own only.
    assert [x["id"] for x in c.get("/v1/payments", headers=auth(k["BANK_ID2"])).json()["payments"]] == ["P-1"]
    assert c.get("/v1/payments", headers=auth(k["BANK_MY1"])).json()["payments"] == []


def test_missing_wrong_revoked_key_401_and_roles_403(env: tuple[TestClient, dict[str, str], str]) -> None:
    c, k, db = env
    is_problem(c.get("/v1/payments"), 401)
    is_problem(c.get("/v1/payments", headers=auth("kdeadbeef00.nope")), 401)
    is_problem(c.get("/v1/payments", headers=auth("garbage")), 401)
    is_problem(c.get("/v1/payments", headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401)
    for path in ("/v1/admin/queue", "/v1/admin/members", "/v1/admin/holds", "/v1/admin/overview", "/metrics"):
        is_problem(c.get(path, headers=auth(k["BANK_ID1"])), 403)
        assert c.get(path, headers=auth(k["operator"])).status_code == 200, path
        assert c.get(path, headers=auth(k["auditor"])).status_code == 200, path
    is_problem(c.post("/v1/admin/cycles/IDR/close", headers=auth(k["BANK_ID1"])), 403)
    is_problem(c.post("/v1/admin/cycles/IDR/close", headers=auth(k["auditor"])), 403)
    is_problem(c.post("/v1/admin/holds/X/release", headers=auth(k["operator"])), 403)
    is_problem(c.post("/v1/payments", json=pay(), headers=auth(k["operator"])), 403)
    is_problem(c.post("/v1/payments", json=pay(), headers=auth(k["auditor"])), 403)
    # Revocation takes effect at once.
    store = open_store(db)
    kid = k["BANK_ID2"].split(".")[0]
    assert revoke_key(store, kid) is True
    assert next(x for x in list_keys(store) if x["key_id"] == kid)["revoked_ms"] is not None
    store.close()
    is_problem(c.get("/v1/accounts", headers=auth(k["BANK_ID2"])), 401)
    # A key in use is refused within AUTH_CACHE_S of its revocation.
    assert c.get("/v1/accounts", headers=auth(k["BANK_MY1"])).status_code == 200
    store = open_store(db)
    revoke_key(store, k["BANK_MY1"].split(".")[0])
    store.close()
    time.sleep(AUTH_CACHE_S + 0.05)
    is_problem(c.get("/v1/accounts", headers=auth(k["BANK_MY1"])), 401)


def test_only_the_debtor_can_debit(env: tuple[TestClient, dict[str, str], str]) -> None:
    c, k, _ = env
    body = is_problem(c.post("/v1/payments", json=pay(debtor="BANK_ID2", creditor="BANK_ID1"),
                             headers=auth(k["BANK_ID1"])), 403, "debtor")
    assert "BANK_ID2" in body["detail"]
    is_problem(c.post("/v1/payments/batch", json=[pay(), pay(debtor="BANK_MY1")], headers=auth(k["BANK_ID1"])),
               403, "[1].debtor")


def test_malformed_json_and_bad_amount_name_the_field(env: tuple[TestClient, dict[str, str], str]) -> None:
    c, k, _ = env
    h = {**auth(k["BANK_ID1"]), "Content-Type": "application/json"}
    is_problem(c.post("/v1/payments", content=b'{"id": "x",', headers=h), 400, "body")
    is_problem(c.post("/v1/payments", content=b"[1, 2]", headers=h), 422, "body")
    b = is_problem(c.post("/v1/payments", json=pay(amount="12.345"), headers=h), 422, "amount")
    assert b["code"] == "AM12"
    is_problem(c.post("/v1/payments", json=pay(amount="-5"), headers=h), 422, "amount")
    is_problem(c.post("/v1/payments", json=pay(amount="abc"), headers=h), 422, "amount")
    p = pay()
    del p["amount"]
    is_problem(c.post("/v1/payments", json=p, headers=h), 422, "amount")
    is_problem(c.post("/v1/payments", json=pay(currency="XXX"), headers=h), 422, "currency")
    is_problem(c.post("/v1/payments", json=pay(creditor="NOBODY"), headers=h), 422, "creditor")
    is_problem(c.post("/v1/payments", json=pay(colour="red"), headers=h), 422, "colour")
    is_problem(c.post("/v1/payments", json=pay(pid="has space"), headers=h), 422, "id")
    is_problem(c.post("/v1/payments", json=pay(creditor="BANK_ID1"), headers=h), 422, "creditor")
    is_problem(c.get("/v1/payments?limit=5000", headers=h), 422, "limit")
    is_problem(c.get("/v1/payments?status=NOPE", headers=h), 422, "status")


def test_repost_is_idempotent_and_dupl_conflicts(env: tuple[TestClient, dict[str, str], str]) -> None:
    c, k, _db = env
    h = auth(k["BANK_ID1"])
    p = pay("P-IDEM", amount="5.00")
    r1 = c.post("/v1/payments", json=p, headers=h)
    r2 = c.post("/v1/payments", json=p, headers=h)
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r1.json()["status"] == r2.json()["status"] == "SETTLED"
    is_problem(c.post("/v1/payments", json={**p, "amount": "6.00"}, headers=h), 409, "id")
    accts = {(a["member"], a["currency"]): a for a in c.get("/v1/accounts", headers=h).json()}
    assert set(accts) == {("BANK_ID1", ccy) for ccy in ("IDR", "MYR", "THB", "PHP")}
    assert accts[("BANK_ID1", "IDR")]["balance"] == "19999999995.00"
    op = c.get("/v1/accounts", headers=auth(k["operator"])).json()
    assert {a["member"] for a in op} > {"BANK_ID1", "BANK_ID2"}


def test_queue_cancel_and_batch(env: tuple[TestClient, dict[str, str], str]) -> None:
    c, k, _ = env
    h = auth(k["BANK_MY1"])
    # MYR: BANK_MY1 holds 6,000,000 plus a 1,000,000 credit line; this one must queue.
    r = c.post("/v1/payments", json=pay("BIG", debtor="BANK_MY1", creditor="BANK_MY2", currency="MYR",
                                        amount="9000000.00"), headers=h)
    assert r.status_code == 201 and r.json()["status"] == "QUEUED"
    q = c.get("/v1/admin/queue", headers=auth(k["operator"])).json()
    assert q["count"] == 1 and q["by_currency"] == [{"currency": "MYR", "count": 1, "value": "9000000.00"}]
    assert [p["id"] for p in c.get("/v1/payments?status=QUEUED", headers=h).json()["payments"]] == ["BIG"]
    is_problem(c.post("/v1/payments/BIG/cancel", headers=auth(k["BANK_MY2"])), 403)  # creditor
    is_problem(c.post("/v1/payments/BIG/cancel", headers=auth(k["BANK_ID1"])), 404)  # third member
    r = c.post("/v1/payments/BIG/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
    is_problem(c.post("/v1/payments/BIG/cancel", headers=h), 409)
    assert c.get("/v1/payments/BIG", headers=h).json()["status"] == "CANCELLED"
    # Batch: results in order; invalid items answered, not recorded.
    items = [pay(f"B-{i}", debtor="BANK_MY1", creditor="BANK_MY2", currency="MYR", amount="1.00") for i in range(50)]
    items.insert(3, {**items[0], "id": "B-bad", "amount": "1.001"})
    r = c.post("/v1/payments/batch", json=items, headers=h)
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == 51 and res[3]["status"] == "REJECTED" and res[3]["field"] == "[3].amount"
    assert all(x["status"] == "SETTLED" for i, x in enumerate(res) if i != 3)
    is_problem(c.get("/v1/payments/B-bad", headers=h), 404)
    # Pagination by id.
    page1 = c.get("/v1/payments?limit=20", headers=h).json()
    page2 = c.get(f"/v1/payments?limit=20&after={page1['next_after']}", headers=h).json()
    ids = [p["id"] for p in page1["payments"] + page2["payments"]]
    assert len(ids) == len(set(ids)) == 40 and ids == sorted(ids)


def test_statements_fx_members_health_metrics_docs(env: tuple[TestClient, dict[str, str], str]) -> None:
    c, k, _ = env
    h = auth(k["BANK_ID1"])
    c.post("/v1/payments", json=pay("S-1", amount="10.00"), headers=h)
    st = c.get("/v1/statements/IDR", headers=h).json()
    assert st["member"] == "BANK_ID1" and any(e["payment_id"] == "S-1" for e in st["entries"])
    x = c.get("/v1/statements/IDR?format=camt053", headers=h)
    assert x.status_code == 200 and b"camt.053" in x.content
    is_problem(c.get("/v1/statements/XXX", headers=h), 404, "currency")
    is_problem(c.get("/v1/statements/IDR", headers=auth(k["operator"])), 422, "member")
    assert c.get("/v1/statements/IDR?member=BANK_ID2", headers=auth(k["auditor"])).json()["member"] == "BANK_ID2"
    assert c.get("/v1/fx/rates", headers=h).json() == []
    members = c.get("/v1/admin/members", headers=auth(k["compliance"])).json()
    assert "BANK_ID1" in {m["id"] for m in members}
    assert c.get("/healthz").json()["status"] == "ok"
    m = c.get("/metrics", headers=auth(k["operator"])).text
    assert 'setara_payments{status="SETTLED"} 1' in m
    assert 'setara_queue_length{currency="IDR"} 0' in m
    assert "setara_settlement_latency_seconds_bucket{le=\"+Inf\"} 1" in m
    assert "setara_screening_holds 0" in m
    assert c.get("/openapi.json").json()["paths"]["/v1/payments"]["post"]
    assert c.get("/docs").status_code == 200
    ov = c.get("/v1/admin/overview", headers=auth(k["operator"])).json()
    assert ov["payments_by_status"] == {"SETTLED": 1} and ov["liquidity"][0]["currency"] == "IDR"
    assert ov["cycles"] == []
    r = c.post("/v1/admin/cycles/IDR/close", headers=auth(k["operator"]))
    is_problem(r, 422, "currency")  # IDR settles gross (RTGS): no cycles to close


def test_dashboard_html(env: tuple[TestClient, dict[str, str], str]) -> None:
    c, k, _ = env
    for who in ("operator", "compliance", "auditor"):
        r = c.get("/", headers=auth(k[who]))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "<svg" in r.text or "<canvas" in r.text or "svg" in r.text
    assert c.get("/").status_code == 200  # the page itself asks for a key
    is_problem(c.get("/", headers=auth(k["BANK_ID1"])), 403)
    is_problem(c.get("/", headers=auth("kbad.bad")), 401)


def pacs008(uetr: str, debtor_bic: str = "NUSAIDJAXXX", creditor_bic: str = "JAWAIDJAXXX",
            amount: str = "2500.00") -> bytes:
    agent = "<{tag}><FinInstnId><BICFI>{bic}</BICFI></FinInstnId></{tag}>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf>
<GrpHdr><MsgId>M-{uetr[:8]}</MsgId><CreDtTm>2026-01-01T10:00:00+00:00</CreDtTm><NbOfTxs>1</NbOfTxs>
<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr>
<CdtTrfTxInf><PmtId><InstrId>I-{uetr[:8]}</InstrId><EndToEndId>E-{uetr[:8]}</EndToEndId><UETR>{uetr}</UETR></PmtId>
<IntrBkSttlmAmt Ccy="IDR">{amount}</IntrBkSttlmAmt><IntrBkSttlmDt>2026-01-01</IntrBkSttlmDt><ChrgBr>SHAR</ChrgBr>
{agent.format(tag="InstgAgt", bic=debtor_bic)}{agent.format(tag="InstdAgt", bic=creditor_bic)}
<Dbtr><Nm>Kopi Nusantara PT</Nm></Dbtr>{agent.format(tag="DbtrAgt", bic=debtor_bic)}
{agent.format(tag="CdtrAgt", bic=creditor_bic)}<Cdtr><Nm>Jawa Textiles PT</Nm></Cdtr>
</CdtTrfTxInf></FIToFICstmrCdtTrf></Document>""".encode()


def test_iso20022_over_http(env: tuple[TestClient, dict[str, str], str]) -> None:
    c, k, _ = env
    h = {**auth(k["BANK_ID1"]), "Content-Type": "application/xml"}
    uetr = str(uuid.uuid4())
    r = c.post("/v1/iso20022", content=pacs008(uetr), headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml"), r.text
    assert b"pacs.002" in r.content and b"ACSC" in r.content, r.text
    p = c.get(f"/v1/payments/{uetr}", headers=auth(k["BANK_ID2"])).json()
    assert (p["status"], p["amount"], p["uetr"]) == ("SETTLED", "2500.00", uetr)
    # Another member's debit in XML is refused as in JSON; garbage gets a pacs.002 rejection.
    is_problem(c.post("/v1/iso20022", content=pacs008(str(uuid.uuid4()), "JAWAIDJAXXX", "NUSAIDJAXXX"),
                      headers=h), 403, "DbtrAgt")
    bad = c.post("/v1/iso20022", content=b"<not-iso/>", headers=h)
    assert bad.status_code == 200 and b"RJCT" in bad.content
    is_problem(c.post("/v1/iso20022", content=b"", headers=h), 422, "body")
    is_problem(c.post("/v1/iso20022", content=pacs008(str(uuid.uuid4())), headers=auth(k["operator"])), 403)


def test_cycle_close_and_netting_in_overview(tmp_path: Path) -> None:
    t = example_toml()
    i = t.index('code = "PHP"')
    j = t.index('settlement = "rtgs"', i)
    db = str(tmp_path / "c.db")
    Node.create(db, load_network(t[:j] + 'settlement = "cycles"' + t[j + len('settlement = "rtgs"'):]), T0).close()
    k = keys(db)
    with TestClient(create_app(db)) as c:
        op = auth(k["operator"])
        for pid, dr, cr, amt in (("C1", "BANK_ID1", "BANK_ID2", "700.00"), ("C2", "BANK_ID2", "BANK_ID1", "500.00")):
            r = c.post("/v1/payments", json=pay(pid, debtor=dr, creditor=cr, currency="PHP", amount=amt),
                       headers=auth(k[dr]))
            assert r.status_code == 201 and r.json()["status"] == "QUEUED", r.text
        r = c.post("/v1/admin/cycles/PHP/close", headers=op)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["statuses"] == {"SETTLED": 2}
        assert [n["kind"] for n in body["notices"]] == ["cycle_closed"]
        is_problem(c.post("/v1/admin/cycles/IDR/close", headers=op), 422, "currency")  # an RTGS currency
        is_problem(c.post("/v1/admin/cycles/XXX/close", headers=op), 404, "currency")
        cycles = c.get("/v1/admin/overview", headers=op).json()["cycles"]
        assert len(cycles) == 1 and cycles[0]["currency"] == "PHP"
        assert abs(cycles[0]["efficiency"] - (1 - 200 / 1200)) < 1e-6
        assert c.get("/v1/payments/C1", headers=auth(k["BANK_ID2"])).json()["status"] == "SETTLED"


@pytest.mark.slow
def test_sanctions_screening_holds_and_compliance_review(tmp_path: Path) -> None:
    """With a list loaded, the server screens as `setara submit` does; compliance reviews over HTTP."""
    un = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sanctions" / "un" / "UN_consolidated.xml"
    if not un.is_file():
        pytest.skip(f"{un} is absent (../shared/data is not beside the repo)")
    from tests.conftest import run_cli

    db = make_db(tmp_path)
    run_cli("lists", "import", "--source", "un-xml", str(un), "--db", db)
    k = keys(db)
    with TestClient(create_app(db)) as c:
        assert c.get("/healthz").json()["screening_lists_loaded"] is True
        h = auth(k["BANK_ID1"])
        blocked = c.post("/v1/payments", json=pay("s1", debtor_name="PT Sinar Jaya", creditor_name="Mutassim Qadhafi"),
                         headers=h).json()
        assert blocked["status"] == "REJECTED" and blocked["reason_code"] == "RR04"
        held = c.post("/v1/payments", json=pay("s2", debtor_name="PT Sinar Jaya", creditor_name="Mutasim Qadafi"),
                      headers=h).json()
        assert held["status"] == "HELD"
        holds = c.get("/v1/admin/holds", headers=auth(k["auditor"])).json()
        assert [x["id"] for x in holds["holds"]] == ["s2"] and holds["holds"][0]["parties"]["creditor_name"]
        is_problem(c.post("/v1/admin/holds/s2/release", json={"note": "x"}, headers=auth(k["auditor"])), 403)
        is_problem(c.post("/v1/admin/holds/s2/release", json={"note": 5}, headers=auth(k["compliance"])), 422, "note")
        is_problem(c.post("/v1/admin/holds/s2/release", headers=auth(k["compliance"])), 422, "note")
        is_problem(c.post("/v1/admin/holds/nope/release", json={"note": "n"}, headers=auth(k["compliance"])), 404)
        r = c.post("/v1/admin/holds/s2/release", json={"note": "other person"}, headers=auth(k["compliance"]))
        assert r.status_code == 200 and r.json()["status"] == "SETTLED", r.text
        assert r.json()["officer"] == k["compliance"].split(".")[0]
        is_problem(c.post("/v1/admin/holds/s2/reject", json={"note": "n"}, headers=auth(k["compliance"])), 409, "id")
        assert 'setara_screening_holds 0' in c.get("/metrics", headers=auth(k["operator"])).text
