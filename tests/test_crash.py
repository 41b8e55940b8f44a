"""Kill a real `setara submit` with SIGKILL at random moments: nothing acknowledged is lost,
nothing is half-applied, and retrying the file duplicates nothing."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli

MEMBERS = ["BANK_ID1", "BANK_ID2", "BANK_ID3", "BANK_MY1", "FX_MERDEKA", "FX_STRAITS"]


def write_file(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            d, c = rng.sample(MEMBERS, 2)
            f.write(json.dumps({"id": f"c{i}", "debtor": d, "creditor": c, "currency": "IDR",
                                "amount": f"{rng.randint(1, 10**7)}.{rng.randint(0, 99):02d}"}) + "\n")


def submit_and_kill(db: Path, src: Path, kill_after_acks: int, intake_workers: int = 1) -> list[str]:
    proc = subprocess.Popen([sys.executable, "-m", "setara.cli", "submit", str(src), "--db", str(db),
                             "--batch", "500"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1",
                                 "SETARA_INTAKE_WORKERS": str(intake_workers)})
    acked: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acked.append(line.decode().split(" ")[0])
        if len(acked) >= kill_after_acks:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    return acked


def test_sigkill_during_submit_loses_nothing_acknowledged(tmp_path: Path) -> None:
    net = tmp_path / "n.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = tmp_path / "s.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    src = tmp_path / "in.jsonl"
    write_file(src, 20_000, seed=3)
    rng = random.Random(11)
    all_acked: set[str] = set()
    for round_no in range(3):
        # one round with several intake workers: they must die with the killed engine process
        acked = submit_and_kill(db, src, rng.randint(500, 15_000), intake_workers=1 + round_no % 2)
        all_acked.update(acked)
        out = run_cli("export", "payments", "--db", str(db)).stdout.decode()
        stored = [r["id"] for r in csv.DictReader(io.StringIO(out))]
        assert len(stored) == len(set(stored))
        missing = all_acked - set(stored)
        assert not missing, f"{len(missing)} acknowledged payments lost, e.g. {sorted(missing)[:3]}"
        run_cli("verify", "--db", str(db))
    # Retrying the whole file completes it and duplicates nothing.
    run_cli("submit", str(src), "--db", str(db))
    out = run_cli("export", "payments", "--db", str(db)).stdout.decode()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 20_000 == len({r["id"] for r in rows})
    journal = run_cli("export", "journal", "--db", str(db)).stdout.decode()
    posted = [r["payment_id"] for r in csv.DictReader(io.StringIO(journal)) if r["payment_id"].startswith("c")]
    assert len(posted) == len(set(posted))
    run_cli("verify", "--db", str(db))
