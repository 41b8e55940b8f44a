"""Cross-currency trade payments through the CLI: rates, PvP, positions, and a crash mid-batch."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

from tests.conftest import run_cli

RATES = {("IDR", "MYR"): "0.000283", ("IDR", "THB"): "0.00215", ("MYR", "THB"): "7.61"}


def setup(tmp_path: Path) -> Path:
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = tmp_path / "s.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    for (a, b), r in RATES.items():
        run_cli("fx", "rate", "--provider", "FX_MERDEKA", "--pair", f"{a}/{b}", "--rate", r, "--db", str(db))
    return db


def fx_lines(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    banks = ["BANK_ID1", "BANK_ID2", "BANK_MY1", "BANK_MY2", "BANK_TH1", "BANK_TH2"]
    out = []
    for i in range(n):
        (a, b) = rng.choice(list(RATES))
        if rng.random() < 0.5:
            a, b = b, a
        d, c = rng.sample(banks, 2)
        amount = rng.choice(["10.00", "1000.00", "250000.00", "99999999.00"])
        out.append({"id": f"x{i}", "debtor": d, "creditor": c, "currency": a, "amount": amount, "to_currency": b})
    return out


def check_legs(db: Path) -> dict[str, dict[str, str]]:
    payments = {r["id"]: r for r in csv.DictReader(io.StringIO(
        run_cli("export", "payments", "--db", str(db)).stdout.decode()))}
    legs: dict[str, list[dict[str, str]]] = {}
    for r in csv.DictReader(io.StringIO(run_cli("export", "journal", "--db", str(db)).stdout.decode())):
        legs.setdefault(r["payment_id"], []).append(r)
    for pid, p in payments.items():
        if p["status"] == "SETTLED":
            got = legs.get(pid, [])
            assert [x["currency"] for x in got] == [p["currency"], p["to_currency"]], pid
            assert got[0]["amount"] == p["amount"] and got[1]["amount"] == p["credit_amount"]
            rate = Fraction(RATES.get((p["currency"], p["to_currency"]))
                            or 1 / Fraction(RATES[(p["to_currency"], p["currency"])]))
            expected = Fraction(p["amount"]) * rate
            assert abs(Fraction(p["credit_amount"]) - expected) <= max(expected / 100, Fraction(1, 100))
        else:
            assert pid not in legs, f"unsettled {pid} has a leg"
    return payments


def test_cross_currency_day_both_legs_or_none(tmp_path: Path) -> None:
    db = setup(tmp_path)
    f = tmp_path / "fx.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in fx_lines(600, 5)) + "\n")
    run_cli("submit", str(f), "--db", str(db))
    payments = check_legs(db)
    statuses = {p["status"] for p in payments.values()}
    assert "SETTLED" in statuses
    huge = [p for p in payments.values() if p["amount"] == "99999999.00" and p["currency"] == "MYR"]
    assert huge and all(p["status"] != "SETTLED" for p in huge)
    pos = list(csv.DictReader(io.StringIO(run_cli("fx", "positions", "--db", str(db)).stdout.decode())))
    assert {r["provider"] for r in pos} == {"FX_MERDEKA", "FX_STRAITS"}
    run_cli("verify", "--db", str(db))


def test_crash_during_a_pvp_batch(tmp_path: Path) -> None:
    db = setup(tmp_path)
    f = tmp_path / "fx.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in fx_lines(6000, 9)) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "setara.cli", "submit", str(f), "--db", str(db), "--batch", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    acked = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acked.append(line.decode().split()[0])
        if len(acked) >= 1500:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    payments = check_legs(db)
    assert set(acked) <= set(payments)
    run_cli("verify", "--db", str(db))
