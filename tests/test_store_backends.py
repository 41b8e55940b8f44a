"""Store- and service-level behaviour, the same on both backends.

Every test runs on SQLite (a file in tmp_path) and on PostgreSQL (`SETARA_TEST_PG`, default
postgresql://127.0.0.1:5432/test, one fresh schema per test, dropped afterwards). Where no
PostgreSQL server is reachable the PostgreSQL cases skip and say why.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from setara.core.network import Network, example_toml, load_network
from setara.node import Node
from setara.node.verify import VerificationError, verify_store
from setara.store import Block, Projection, StoreError, copy_log, open_store
from setara.store import base as store_base
from setara.store.postgres import split_url

PG_URL = os.environ.get("SETARA_TEST_PG", "postgresql://127.0.0.1:5432/test")
T0 = 1_750_000_000_000

_pg_state: dict[str, str | None] = {}


def pg_unreachable() -> str | None:
    """None when the test server answers, else the reason to skip (checked once per session)."""
    if "reason" not in _pg_state:
        import psycopg

        try:
            psycopg.connect(PG_URL, connect_timeout=3).close()
            _pg_state["reason"] = None
        except Exception as e:  # any failure to reach the server is a reason to skip
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            where = PG_URL.split("@")[-1].split("//")[-1].split("/")[0]
            _pg_state["reason"] = f"PostgreSQL not reachable at {where}: {first}"
    return _pg_state["reason"]


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def make_url(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """make_url('sqlite'|'pg') -> a fresh, empty store URL (dropped at teardown)."""
    schemas: list[str] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return str(tmp_path / f"s_{uuid.uuid4().hex[:8]}.db")
        reason = pg_unreachable()
        if reason is not None:
            pytest.skip(reason)
        schema = f"t_{uuid.uuid4().hex[:12]}"
        schemas.append(schema)
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}schema={schema}"

    yield make
    for s in schemas:
        _drop_schema(s)


@pytest.fixture(params=["sqlite", "pg"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(kind: str, make_url: Callable[[str], str]) -> str:
    return make_url(kind)


@pytest.fixture(scope="session")
def net() -> Network:
    return load_network(example_toml())


def pay(pid: str, debtor: str = "BANK_ID1", creditor: str = "BANK_ID2", currency: str = "IDR",
        amount: str = "10.00", **extra: Any) -> bytes:
    return orjson.dumps({"id": pid, "debtor": debtor, "creditor": creditor, "currency": currency,
                         "amount": amount, **extra})


def submit(node: Node, lines: list[bytes], batch: int = 2000) -> dict[str, str]:
    t = iter(range(T0 + 1000, T0 + 10_000_000))
    out: dict[str, str] = {}
    for acks in node.submit_lines(lines, batch_lines=batch, clock=lambda: next(t)):
        for a in acks:
            out[a.id if a.id is not None else f"line:{a.line_no}"] = a.text()
    return out


def new_network(url: str, net: Network) -> Node:
    return Node.create(url, net, T0)


MIXED = [
    pay("p1"),
    pay("p2", "BANK_MY1", "BANK_TH1", "MYR", "1250.50"),
    pay("big", "BANK_PH1", "BANK_ID1", "MYR", "200000.00"),  # PH1 holds 100000.00 MYR: queues
    pay("self", "BANK_ID1", "BANK_ID1"),
    b"{not json",
    pay("bad-ccy", currency="XXX"),
    pay("p3", "BANK_TH2", "BANK_TH1", "THB", "99.99", priority="URGENT", debtor_name="Siam Trading Co"),
]


def _module(url: str) -> Any:
    return importlib.import_module("setara.store.postgres" if url.startswith("postgresql")
                                   else "setara.store.sqlite")


# ====================================================================== service level


def test_submit_reopen_and_state(url: str, net: Network) -> None:
    node = new_network(url, net)
    acks = submit(node, MIXED)
    assert acks["p1"] == "p1 SETTLED"
    assert acks["p2"] == "p2 SETTLED"
    assert acks["big"] == "big QUEUED"
    assert acks["self"].startswith("self REJECTED AG01")
    assert acks["line:5"].startswith("line:5 REJECTED FF01")
    assert acks["bad-ccy"].startswith("bad-ccy REJECTED AM03")
    assert acks["p3"] == "p3 SETTLED"
    state = node.engine.state_hash()
    node.catch_up()
    node.close()

    with Node.open(url, write=False) as again:
        assert again.engine.state_hash() == state
        again.catch_up()
        rows = {p.id: p for p in again.store.iter_payments()}
        assert set(rows) == {"p1", "p2", "big", "p3"}
        assert [p.id for p in again.store.iter_payments()] == ["p1", "p2", "big", "p3"]  # arrival order
        assert rows["p2"].amount_minor == 125050 and rows["p2"].currency == "MYR"
        assert rows["big"].status == "QUEUED"
        assert rows["p3"].priority == "URGENT" and rows["p3"].parties is not None
        assert orjson.loads(rows["p3"].parties) == {"debtor_name": "Siam Trading Co"}
        assert [p.id for p in again.store.iter_payments(member="BANK_PH1")] == ["big"]
        assert [p.id for p in again.store.iter_payments(status="SETTLED", after_id="p1", limit=10)] == ["p2", "p3"]
        got = again.store.get_payment("p1")
        assert got is not None and got.status == "SETTLED" and got.amount_minor == 1000
        assert again.store.get_payment("nope") is None
        bal = {(m, c): b for m, c, b, _ in again.store.balances()}
        assert bal[("BANK_ID1", "IDR")] == again.engine.ledger.balances[("BANK_ID1", "IDR")]
        assert verify_store(again.store).state_hash == state


def test_queued_payment_settles_later_and_projection_updates(url: str, net: Network) -> None:
    with new_network(url, net) as node:
        assert submit(node, [pay("big", "BANK_PH1", "BANK_ID1", "MYR", "200000.00")])["big"] == "big QUEUED"
        node.catch_up()
        row = node.store.get_payment("big")
        assert row is not None and row.status == "QUEUED"
        # PH1 receives liquidity: its queued payment is retried and settles in the same block.
        assert submit(node, [pay("in", "BANK_MY1", "BANK_PH1", "MYR", "150000.00")])["in"] == "in SETTLED"
        assert node.engine.status("big") == "SETTLED"
        node.catch_up()
        row = node.store.get_payment("big")
        assert row is not None and row.status == "SETTLED"
        assert verify_store(node.store).payments == 2


def test_resubmit_is_idempotent(url: str, net: Network) -> None:
    lines = [pay(f"id{i}", amount=f"{i + 1}.00") for i in range(300)]
    with new_network(url, net) as node:
        first = submit(node, lines, batch=64)
        head = node.store.head()
        second = submit(node, lines, batch=64)  # batches that add nothing to the log are acked too
        assert second == first
        assert node.store.head() == head  # nothing new in the log
        changed = submit(node, [pay("id7", amount="999.00")])
        assert changed["id7"].startswith("id7 REJECTED DUPL")
        node.catch_up()
        assert sum(1 for _ in node.store.iter_payments()) == 300
        row = node.store.get_payment("id7")
        assert row is not None and row.amount_minor == 800 and row.status == "SETTLED"
        verify_store(node.store)


def test_verify_detects_altered_journal_row(url: str, net: Network) -> None:
    with new_network(url, net) as node:
        submit(node, [pay(f"x{i}") for i in range(20)])
        state = node.engine.state_hash()
    store = open_store(url)
    try:
        assert verify_store(store).state_hash == state
        (body,) = store._query("SELECT body FROM journal WHERE block = ?", (2,))[0]
        postings = orjson.loads(body)
        postings[3][5] += 1  # one posting's amount, one minor unit more
        store._query("UPDATE journal SET body = ? WHERE block = ?", (orjson.dumps(postings), 2))
        with pytest.raises(VerificationError, match="block 2: stored journal differs"):
            verify_store(store)
    finally:
        store.close()


def test_verify_detects_altered_payment_row(url: str, net: Network) -> None:
    with new_network(url, net) as node:
        submit(node, [pay(f"x{i}") for i in range(20)])
        node.catch_up()
    store = open_store(url)
    try:
        verify_store(store)
        store._query("UPDATE payments SET amount_minor = amount_minor + 1 WHERE id = ?", ("x7",))
        with pytest.raises(VerificationError, match="payment x7: stored content differs"):
            verify_store(store)
        store._query("UPDATE payments SET amount_minor = amount_minor - 1, status = 'QUEUED' WHERE id = ?",
                      ("x7",))
        with pytest.raises(VerificationError, match="payment x7 is stored as QUEUED"):
            verify_store(store)
    finally:
        store.close()


def test_verify_detects_altered_log_row(url: str, net: Network) -> None:
    with new_network(url, net) as node:
        submit(node, [pay(f"x{i}") for i in range(20)])
    store = open_store(url)
    try:
        (body,) = store._query("SELECT body FROM log WHERE seq = ?", (2,))[0]
        store._query("UPDATE log SET body = ? WHERE seq = ?", (body.replace(b'"x3"', b'"y3"'), 2))
        with pytest.raises(VerificationError, match="block 2 does not match its hash"):
            verify_store(store)
    finally:
        store.close()


# ====================================================================== one writer


def test_second_writer_is_refused(url: str, net: Network) -> None:
    first = new_network(url, net)
    try:
        with pytest.raises(StoreError, match="another setara process is writing"):
            Node.open(url, write=True, lock_timeout_s=0.5)
        # readers are not blocked by the writer
        with Node.open(url, write=False) as reader:
            assert reader.block_seq == first.block_seq
    finally:
        first.close()
    with Node.open(url, write=True, lock_timeout_s=0.5) as second:  # released on close
        assert submit(second, [pay("after")])["after"] == "after SETTLED"


def test_fencing_without_the_lock_never_forks_the_log(url: str, net: Network) -> None:
    """Two writers that bypass the lock: the log position fences the late one off."""
    with new_network(url, net) as a:
        submit(a, [pay("a0")])
        rogue_store = open_store(url)
        rogue = Node._load(rogue_store, writable=True)  # no writer lock taken
        try:
            assert submit(a, [pay("a1")])["a1"] == "a1 SETTLED"
            with pytest.raises(StoreError, match="another writer is active"):
                submit(rogue, [pay("r1", amount="5.00")])
        finally:
            rogue_store.close()
        seq, cmds, _, _ = a.store.head()
        assert seq == a.block_seq and cmds == a.cmd_count
        assert submit(a, [pay("a2")])["a2"] == "a2 SETTLED"
        report = verify_store(a.store)
        assert report.state_hash == a.engine.state_hash()
        assert a.store.get_payment("r1") is None


def test_append_refuses_a_block_that_does_not_follow_the_head(url: str, net: Network) -> None:
    with new_network(url, net) as node:
        seq, _, h, jh = node.store.head()
        assert seq == 1
        blocks = list(node.store.iter_blocks())
        assert len(blocks) == 1 and blocks[0].hash == h and node.store.block_hash_at(1) == (h, jh)
        assert node.store.block_hash_at(2) is None
        b = blocks[0]
        for wrong in (1, 3):  # a replay of the head, and a gap
            bad = Block(wrong, b.first_cmd, b.n_cmds, b.time_ms, b.log, b.hash, b.journal, b.journal_head,
                        b.events, b.intake)
            with pytest.raises(StoreError, match="another writer is active"):
                node.store.append(bad, [("BANK_ID1", "IDR", 1, 1)], None)
        assert node.store.head()[0] == 1
        assert verify_store(node.store).blocks == 1


def _fsync_level(node: Node) -> str:
    if node.store.url.startswith("postgresql"):
        return str(node.store._query("SHOW synchronous_commit")[0][0])
    return {1: "NORMAL", 2: "FULL"}.get(int(node.store._query("PRAGMA synchronous")[0][0]), "?")


def test_deferred_sync_commits_each_block_and_makes_them_durable_on_the_way_out(url: str, net: Network) -> None:
    durable = "on" if url.startswith("postgresql") else "FULL"
    with new_network(url, net) as node:
        assert _fsync_level(node) == durable
        with node.store.deferred_sync():
            assert _fsync_level(node) != durable
            submit(node, [pay("d1")])
            assert node.store.head()[0] == 2  # committed, visible, just not waited for
        assert _fsync_level(node) == durable
        assert node.store.meta("synced_upto") == "2"
        # Leaving on an error: what was committed is kept and synced, and the error goes on.
        with pytest.raises(RuntimeError, match="a block failed"), node.store.deferred_sync():
            submit(node, [pay("d2")])
            raise RuntimeError("a block failed its checks")
        assert _fsync_level(node) == durable
        assert node.store.meta("synced_upto") == "3"
        assert verify_store(node.store).blocks == 3


def test_projection_watermark_refuses_a_stale_projector(url: str, net: Network) -> None:
    with new_network(url, net) as node:
        submit(node, [pay("p1")])
        upto = node.catch_up()
        assert upto == node.block_seq and node.store.projected_upto() == upto
        assert not node.store.project(Projection(upto + 5, [], []), upto - 1)
        assert node.store.projected_upto() == upto


# ====================================================================== schema versions


def test_older_schema_is_refused_until_upgraded(url: str, net: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database made by this version is 'old' once a newer setara adds a migration."""
    with new_network(url, net) as node:
        submit(node, [pay("p1"), pay("q1", "BANK_PH1", "BANK_ID1", "MYR", "200000.00")])
        state = node.engine.state_hash()
    mod = _module(url)
    v = store_base.SCHEMA_VERSION
    monkeypatch.setattr(mod, "MIGRATIONS", [*mod.MIGRATIONS, [
        "CREATE TABLE upgrade_probe (x BIGINT)",
        "ALTER TABLE payments ADD COLUMN probe_note TEXT",
    ]])
    monkeypatch.setattr(store_base, "SCHEMA_VERSION", v + 1)
    if hasattr(mod, "SCHEMA_VERSION"):
        monkeypatch.setattr(mod, "SCHEMA_VERSION", v + 1)
    with pytest.raises(StoreError, match=rf"schema version {v} is older .* run `setara db upgrade`"):
        Node.open(url, write=True, lock_timeout_s=0.5)
    store = open_store(url)
    try:
        assert store.upgrade() == [f"migrated to schema version {v + 1}"]
        assert store.upgrade() == []
        store.check_schema()
        assert store._query("SELECT COUNT(*) FROM upgrade_probe") == [(0,)]
    finally:
        store.close()
    with Node.open(url, write=True, lock_timeout_s=0.5) as node:
        assert node.engine.state_hash() == state
        assert submit(node, [pay("p2")])["p2"] == "p2 SETTLED"
        node.catch_up()
        assert verify_store(node.store).payments == 3
    monkeypatch.undo()
    store = open_store(url)
    try:
        with pytest.raises(StoreError, match="newer than this setara"):
            store.check_schema()
    finally:
        store.close()


