"""`setara bench`: durable submit throughput against a hand-written SQLite loop, in the same run.

The baseline is what a careful engineer would write without Setara: for each transfer, select the
debtor's balance, update both balances and insert the transfer, committing (fsync, WAL) every 1,000
transfers. Setara is measured end to end through the real CLI (`setara submit FILE`): reading the
file, validating every line, the engine, group commits fsynced before the acks are printed.
Both run on the same machine in the same run; the ratio is what the figures mean.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from setara.core.network import example_toml, load_network

MEMBERS = ["BANK_ID1", "BANK_ID2", "BANK_ID3", "BANK_MY1", "BANK_TH1", "FX_MERDEKA", "FX_STRAITS"]


_FIRST = ["Budi", "Siti", "Ahmad", "Nur", "Somchai", "Malee", "Wei", "Mei", "Jose", "Maria", "Arjun", "Priya"]
_LAST = ["Santoso", "Wijaya", "Rahman", "Tan", "Lim", "Srisuk", "Chen", "Reyes", "Kumar", "Nguyen", "Ong"]
_FORMS = ["PT", "Sdn Bhd", "Co Ltd", "Trading", "Exports", "Logistics"]


def write_payments(path: Path, n: int, seed: int = 1, parties: bool = False) -> list[tuple[str, str, str, int]]:
    """Same-currency IDR payments small enough to settle at once; with `parties`, debtor and creditor
    names drawn from a pool of trading companies (counterparties repeat, as in real trade)."""
    rng = random.Random(seed)
    pool = [f"{rng.choice(_FIRST)} {rng.choice(_LAST)} {rng.choice(_FORMS)}" for _ in range(3000)]
    rows = []
    with path.open("w") as f:
        for i in range(n):
            d, c = rng.sample(MEMBERS, 2)
            minor = rng.randint(100, 10_000_000)
            rec = {"id": f"b{i}", "debtor": d, "creditor": c, "currency": "IDR",
                   "amount": f"{minor // 100}.{minor % 100:02d}"}
            if parties:
                rec["debtor_name"] = rng.choice(pool)
                rec["creditor_name"] = rng.choice(pool)
            f.write(json.dumps(rec) + "\n")
            rows.append((f"b{i}", d, c, minor))
    return rows


def baseline_sqlite(path: Path, transfers: list[tuple[str, str, str, int]]) -> float:
    """The hand-written batched SQLite loop; returns transfers per second (wall clock)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL)")
    db.execute("CREATE TABLE transfers (id TEXT PRIMARY KEY, debit TEXT, credit TEXT, amount INTEGER)")
    db.executemany("INSERT INTO accounts VALUES (?, ?)", [(m, 10**15) for m in MEMBERS])
    start = time.perf_counter()
    db.execute("BEGIN")
    for i, (pid, d, c, amount) in enumerate(transfers, start=1):
        bal = db.execute("SELECT balance FROM accounts WHERE id = ?", (d,)).fetchone()[0]
        if bal >= amount:
            db.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, d))
            db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, c))
            db.execute("INSERT INTO transfers VALUES (?, ?, ?, ?)", (pid, d, c, amount))
        if i % 1000 == 0:
            db.execute("COMMIT")
            db.execute("BEGIN")
    db.execute("COMMIT")
    secs = time.perf_counter() - start
    db.close()
    return len(transfers) / secs


