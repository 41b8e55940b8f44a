"""A real `setara serve` process: concurrent POSTs, then SIGKILL; nothing acknowledged may be lost.

Also exercises the `keys` commands as a user runs them (the key alone on stdout).
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from setara.api.keys import issue_key  # noqa: E402
from setara.core.network import example_toml, load_network  # noqa: E402
from setara.node import Node  # noqa: E402
from setara.store import open_store  # noqa: E402

MEMBERS = ("BANK_ID1", "BANK_ID2", "BANK_ID3")


def _setara_has(cmd: str) -> bool:
    from typer.main import get_command

    from setara.cli import app

    return cmd in getattr(get_command(app), "commands", {})


def api_cmd(*args: str) -> list[str]:
    """`setara …` when the main CLI has the API commands registered, else `python -m setara.api …`."""
    if _setara_has(args[0]):
        return [sys.executable, "-m", "setara.cli", *args]
    return [sys.executable, "-m", "setara.api", *args]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setara.cli", *args], capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(db: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(api_cmd("serve", "--db", db, "--port", str(port)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("serve did not come up in 30 s")


def issue(db: str, *args: str) -> str:
    r = subprocess.run(api_cmd("keys", "issue", *args, "--db", db), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and "." in lines[0], r.stdout  # the key alone on stdout
    return lines[0]


def post_wave(port: int, keys: dict[str, str], prefix: str, threads: int, per_thread: int,
              stop: threading.Event | None = None, acked: list[str] | None = None) -> tuple[list[str], list[str]]:
    acked = [] if acked is None else acked
    failures: list[str] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        debtor = MEMBERS[t % len(MEMBERS)]
        creditor = MEMBERS[(t + 1) % len(MEMBERS)]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Bearer {keys[debtor]}"}) as c:
            for i in range(per_thread):
                if stop is not None and stop.is_set():
                    return
                pid = f"{prefix}-{t:02d}-{i:04d}"
                try:
                    r = c.post("/v1/payments", json={"id": pid, "debtor": debtor, "creditor": creditor,
                                                     "currency": "IDR", "amount": f"{1 + i % 7}.25"})
                except httpx.HTTPError as e:
                    with lock:
                        failures.append(f"{pid}: {type(e).__name__}")
                    continue
                with lock:
                    if 200 <= r.status_code < 300:
                        acked.append(pid)
                    else:
                        failures.append(f"{pid}: {r.status_code} {r.text[:200]}")

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return acked, failures


def exported_ids(db: str) -> Counter[str]:
    r = cli("export", "payments", "--db", db)
    assert r.returncode == 0, r.stderr
    return Counter(row["id"] for row in csv.DictReader(io.StringIO(r.stdout)))


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_payment(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    Node.create(db, load_network(example_toml()), 1_700_000_000_000).close()
    keys = {m: issue(db, "--member", m) for m in MEMBERS[:1]}  # one through the CLI, as a user would
    store = open_store(db)
    keys.update({m: issue_key(store, "member", m)[1] for m in MEMBERS[1:]})
    store.close()
    port = free_port()
    proc = start_server(db, port)
    try:
        # 16 threads, 800 payments in all: every request succeeds.
        acked, failures = post_wave(port, keys, "W1", 16, 50)
        assert failures == [] and len(acked) == 800
        # A second wave killed mid-flight: whatever was acknowledged must survive.
        stop = threading.Event()
        result: list[tuple[list[str], list[str]]] = []
        progress: list[str] = []
        wave = threading.Thread(target=lambda: result.append(post_wave(port, keys, "W2", 16, 200, stop, progress)))
        wave.start()
        deadline = time.monotonic() + 30
        while len(progress) < 200 and time.monotonic() < deadline:  # kill mid-wave, once it is flowing
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        wave.join(60)
        acked2 = result[0][0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert acked2, "the second wave got no acknowledgement before the kill"
    assert len(acked2) < 16 * 200, "the kill came after the second wave had finished"
    ids = exported_ids(db)
    for pid in acked + acked2:
        assert ids[pid] == 1, pid
    assert all(n == 1 for n in ids.values())
    r = cli("verify", "--db", db)
    assert r.returncode == 0, r.stderr
    # The server comes back on the same store and still knows every payment (idempotent re-POST).
    proc = start_server(db, port)
    try:
        pid = acked2[-1]
        t, i = int(pid.split("-")[1]), int(pid.split("-")[2])
        debtor = MEMBERS[t % len(MEMBERS)]
        r2 = httpx.post(f"http://127.0.0.1:{port}/v1/payments", timeout=10,
                        headers={"Authorization": f"Bearer {keys[debtor]}"},
                        json={"id": pid, "debtor": debtor, "creditor": MEMBERS[(t + 1) % len(MEMBERS)],
                              "currency": "IDR", "amount": f"{1 + i % 7}.25"})
        assert r2.status_code == 200 and r2.json()["status"] == "SETTLED", r2.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a graceful stop


def test_keys_commands(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from setara.api.commands import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    db = str(tmp_path / "s.db")
    Node.create(db, load_network(example_toml()), 1_700_000_000_000).close()

    def run(*args: str) -> tuple[int, str, str]:
        r = runner.invoke(app, [*args, "--db", db])
        return r.exit_code, r.stdout, r.stderr

    code, out, _ = run("keys", "issue", "--operator")
    assert code == 0 and len(out.splitlines()) == 1
    key = out.strip()
    assert run("keys", "issue", "--role", "auditor")[0] == 0
    assert run("keys", "issue", "--member", "BANK_ID1")[0] == 0
    code, out, err = run("keys", "issue", "--member", "NOBODY")
    assert code == 2 and out == "" and "NOBODY" in err
    code, out, err = run("keys", "issue", "--operator", "--role", "auditor")
    assert code == 2 and out == "" and "exactly one" in err
    code, out, err = run("keys", "issue", "--role", "superuser")
    assert code == 2 and out == ""
    code, out, _ = run("keys", "list")
    assert code == 0 and len(out.splitlines()) == 3 and key not in out
    kid = key.split(".")[0]
    code, out, err = run("keys", "revoke", kid)
    assert code == 0 and out == "" and "revoked" in err
    assert '"revoked_ms":null' not in next(ln for ln in run("keys", "list")[1].splitlines() if kid in ln)
    code, out, err = run("keys", "revoke", "knothere")
    assert code == 2 and "knothere" in err
    r = runner.invoke(app, ["keys", "list", "--db", str(tmp_path / "none.db")])
    assert not (tmp_path / "none.db").exists()
    assert r.exit_code != 0 and r.stdout == "" and "no Setara database at" in r.stderr
