"""Two `setara serve` processes on one database: the second must refuse, and the log never forks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(db: str, port: int, lock_timeout_s: str = "30") -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "setara.cli", "serve", "--db", db, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "SETARA_LOCK_TIMEOUT_S": lock_timeout_s})


def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not come up")


def pg_url() -> str:
    base = os.environ.get("SETARA_TEST_PG", "postgresql://127.0.0.1:5432/test")
    try:
        import psycopg

        psycopg.connect(base, connect_timeout=3).close()
    except Exception as e:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {e}")
    return f"{base}?schema=t_{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_second_writer_refuses_and_the_log_does_not_fork(tmp_path: Path, backend: str) -> None:
    db = str(tmp_path / "s.db") if backend == "sqlite" else pg_url()
    net = tmp_path / "n.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    run_cli("init", "--network", str(net), "--db", db)
    first_port = free_port()
    first = serve(db, first_port)
    try:
        wait_healthy(first_port, first)
        second = serve(db, free_port(), lock_timeout_s="1")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert b"another setara process is writing" in err or b"writer" in err, err
        # The first writer still serves; a CLI writer is refused too.
        assert httpx.get(f"http://127.0.0.1:{first_port}/healthz", timeout=5).status_code == 200
        f = tmp_path / "p.jsonl"
        f.write_text('{"id":"p1","debtor":"BANK_ID1","creditor":"BANK_ID2","currency":"IDR","amount":"1.00"}\n')
        proc = subprocess.run([sys.executable, "-m", "setara.cli", "submit", str(f), "--db", db],
                              capture_output=True, env={**os.environ, "SETARA_LOCK_TIMEOUT_S": "1"}, timeout=60)
        assert proc.returncode == 1 and proc.stdout == b""
    finally:
        first.terminate()
        first.wait(timeout=30)
    run_cli("verify", "--db", db)
    if backend == "pg":
        import psycopg

        schema = db.rsplit("schema=", 1)[1]
        with psycopg.connect(db.split("?")[0], autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
