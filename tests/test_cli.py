"""The `setara` command end to end, through the GUIDE §3 contract only."""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
from pathlib import Path

import orjson
import pytest

from tests.conftest import run_cli

MEMBERS = ["BANK_ID1", "BANK_ID2", "BANK_ID3", "BANK_MY1", "BANK_MY2", "BANK_TH1", "BANK_TH2", "BANK_PH1"]


@pytest.fixture
def cli_db(tmp_path: Path) -> Path:
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = tmp_path / "setara.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    return db


def balances(db: Path) -> dict[tuple[str, str], str]:
    out = run_cli("export", "balances", "--db", str(db)).stdout.decode()
    return {(r["member"], r["currency"]): r["balance"] for r in csv.DictReader(io.StringIO(out))}


def payments(db: Path) -> dict[str, dict[str, str]]:
    out = run_cli("export", "payments", "--db", str(db)).stdout.decode()
    return {r["id"]: r for r in csv.DictReader(io.StringIO(out))}


def mixed_lines(n: int, seed: int = 7) -> list[str]:
    """Valid payments mixed with duplicates, re-used ids and malformed or invalid lines."""
    rng = random.Random(seed)
    lines: list[str] = []
    for i in range(n):
        kind = rng.random()
        d, c = rng.sample(MEMBERS, 2)
        ccy = rng.choice(["IDR", "MYR", "THB", "PHP"])
        good = {"id": f"p{i}", "debtor": d, "creditor": c, "currency": ccy,
                "amount": f"{rng.randint(1, 500000)}.{rng.randint(0, 99):02d}"}
        if kind < 0.70:
            lines.append(json.dumps(good))
        elif kind < 0.75 and lines:
            lines.append(rng.choice(lines))  # exact duplicate of an earlier line
        elif kind < 0.80:
            lines.append(json.dumps({**good, "id": f"p{rng.randrange(max(i, 1))}", "amount": "7.77"}))
        elif kind < 0.83:
            lines.append("{not json")
        elif kind < 0.86:
            lines.append(json.dumps({**good, "amount": "1.001"}))
        elif kind < 0.88:
            lines.append(json.dumps({**good, "currency": "USD"}))
        elif kind < 0.90:
            lines.append(json.dumps({**good, "debtor": "NOBODY"}))
        elif kind < 0.92:
            lines.append(json.dumps({**good, "creditor": d}))
        elif kind < 0.94:
            lines.append(json.dumps({**good, "amount": "-3"}))
        elif kind < 0.96:
            lines.append(json.dumps({k: v for k, v in good.items() if k != "amount"}))
        elif kind < 0.98:
            lines.append(json.dumps({**good, "priority": "URGENT"}))
        else:
            lines.append(json.dumps({**good, "amount": "abc"}))
    return lines


def test_network_example_and_show(cli_db: Path) -> None:
    shown = json.loads(run_cli("network", "show", "--db", str(cli_db)).stdout)
    assert {c["code"] for c in shown["currencies"]} >= {"IDR", "MYR", "THB"}
    assert len(shown["members"]) >= 8
    fx = [m for m in shown["members"] if "fx_provider" in m["roles"]]
    assert fx and len(fx[0]["accounts"]) >= 3
    assert all(len(m["bic"]) in (8, 11) for m in shown["members"])


def test_init_reports_bad_network_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[currencies]]\ncode = "IDR"\nminor_units = 2\nagent = "CB"\nagent_bic = "CBIDIDJA"\n'
                   '[[members]]\nid = "B1"\nbic = "NOTABIC"\ncountry = "ID"\n')
    proc = run_cli("init", "--network", str(bad), "--db", str(tmp_path / "x.db"), check=False)
    assert proc.returncode == 2
    assert b"members[0].bic" in proc.stderr and b"Traceback" not in proc.stderr


