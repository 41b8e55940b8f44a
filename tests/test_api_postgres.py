"""The API over PostgreSQL (`--db postgresql://…`): the same answers as over SQLite. Skips when no
server is reachable at SETARA_TEST_PG (default postgresql://127.0.0.1:5432/test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

pytest.importorskip("psycopg")
from fastapi.testclient import TestClient

from setara.api import create_app
from setara.api.keys import issue_key
from setara.core.network import example_toml, load_network
from setara.node import Node
from setara.store import open_store

PG_URL = os.environ.get("SETARA_TEST_PG", "postgresql://127.0.0.1:5432/test")


@pytest.fixture
def pg_db() -> Iterator[str]:
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except Exception as e:  # any failure to reach the server is a reason to skip
        pytest.skip(f"PostgreSQL not reachable: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}")
    schema = f"t_api_{uuid.uuid4().hex[:10]}"
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    Node.create(url, load_network(example_toml()), 1_700_000_000_000).close()
    yield url
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_api_on_postgres(pg_db: str) -> None:
    store = open_store(pg_db)
    k1 = issue_key(store, "member", "BANK_ID1")[1]
    k2 = issue_key(store, "member", "BANK_ID2")[1]
    k3 = issue_key(store, "member", "BANK_MY1")[1]
    op = issue_key(store, "operator", None)[1]
    store.close()
    with TestClient(create_app(pg_db)) as c:
        h1, h2, h3 = ({"Authorization": f"Bearer {k}"} for k in (k1, k2, k3))
        body = {"id": "PG-1", "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR", "amount": "12.50"}
        assert c.post("/v1/payments", json=body, headers=h1).status_code == 201
        assert c.post("/v1/payments", json=body, headers=h1).status_code == 200
        assert c.get("/v1/payments/PG-1", headers=h2).json()["status"] == "SETTLED"
        assert c.get("/v1/payments/PG-1", headers=h3).status_code == 404
        batch = [{**body, "id": f"PG-B{i}"} for i in range(20)]
        assert all(r["status"] == "SETTLED" for r in
                   c.post("/v1/payments/batch", json=batch, headers=h1).json()["results"])
        assert len(c.get("/v1/payments?limit=10", headers=h2).json()["payments"]) == 10
        accts = {a["currency"]: a for a in c.get("/v1/accounts", headers=h1).json()}
        assert accts["IDR"]["balance"] == "19999999737.50"
        assert c.get("/v1/payments", headers={"Authorization": "Bearer kx.y"}).status_code == 401
        ho = {"Authorization": f"Bearer {op}"}
        assert 'setara_payments{status="SETTLED"} 21' in c.get("/metrics", headers=ho).text
        assert c.get("/v1/admin/overview", headers=ho).json()["payments_by_status"] == {"SETTLED": 21}
        # statements from the entries read model, paged, and camt.053 of the business day
        pages, after = [], 0
        while after is not None:
            page = c.get(f"/v1/statements/IDR?limit=7&after={after}", headers=h1).json()
            pages.append(page)
            after = page["next_after"]
        entries = [e for p in pages for e in p["entries"]]
        assert [e["payment_id"] for e in entries][:2] == ["open:BANK_ID1:IDR", "PG-1"] and len(entries) == 22
        assert pages[-1]["closing_balance"] == "19999999737.50" and pages[1]["opening_balance"] == pages[0][
            "closing_balance"]
        camt = c.get("/v1/statements/IDR?format=camt053&page_size=5&page=5", headers=h1)
        assert camt.status_code == 200 and b"<LastPgInd>true</LastPgInd>" in camt.content, camt.text