def test_upgrade_from_the_first_schema_version(url: str, make_url: Callable[[str], str], kind: str,
                                               net: Network) -> None:
    """A database laid out by schema version 1 (MIGRATIONS[0] alone) upgrades to the current one."""
    src_url = make_url(kind)
    with new_network(src_url, net) as src:
        submit(src, MIXED)
        state = src.engine.state_hash()
        key = src.store.meta("party_key")
        blocks = list(src.store.iter_blocks())
    mod = _module(url)
    store = open_store(url, create=True)
    try:
        for stmt in mod.MIGRATIONS[0]:
            store._query(stmt)
        for k, value in (("schema_version", "1"), ("party_key", key), ("projected_upto", "0")):
            store._query("INSERT INTO meta (key, value) VALUES (?, ?)", (k, value))
        for b in blocks:
            store.append(b, [], None)
        if store_base.SCHEMA_VERSION > 1:
            with pytest.raises(StoreError, match="run `setara db upgrade`"):
                store.check_schema()
        done = store.upgrade()
        assert len(done) == store_base.SCHEMA_VERSION - 1
        store.check_schema()
    finally:
        store.close()
    with Node.open(url, write=True, lock_timeout_s=0.5) as node:
        assert node.engine.state_hash() == state
        node.snapshot()
        node.catch_up()
        assert verify_store(node.store).state_hash == state