def test_mixed_file_conserves_and_resubmission_duplicates_nothing(cli_db: Path, tmp_path: Path) -> None:
    before = balances(cli_db)
    lines = mixed_lines(3000)
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(lines) + "\n")
    proc = run_cli("submit", str(f), "--db", str(cli_db))
    acks = proc.stdout.decode().splitlines()
    assert len(acks) == len(lines)  # one ack per line, none stops the rest
    for ack, line in zip(acks, lines, strict=True):
        head, status = ack.split(" ")[:2]
        assert status in {"SETTLED", "QUEUED", "HELD", "REJECTED"}
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            assert head.startswith("line:") and status == "REJECTED"
            continue
        assert head == obj.get("id", head)
        if status == "REJECTED":
            assert len(ack.split(" ")) >= 3, f"rejection without a reason: {ack}"
    codes = {a.split(" ")[2] for a in acks if a.split(" ")[1] == "REJECTED"}
    assert {"FF01", "AM12", "AM03", "RC01", "AG01", "DUPL"} <= codes
    after = balances(cli_db)
    # Conservation per currency: members' balances move, their sum does not (no funding here).
    for ccy in ("IDR", "MYR", "THB", "PHP"):
        def total(b: dict[tuple[str, str], str], c: str = ccy) -> int:
            return sum(int(v.replace(".", "")) for (m, cc), v in b.items() if cc == c)
        assert total(before) == total(after)
    first = payments(cli_db)
    settled = {k for k, v in first.items() if v["status"] == "SETTLED"}
    assert settled
    # Resubmitting the same file changes nothing.
    proc2 = run_cli("submit", str(f), "--db", str(cli_db))
    assert len(proc2.stdout.decode().splitlines()) == len(lines)
    assert balances(cli_db) == after
    second = payments(cli_db)
    assert set(second) == set(first)
    for pid in settled:
        assert second[pid] == first[pid]
    journal = run_cli("export", "journal", "--db", str(cli_db)).stdout.decode()
    ids = [r["payment_id"] for r in csv.DictReader(io.StringIO(journal)) if not r["payment_id"].startswith("open:")]
    assert len(ids) == len(set(ids)) == len(settled)  # every settled payment posted exactly once
    run_cli("verify", "--db", str(cli_db))


def test_verify_detects_an_altered_journal_row(cli_db: Path, tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(mixed_lines(200)) + "\n")
    run_cli("submit", str(f), "--db", str(cli_db))
    good = run_cli("verify", "--db", str(cli_db)).stdout.strip()
    assert len(good) == 64
    con = sqlite3.connect(cli_db)
    (block, body), = con.execute("SELECT block, body FROM journal ORDER BY block DESC LIMIT 1").fetchall()
    rows = orjson.loads(body)
    rows[0][5] += 1
    con.execute("UPDATE journal SET body = ? WHERE block = ?", (orjson.dumps(rows), block))
    con.commit()
    con.close()
    bad = run_cli("verify", "--db", str(cli_db), check=False)
    assert bad.returncode == 1
    assert b"journal" in bad.stderr and b"Traceback" not in bad.stderr


def test_verify_detects_an_altered_payment_or_log(cli_db: Path, tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(mixed_lines(100)) + "\n")
    run_cli("submit", str(f), "--db", str(cli_db))
    run_cli("export", "payments", "--db", str(cli_db))  # projects the payments table
    con = sqlite3.connect(cli_db)
    con.execute("UPDATE payments SET amount_minor = amount_minor + 1 WHERE rowid = 1")
    con.commit()
    assert run_cli("verify", "--db", str(cli_db), check=False).returncode == 1
    con.execute("UPDATE payments SET amount_minor = amount_minor - 1 WHERE rowid = 1")
    con.execute("UPDATE log SET body = CAST(REPLACE(CAST(body AS TEXT), 'BANK_ID1', 'BANK_ID2') AS BLOB)"
                " WHERE seq = 2")
    con.commit()
    con.close()
    bad = run_cli("verify", "--db", str(cli_db), check=False)
    assert bad.returncode == 1 and b"chain" in bad.stderr


