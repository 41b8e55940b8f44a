"""What is particular to the PostgreSQL store: URLs and schemas, the SQLite-dialect `execute`,
session settings, the writer lock across schemas, streaming reads while writing, concurrent
projectors. Behaviour shared with SQLite is in test_store_backends.py."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator

import orjson
import pytest

from setara.core.network import Network, example_toml, load_network
from setara.node import Node
from setara.node.verify import verify_store
from setara.store import StoreError, open_store
from setara.store.postgres import PostgresStore, split_url, translate_sql

PG_URL = os.environ.get("SETARA_TEST_PG", "postgresql://127.0.0.1:5432/test")
T0 = 1_750_000_000_000
_reason: list[str | None] = []


def _unreachable() -> str | None:
    if not _reason:
        import psycopg

        try:
            psycopg.connect(PG_URL, connect_timeout=3).close()
            _reason.append(None)
        except Exception as e:  # any failure to reach the server is a reason to skip
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            _reason.append(f"PostgreSQL not reachable at {PG_URL.split('//')[-1].split('/')[0]}: {text}")
    return _reason[0]


@pytest.fixture
def pg_url() -> Iterator[Callable[..., str]]:
    reason = _unreachable()
    if reason is not None:
        pytest.skip(reason)
    schemas: list[str] = []

    def make(extra: str = "") -> str:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        schemas.append(schema)
        return f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}{extra}"

    yield make
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as c:
        for s in schemas:
            c.execute(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(example_toml())


def pay(pid: str, amount: str = "10.00") -> bytes:
    return orjson.dumps({"id": pid, "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR",
                         "amount": amount})


def submit(node: Node, lines: list[bytes], batch: int = 2000) -> list[str]:
    return [a.text() for acks in node.submit_lines(lines, batch_lines=batch, clock=lambda: T0 + 5) for a in acks]


# ====================================================================== no server needed


def test_translate_placeholders_outside_literals() -> None:
    assert translate_sql("SELECT a FROM t WHERE b = ? AND c > ?") == "SELECT a FROM t WHERE b = %s AND c > %s"
    assert translate_sql("SELECT '?', 'it''s ?', \"we?ird\" FROM t WHERE x = ?") == \
        "SELECT '?', 'it''s ?', \"we?ird\" FROM t WHERE x = %s"
    assert translate_sql("SELECT 5 % 2, 'a%b' -- why?\n, ? /* really? */") == \
        "SELECT 5 %% 2, 'a%%b' -- why?\n, %s /* really? */"


def test_translate_insert_or() -> None:
    assert translate_sql("INSERT OR IGNORE INTO api_keys (key_id, key_hash) VALUES (?, ?)") == \
        "INSERT INTO api_keys (key_id, key_hash) VALUES (%s, %s) ON CONFLICT DO NOTHING"
    assert translate_sql("insert or replace into meta VALUES (?, ?)") == \
        "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    assert translate_sql("INSERT OR REPLACE INTO balances (member, currency, balance_minor) VALUES (?, ?, ?)"
                         " RETURNING member") == \
        ("INSERT INTO balances (member, currency, balance_minor) VALUES (%s, %s, %s) ON CONFLICT (member, currency)"
         " DO UPDATE SET balance_minor = EXCLUDED.balance_minor RETURNING member")
    with pytest.raises(StoreError, match="INSERT OR REPLACE into elsewhere"):
        translate_sql("INSERT OR REPLACE INTO elsewhere VALUES (?)")


def test_split_url() -> None:
    assert split_url("postgresql://u@h:5/db?schema=net_1&sslmode=disable") == \
        ("postgresql://u@h:5/db?sslmode=disable", "net_1")
    assert split_url("postgresql://h/db") == ("postgresql://h/db", None)
    with pytest.raises(StoreError, match="invalid schema name"):
        split_url("postgresql://h/db?schema=x;drop")


# ====================================================================== against the server


def test_schema_parameter_isolates_networks_and_their_writer_locks(pg_url: Callable[..., str],
                                                                   net: Network) -> None:
    a_url, b_url = pg_url(), pg_url()
    with Node.create(a_url, net, T0) as a, Node.create(b_url, net, T0) as b:  # two writers, two schemas
        assert submit(a, [pay("only-in-a")]) == ["only-in-a SETTLED"]
        assert submit(b, [pay("only-in-b")]) == ["only-in-b SETTLED"]
        a.catch_up()
        b.catch_up()
        assert [p.id for p in a.store.iter_payments()] == ["only-in-a"]
        assert [p.id for p in b.store.iter_payments()] == ["only-in-b"]
        assert isinstance(a.store, PostgresStore) and isinstance(b.store, PostgresStore)
        assert a.store.lock_key != b.store.lock_key
        with pytest.raises(StoreError, match=r"another setara process is writing .*setara writer pid"):
            Node.open(a_url, write=True, lock_timeout_s=0.2)


def test_execute_speaks_sqlite(pg_url: Callable[..., str], net: Network) -> None:
    with Node.create(pg_url(), net, T0) as node:
        s = node.store
        assert s._query("SELECT '?', 'a%b', ?, ? || 'x'", (5, "y")) == [("?", "a%b", 5, "yx")]
        s._query("INSERT INTO api_keys (key_id, key_hash, role, member, created_ms) VALUES (?, ?, ?, ?, ?)",
                  ("k1", "h1", "member", "BANK_ID1", 1))
        s._query("INSERT OR IGNORE INTO api_keys (key_id, key_hash, role, created_ms) VALUES (?, ?, ?, ?)",
                  ("k1", "other", "operator", 2))
        s._query("INSERT OR REPLACE INTO api_keys (key_id, key_hash, role, created_ms) VALUES (?, ?, ?, ?)",
                  ("k2", "h2", "auditor", 3))
        s._query("INSERT OR REPLACE INTO api_keys (key_id, key_hash, role, created_ms) VALUES (?, ?, ?, ?)",
                  ("k2", "h2b", "auditor", 4))
        assert s._query("SELECT key_id, key_hash, created_ms FROM api_keys ORDER BY key_id") == \
            [("k1", "h1", 1), ("k2", "h2b", 4)]
        for subject in ("first", "second"):  # n numbered as SQLite numbers an INTEGER PRIMARY KEY
            s._query("INSERT INTO screening_audit (time_ms, subject, decision, score, explanation)"
                      " VALUES (?, ?, ?, ?, ?)", (1, subject, "clear", 0.25, "-"))
        assert s._query("SELECT n, subject, score FROM screening_audit ORDER BY n") == \
            [(1, "first", 0.25), (2, "second", 0.25)]
        rows = s._query("SELECT SUM(balance_minor), COUNT(*) FROM balances WHERE currency = ?", ("IDR",))
        assert type(rows[0][0]) is int and type(rows[0][1]) is int  # not Decimal


def test_synchronous_commit_is_never_off(pg_url: Callable[..., str]) -> None:
    store = open_store(pg_url("&options=-c%20synchronous_commit%3Doff"), create=True)
    try:
        assert store._query("SHOW synchronous_commit") == [("on",)]
    finally:
        store.close()


def test_password_is_not_repeated_in_messages(pg_url: Callable[..., str]) -> None:
    url = pg_url().replace("postgresql://", "postgresql://nobody:s3cret@", 1)
    with pytest.raises(StoreError) as e:
        PostgresStore(url)
    assert "s3cret" not in str(e.value)


def test_reads_stream_while_the_writer_appends(pg_url: Callable[..., str], net: Network) -> None:
    url = pg_url()
    with Node.create(url, net, T0) as node:
        submit(node, [pay(f"p{i:05d}") for i in range(9000)], batch=500)
        node.catch_up()
        seen = 0
        for i, _row in enumerate(node.store.iter_payments()):  # more rows than one fetch
            seen += 1
            if i == 10:  # a durable write in the middle of a streamed read
                assert submit(node, [pay("during")]) == ["during SETTLED"]
                other = open_store(url)
                try:
                    assert other.head()[0] == node.block_seq  # committed, not stuck in a transaction
                finally:
                    other.close()
        assert seen == 9000  # the read is a consistent snapshot from before the write
        blocks = 0
        for b in node.store.iter_blocks():
            blocks += 1
            if b.seq == 3:
                submit(node, [pay("during2")])
        assert blocks == node.block_seq  # the log is append-only: later blocks show up
        assert verify_store(node.store).payments == 9002


def test_concurrent_projectors_apply_each_block_once(pg_url: Callable[..., str], net: Network) -> None:
    from setara.node.projection import project

    url = pg_url()
    with Node.create(url, net, T0) as node:
        submit(node, [pay(f"c{i}") for i in range(3000)], batch=100)
    stores = [open_store(url) for _ in range(3)]
    errors: list[BaseException] = []

    def run(s: object) -> None:
        try:
            project(s)  # type: ignore[arg-type]
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        assert stores[0]._query("SELECT COUNT(*), COUNT(DISTINCT id) FROM payments") == [(3000, 3000)]
        assert verify_store(stores[0]).payments == 3000
    finally:
        for s in stores:
            s.close()
