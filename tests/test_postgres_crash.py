"""kill -9 a real `setara submit --db postgresql://…` mid-file, three times: no acknowledged
instruction may be lost, verify must pass, and resubmitting the file must duplicate nothing."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from setara.core.network import example_toml
from setara.node.projection import project
from setara.store import open_store

PG_URL = os.environ.get("SETARA_TEST_PG", "postgresql://127.0.0.1:5432/test")
LINES = 30_000
MEMBERS = ["BANK_ID1", "BANK_ID2", "BANK_ID3", "BANK_MY1", "BANK_MY2", "BANK_TH1", "BANK_TH2", "BANK_PH1"]
CURRENCIES = ["IDR", "MYR", "THB", "PHP"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except Exception as e:  # any failure to reach the server is a reason to skip
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        pytest.skip(f"PostgreSQL not reachable at {PG_URL.split('//')[-1].split('/')[0]}: {text}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _setara(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "setara.cli", *args], input=stdin, capture_output=True,
                          timeout=120, check=False)


def _lines(rng: random.Random) -> list[bytes]:
    out = []
    for i in range(LINES):
        if i % 97 == 13:
            out.append(b'{"id": "broken-' + str(i).encode() + b'", "amount": ')  # malformed
            continue
        debtor, creditor = rng.sample(MEMBERS, 2)
        out.append(orjson.dumps({"id": f"k{i:05d}", "debtor": debtor, "creditor": creditor,
                                 "currency": rng.choice(CURRENCIES), "amount": f"{rng.randint(1, 500)}.{i % 100:02d}",
                                 "priority": "URGENT" if i % 11 == 0 else "NORMAL"}))
    return out


def _kill_after(url: str, file: Path, acks_wanted: int) -> list[tuple[str, str]]:
    """Start a submit, SIGKILL it once it has printed `acks_wanted` ack lines; return those acks."""
    # Its own session, so that helpers it forked can be cleaned up afterwards; the kill itself
    # is kill -9 of the submit process alone, as an operator's would be.
    proc = subprocess.Popen([sys.executable, "-m", "setara.cli", "submit", str(file), "--db", url, "--batch", "500"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    acked: list[tuple[str, str]] = []
    try:
        for raw in proc.stdout:
            pid, status = raw.decode().split()[:2]
            acked.append((pid, status))
            if len(acked) >= acks_wanted:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.stdout.close()
        proc.wait(timeout=60)
        try:
            # The server dropped the dead writer's lock, even if a helper process it forked is
            # still alive: the next writer gets in at once.
            store = open_store(url)
            try:
                with store.writer(5.0):
                    pass
            finally:
                store.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # any orphaned helper of the killed process
    return acked


def _export(url: str) -> dict[str, str]:
    r = _setara("export", "payments", "--db", url)
    assert r.returncode == 0, r.stderr.decode()
    rows = list(csv.DictReader(io.StringIO(r.stdout.decode())))
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "a payment is listed twice"
    return {row["id"]: row["status"] for row in rows}


def _stored(url: str) -> dict[str, str]:
    """The payments table, caught up, read in-process (cheaper than `setara export` between rounds)."""
    store = open_store(url)
    try:
        project(store)
        rows = store._query("SELECT id, status FROM payments")
    finally:
        store.close()
    return {str(pid): str(status) for pid, status in rows}


def test_kill_9_during_submit_loses_no_acknowledged_instruction(pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(9)
    network = tmp_path / "network.toml"
    network.write_text(example_toml())
    r = _setara("init", "--network", str(network), "--db", pg_url)
    assert r.returncode == 0, r.stderr.decode()
    file = tmp_path / "payments.jsonl"
    lines = _lines(rng)
    file.write_bytes(b"\n".join(lines) + b"\n")

    acked: dict[str, str] = {}
    for round_no in range(3):
        got = _kill_after(pg_url, file, rng.randint(1000, 6000))
        assert got, f"round {round_no}: no acknowledgement before the kill"
        for pid, status in got:
            if not pid.startswith("line:") and status != "REJECTED":
                acked[pid] = status
        stored = _export(pg_url) if round_no == 2 else _stored(pg_url)
        lost = [pid for pid in acked if pid not in stored]
        assert not lost, f"round {round_no}: acknowledged but lost after kill -9: {lost[:5]}"
        changed = [pid for pid, st in acked.items() if st == "SETTLED" and stored[pid] != "SETTLED"]
        assert not changed, f"round {round_no}: settled payments changed: {changed[:5]}"

    # The whole file again: the rest goes in, and what the killed runs stored (a third of the
    # file or more) is neither duplicated nor changed.
    r = _setara("submit", str(file), "--db", pg_url)
    assert r.returncode == 0, r.stderr.decode()
    acks = r.stdout.decode().splitlines()
    assert len(acks) == LINES
    before = stored
    final = _stored(pg_url)
    valid = {orjson.loads(x)["id"] for x in lines if not x.startswith(b'{"id": "broken-')}
    assert set(final) == valid
    assert all(final[pid] == "SETTLED" for pid, st in before.items() if st == "SETTLED")
    v = _setara("verify", "--db", pg_url)  # the log as the three killed runs and the retry left it
    assert v.returncode == 0, v.stderr.decode()