def test_fund_withdraw_cancel_day_and_member_commands(cli_db: Path, tmp_path: Path) -> None:
    db = str(cli_db)
    out = run_cli("fund", "--member", "BANK_ID2", "--currency", "IDR", "--amount", "100.50", "--db", db)
    assert out.stdout.decode().split()[-1] == "12000000100.50"
    short = run_cli("withdraw", "--member", "BANK_ID2", "--currency", "IDR", "--amount", "99999999999999",
                    "--db", db, check=False)
    assert short.returncode == 2  # more than the account holds is refused input
    assert short.stderr.decode() == "error: --amount: BANK_ID2 has only 12000000100.50 IDR available to withdraw\n"
    bad = run_cli("fund", "--member", "BANK_ID2", "--currency", "IDR", "--amount", "1.001", "--db", db, check=False)
    assert bad.returncode == 2 and b"--amount" in bad.stderr
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"id": "big", "debtor": "BANK_ID3", "creditor": "BANK_ID1", "currency": "MYR",
                             "amount": "150000.00"}) + "\n")
    assert run_cli("submit", str(f), "--db", db).stdout.decode().strip() == "big QUEUED"
    assert run_cli("cancel", "big", "--db", db).stdout.decode().strip() == "big CANCELLED"
    again = run_cli("cancel", "big", "--db", db, check=False)
    assert again.returncode == 2 and b"is CANCELLED" in again.stderr
    f.write_text(json.dumps({"id": "q2", "debtor": "BANK_ID3", "creditor": "BANK_ID1", "currency": "MYR",
                             "amount": "150000.00"}) + "\n")
    run_cli("submit", str(f), "--db", db)
    run_cli("day", "close", "--db", db)
    assert payments(cli_db)["q2"]["reason"].startswith("TM01")
    run_cli("day", "open", "--db", db)
    run_cli("member", "suspend", "BANK_ID3", "--db", db)
    f.write_text(json.dumps({"id": "s1", "debtor": "BANK_ID3", "creditor": "BANK_ID1", "currency": "IDR",
                             "amount": "1.00"}) + "\n")
    assert run_cli("submit", str(f), "--db", db).stdout.decode().startswith("s1 REJECTED AG01")
    run_cli("member", "resume", "BANK_ID3", "--db", db)
    change = tmp_path / "change.toml"
    change.write_text('[[add_member]]\nid = "BANK_SG1"\nbic = "LIONSGSG"\ncountry = "SG"\n'
                      'opening = { IDR = "1000.00" }\n\n'
                      '[[credit_line]]\nmember = "BANK_ID3"\ncurrency = "MYR"\ncredit_line = "500000.00"\n')
    run_cli("network", "apply", str(change), "--db", db)
    shown = json.loads(run_cli("network", "show", "--db", db).stdout)
    assert "BANK_SG1" in {m["id"] for m in shown["members"]}
    run_cli("verify", "--db", db)


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    proc = run_cli("submit", str(tmp_path / "missing.jsonl"), "--db", str(tmp_path / "none.db"), check=False)
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr
    proc = run_cli("export", "payments", "--db", str(tmp_path / "none.db"), check=False)
    assert proc.returncode == 2 and b"setara init" in proc.stderr  # a missing database is a usage error (#15)
    assert not (tmp_path / "none.db").exists()


def test_fx_rates_and_cross_currency_payments(cli_db: Path, tmp_path: Path) -> None:
    db = str(cli_db)
    run_cli("fx", "rate", "--provider", "FX_MERDEKA", "--pair", "IDR/THB", "--rate", "0.0021", "--db", db)
    run_cli("fx", "rate", "--provider", "FX_STRAITS", "--pair", "IDR/THB", "--rate", "0.00215", "--db", db)
    rates = run_cli("fx", "rates", "--db", db).stdout.decode()
    assert "FX_STRAITS" in rates.splitlines()[1]  # best first
    f = tmp_path / "fx.jsonl"
    f.write_text("\n".join([
        json.dumps({"id": "x1", "debtor": "BANK_ID1", "creditor": "BANK_TH1", "currency": "IDR",
                    "amount": "1000000.00", "to_currency": "THB"}),
        json.dumps({"id": "x2", "debtor": "BANK_ID1", "creditor": "BANK_TH1", "currency": "IDR",
                    "amount": "1000.00", "to_currency": "PHP"}),
    ]) + "\n")
    acks = run_cli("submit", str(f), "--db", db).stdout.decode().splitlines()
    assert acks[0] == "x1 SETTLED"
    assert acks[1].startswith("x2 REJECTED") and "no valid FX rate" in acks[1]
    p = payments(cli_db)["x1"]
    assert p["credit_amount"] == "2150.00" and p["provider"] == "FX_STRAITS"
    journal = list(csv.DictReader(io.StringIO(run_cli("export", "journal", "--db", db).stdout.decode())))
    legs = [r for r in journal if r["payment_id"] == "x1"]
    assert [(r["currency"], r["amount"]) for r in legs] == [("IDR", "1000000.00"), ("THB", "2150.00")]
    assert all("0.00215" in r["rate"] for r in legs)
    run_cli("verify", "--db", db)