# ====================================================================== backup and restore


@pytest.mark.parametrize("src_kind,dst_kind", [("sqlite", "pg"), ("pg", "sqlite"), ("pg", "pg")])
def test_restore_by_log_copy_gives_the_same_state(src_kind: str, dst_kind: str, make_url: Callable[[str], str],
                                                  net: Network) -> None:
    src_url, dst_url = make_url(src_kind), make_url(dst_kind)
    with new_network(src_url, net) as src:
        submit(src, [*MIXED, *(pay(f"b{i}", amount=f"{i % 90 + 1}.25") for i in range(500))], batch=128)
        submit(src, [pay("in", "BANK_MY1", "BANK_PH1", "MYR", "150000.00")])
        state = src.engine.state_hash()
        src.catch_up()
        payments = [p.as_tuple() for p in src.store.iter_payments()]
        blocks = src.block_seq
    src_store, dst_store = open_store(src_url), open_store(dst_url, create=True)
    try:
        assert copy_log(src_store, dst_store) == blocks
        with pytest.raises(StoreError, match="already holds a network"):
            copy_log(src_store, dst_store)
    finally:
        src_store.close()
        dst_store.close()
    with Node.open(dst_url, write=True, lock_timeout_s=0.5) as dst:  # replays the copied log
        assert dst.engine.state_hash() == state
        dst.snapshot()
        dst.catch_up()
        assert verify_store(dst.store).state_hash == state
        assert [p.as_tuple() for p in dst.store.iter_payments()] == payments
        assert submit(dst, [pay("after-restore")])["after-restore"] == "after-restore SETTLED"