def setara_submit(workdir: Path, src: Path, n: int, db_url: str | None = None,
                  un_list: Path | None = None) -> dict[str, Any]:
    """Init the example network (loading the UN list if given) and time `setara submit` end to end
    in a child process."""
    net = workdir / "network.toml"
    net.write_text(example_toml())
    db = db_url or str(workdir / "setara.db")
    exe = [sys.executable, "-m", "setara.cli"]
    subprocess.run([*exe, "init", "--network", str(net), "--db", db], check=True, capture_output=True)
    if un_list is not None:
        subprocess.run([*exe, "lists", "import", "--source", "un-xml", str(un_list), "--db", db], check=True,
                       capture_output=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.run([*exe, "submit", str(src), "--db", db], stdout=sink, stderr=subprocess.PIPE)
    secs = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"setara submit failed: {proc.stderr.decode()[-400:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # What `submit` reports itself: from the store being open to the store being closed, without
    # starting Python, importing the program and opening the store (about 0.2 s, which dominates
    # small files).
    m = re.search(rb"(\d+) instructions in ([0-9.]+) s", proc.stderr)
    inner = float(m.group(2)) if m else secs
    return {"per_s": n / secs, "seconds": secs, "peak_rss_mb": max(peak_kib, before) / 1024,
            "submit_per_s": n / max(inner, 1e-3), "startup_s": max(0.0, secs - inner)}


def screening_cost(n: int, un_list: Path, out: Any = sys.stdout) -> dict[str, Any]:
    """Payments naming their parties, submitted without and with the UN list in force."""
    with tempfile.TemporaryDirectory(prefix="setara-bench-scr-") as tmp:
        work = Path(tmp)
        src = work / "payments.jsonl"
        write_payments(src, n, seed=3, parties=True)
        (work / "a").mkdir()
        (work / "b").mkdir()
        off = setara_submit(work / "a", src, n)
        on = setara_submit(work / "b", src, n, un_list=un_list)
    ratio = on["per_s"] / off["per_s"]
    print(f"screening, {n:,} payments naming debtor and creditor (3,000 recurring companies):", file=out)
    print(f"  no list loaded            : {off['per_s']:>10,.0f} instructions/s", file=out)
    print(f"  UN list, every name screened: {on['per_s']:>8,.0f} instructions/s ({ratio:.2f} of the above)",
          file=out)
    return {"screening_n": n, "screening_off_per_s": round(off["per_s"]), "screening_on_per_s": round(on["per_s"]),
            "screening_ratio": round(ratio, 2)}


def run(n: int = 200_000, memory_n: int = 0, out: Any = sys.stdout, un_list: Path | None = None) -> dict[str, Any]:
    load_network(example_toml())  # fail early if the example is broken
    results: dict[str, Any] = {"n": n}
    with tempfile.TemporaryDirectory(prefix="setara-bench-") as tmp:
        work = Path(tmp)
        src = work / "payments.jsonl"
        transfers = write_payments(src, n)
        base = baseline_sqlite(work / "baseline.db", transfers)
        ours = setara_submit(work, src, n)
        results.update(baseline_per_s=round(base), setara_per_s=round(ours["per_s"]),
                       ratio=round(ours["per_s"] / base, 2), setara_seconds=round(ours["seconds"], 2),
                       submit_only_per_s=round(ours["submit_per_s"]),
                       submit_only_ratio=round(ours["submit_per_s"] / base, 2),
                       startup_s=round(ours["startup_s"], 2))
        print(f"durable submit, {n:,} same-currency payments settling at once (SQLite, fsync per group commit)",
              file=out)
        print(f"  hand-written SQLite loop : {base:>10,.0f} transfers/s", file=out)
        print(f"  setara submit (CLI)      : {ours['per_s']:>10,.0f} instructions/s, process start to exit", file=out)
        print(f"  ratio                    : {ours['per_s'] / base:>10.2f}x", file=out)
        print(f"  (as timed by submit itself, without the {ours['startup_s']:.2f} s of starting the process: "
              f"{ours['submit_per_s']:,.0f}/s, {ours['submit_per_s'] / base:.2f}x)", file=out)
    if memory_n:
        with tempfile.TemporaryDirectory(prefix="setara-bench-mem-") as tmp:
            work = Path(tmp)
            src = work / "payments.jsonl"
            write_payments(src, memory_n, seed=2)
            mem = setara_submit(work, src, memory_n)
            results.update(memory_n=memory_n, memory_peak_rss_mb=round(mem["peak_rss_mb"], 1),
                           memory_run_per_s=round(mem["per_s"]))
            print(f"streaming {memory_n:,} instructions: peak RSS {mem['peak_rss_mb']:.0f} MB, "
                  f"{mem['per_s']:,.0f} instructions/s", file=out)
    if un_list is not None:
        results.update(screening_cost(min(n, 100_000), un_list, out))
    return results


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000, help="payments in the throughput run")
    ap.add_argument("--memory", type=int, default=0, help="also stream this many and report peak RSS")
    ap.add_argument("--un-list", type=Path, help="UN list XML: also measure the cost of screening")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)
    res = run(args.n, args.memory, un_list=args.un_list)
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