def test_pg_dump_and_restore_of_the_schema(make_url: Callable[[str], str], net: Network, tmp_path: Path) -> None:
    url = make_url("pg")
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump/pg_restore not installed")
    libpq_url, schema = split_url(url)
    assert schema is not None
    with new_network(url, net) as node:
        submit(node, MIXED)
        node.catch_up()
        state = node.engine.state_hash()
    dump = tmp_path / "network.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--schema={schema}", f"--file={dump}", libpq_url],
                   check=True, capture_output=True, timeout=60)
    _drop_schema(schema)
    subprocess.run(["pg_restore", f"--dbname={libpq_url}", str(dump)], check=True, capture_output=True, timeout=60)
    with Node.open(url, write=True, lock_timeout_s=0.5) as node:
        assert node.engine.state_hash() == state
        assert verify_store(node.store).state_hash == state
        # identities survive the dump: new rows keep numbering after the old ones
        assert submit(node, [pay("after")])["after"] == "after SETTLED"
        node.catch_up()
        assert [p.id for p in node.store.iter_payments()][-1] == "after"


def test_a_node_started_from_a_snapshot_replays_verifies_and_reopens_from_there(
        url: str, make_url: Callable[[str], str], net: Network) -> None:
    from setara.node.node import engine_at
    from setara.store import Base

    writer = new_network(make_url("sqlite"), net)
    try:
        submit(writer, [pay(f"a{i}", debtor_name=f"PT Satu {i}") for i in range(300)], batch=50)
        at = writer.store.block_hash_at(writer.block_seq)
        assert at is not None
        base = Base(writer.block_seq, writer.cmd_count, at[0], at[1], writer.engine.time_ms, 1)
        state, state_hash = writer.engine.state_bytes(), writer.engine.state_hash()
        # queued beyond the base: the payments after it settle on the replica by replay alone
        submit(writer, [pay(f"b{i}", amount="900000000.00") for i in range(5)]
               + [pay(f"c{i}", creditor="BANK_ID3") for i in range(200)], batch=40)
        replica = Node.create_from_snapshot(url, base, state)
        try:
            assert replica.engine.state_hash() == state_hash
            for b in writer.store.iter_blocks(base.seq):
                replica.replay_block(b.seq, b.first_cmd, b.n_cmds, b.time_ms, b.log, b.hash)
            assert replica.engine.state_hash() == writer.engine.state_hash()
            replica.catch_up()
        finally:
            replica.close()
        store = open_store(url)
        try:
            report = verify_store(store)
            assert report.state_hash == writer.engine.state_hash()
            assert report.payments == 205  # those submitted after the snapshot; the earlier ones are in its state
            assert engine_at(store, base.seq).state_hash() == state_hash
            assert store.head()[0] == writer.block_seq
        finally:
            store.close()
        with Node.open(url, write=False) as again:  # reopens from its own snapshot plus the blocks after
            assert again.engine.state_hash() == writer.engine.state_hash()
        with pytest.raises(StoreError, match="already holds"):
            Node.create_from_snapshot(url, base, state)
    finally:
        writer.close()
