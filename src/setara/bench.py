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


def company_pool(size: int, seed: int = 1) -> list[str]:
    """`size` distinct trading-company names (counterparties recur, as in real trade)."""
    rng = random.Random(seed)
    names: dict[str, None] = {}
    while len(names) < size:
        names[f"{rng.choice(_FIRST)} {rng.choice(_LAST)} {rng.choice(_FORMS)} {rng.randint(1, 9999)}"] = None
    return list(names)


def write_payments(path: Path, n: int, seed: int = 1, parties: bool = False, *, pool_size: int = 3000,
                   currencies: tuple[str, ...] = ("IDR",), queue_share: float = 0.0,
                   ) -> list[tuple[str, str, str, int]]:
    """Same-currency payments small enough to settle at once, in `currencies` (drawn at random);
    with `parties`, debtor and creditor names drawn from a pool of `pool_size` trading companies.
    A `queue_share` of them are in PHP, which the example network settles in netting cycles: they
    queue until the cycle closes."""
    rng = random.Random(seed)
    if pool_size == 3000:  # the pool earlier runs used, kept so their figures stay comparable
        pool = [f"{rng.choice(_FIRST)} {rng.choice(_LAST)} {rng.choice(_FORMS)}" for _ in range(3000)]
    else:
        pool = company_pool(pool_size, seed)
    rows = []
    with path.open("w") as f:
        for i in range(n):
            d, c = rng.sample(MEMBERS, 2)
            minor = rng.randint(100, 10_000_000) if currencies == ("IDR",) else rng.randint(100, 20_000)
            ccy = "PHP" if queue_share and rng.random() < queue_share else rng.choice(currencies)
            rec = {"id": f"b{i}", "debtor": d, "creditor": c, "currency": ccy,
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


def baseline_sqlite_json(path: Path, src: Path) -> float:
    """The loop as issue 17 states it: for each line of the JSON Lines file, json.loads, select the
    debtor's balance, update both balances, insert the transfer, commit every 1,000 (WAL, fsync).
    Returns transfers per second (wall clock, reading the file included)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL)")
    db.execute("CREATE TABLE transfers (id TEXT PRIMARY KEY, debit TEXT, credit TEXT, amount INTEGER)")
    db.executemany("INSERT INTO accounts VALUES (?, ?)", [(m, 10**15) for m in MEMBERS])
    start = time.perf_counter()
    n = 0
    db.execute("BEGIN")
    with src.open("rb") as f:
        for n, line in enumerate(f, start=1):
            rec = json.loads(line)
            pid, d, c, amount = rec["id"], rec["debtor"], rec["creditor"], int(rec["amount"].replace(".", ""))
            bal = db.execute("SELECT balance FROM accounts WHERE id = ?", (d,)).fetchone()[0]
            if bal >= amount:
                db.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, d))
                db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, c))
                db.execute("INSERT INTO transfers VALUES (?, ?, ?, ?)", (pid, d, c, amount))
            if n % 1000 == 0:
                db.execute("COMMIT")
                db.execute("BEGIN")
    db.execute("COMMIT")
    secs = time.perf_counter() - start
    db.close()
    return n / secs


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
    return timed_submit(db, src, n)


_PEAK_OF_CHILD = ("import resource, subprocess, sys\n"
                  "code = subprocess.run(sys.argv[1:]).returncode\n"
                  "sys.stderr.write(f'peak_kib={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n')\n"
                  "sys.exit(code)\n")


def timed_submit(db: str, src: Path, n: int) -> dict[str, Any]:
    """Time `setara submit SRC --db DB` end to end in a child process."""
    # The peak RSS of `submit` (and its intake workers) alone: ru_maxrss of children is the largest
    # of every child this process ever waited for (`lists import` included), so `submit` runs under
    # a small parent of its own that reports its children's peak.
    exe = [sys.executable, "-c", _PEAK_OF_CHILD, sys.executable, "-m", "setara.cli"]
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.run([*exe, "submit", str(src), "--db", db], stdout=sink, stderr=subprocess.PIPE)
    secs = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"setara submit failed: {proc.stderr.decode()[-400:]}")
    peak = re.search(rb"peak_kib=(\d+)", proc.stderr)
    if peak is None:
        raise RuntimeError("the submit's peak RSS was not reported")
    peak_kib = int(peak.group(1))
    # What `submit` reports itself: from the store being open to the store being closed, without
    # starting Python, importing the program and opening the store (about 0.2 s, which dominates
    # small files).
    m = re.search(rb"(\d+) instructions in ([0-9.]+) s", proc.stderr)
    inner = float(m.group(2)) if m else secs
    return {"per_s": n / secs, "seconds": secs, "peak_rss_mb": peak_kib / 1024,
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


NAMED_POOL = 20_000
NAMED_CURRENCIES = ("IDR", "MYR", "THB")  # the example network's RTGS currencies


def first_sight_us(un_list: Path, names: list[str]) -> float:
    """Microseconds per name the matcher has not seen, averaged over `names`, on one core (the
    list loaded and its index built before timing)."""
    from setara.compliance.lists import load_list_path
    from setara.node.screening import PaymentScreening

    screener = PaymentScreening({"un-xml": (1, load_list_path("un-xml", un_list))}).screener(["un-xml"])
    assert screener is not None
    screener.screen("warm up the index", None)
    start = time.perf_counter()
    for name in names:
        screener.screen(name, None)
    return (time.perf_counter() - start) / len(names) * 1e6


def named(n: int = 300_000, un_list: Path | None = None, memory_n: int = 0, mix: bool = True,
          out: Any = sys.stdout) -> dict[str, Any]:
    """Issue 17: named payments (20,000 recurring companies, the RTGS currencies), against the
    hand-written loop over the same transfers in the same run: without a list, with the UN list
    in force, the matcher's first sight of a name, peak RSS streaming `memory_n` of them, and a mix
    where ~30% queue (PHP netting cycles) against the same payments all settling at once."""
    results: dict[str, Any] = {"named_n": n}
    with tempfile.TemporaryDirectory(prefix="setara-bench-named-") as tmp:
        work = Path(tmp)
        src = work / "payments.jsonl"
        transfers = write_payments(src, n, seed=4, parties=True, pool_size=NAMED_POOL, currencies=NAMED_CURRENCIES)
        base = baseline_sqlite_json(work / "baseline.db", src)
        plain_base = baseline_sqlite(work / "baseline-plain.db", transfers)
        (work / "a").mkdir()
        off = setara_submit(work / "a", src, n)
        results.update(named_baseline_per_s=round(base), named_per_s=round(off["per_s"]),
                       named_ratio=round(off["per_s"] / base, 2))
        print(f"named payments, {n:,} across {', '.join(NAMED_CURRENCIES)}, parties from {NAMED_POOL:,} companies",
              file=out)
        print(f"  hand-written SQLite loop : {base:>10,.0f} transfers/s (json.loads per line; without it, over "
              f"prepared tuples: {plain_base:,.0f}/s)", file=out)
        results.update(named_plain_baseline_per_s=round(plain_base))
        print(f"  setara, no list          : {off['per_s']:>10,.0f} instructions/s, {off['per_s'] / base:.2f}x "
              f"(target >= 1.5x)", file=out)
        if un_list is not None:
            (work / "b").mkdir()
            on = setara_submit(work / "b", src, n, un_list=un_list)
            results.update(named_un_per_s=round(on["per_s"]), named_un_ratio=round(on["per_s"] / base, 2))
            print(f"  setara, UN list in force : {on['per_s']:>10,.0f} instructions/s, {on['per_s'] / base:.2f}x "
                  f"(target >= 1.0x and >= 75,000/s)", file=out)
            # A later run on the same store, same list version, the same companies in new payments:
            # each name's decision comes from the store's screening cache (issue 17), not the matcher.
            again = work / "again.jsonl"
            again.write_bytes(src.read_bytes().replace(b'"id": "b', b'"id": "w'))
            warm = timed_submit(str(work / "b" / "setara.db"), again, n)
            results.update(named_un_warm_per_s=round(warm["per_s"]), named_un_warm_ratio=round(warm["per_s"] / base, 2))
            print(f"    the same companies again, a later run (names cached in the store): {warm['per_s']:,.0f}/s, "
                  f"{warm['per_s'] / base:.2f}x", file=out)
            us = first_sight_us(un_list, company_pool(2000, seed=99))
            results.update(first_sight_us=round(us, 1))
            print(f"  first sight of a name    : {us:>10,.1f} us, averaged over 2,000 names (target <= 50)",
                  file=out)
        if mix:
            msrc = work / "mix.jsonl"
            write_payments(msrc, n, seed=4, parties=True, pool_size=NAMED_POOL, currencies=NAMED_CURRENCIES,
                           queue_share=0.3)
            (work / "c").mkdir()
            m = setara_submit(work / "c", msrc, n)
            per_mix, per_once = m["seconds"] / n, off["seconds"] / n
            results.update(mix_per_s=round(m["per_s"]), mix_cost_ratio=round(per_mix / per_once, 2))
            print(f"  ~30% queueing (no list)  : {m['per_s']:>10,.0f} instructions/s, "
                  f"{per_mix / per_once:.2f}x the per-payment cost of settling at once (target <= 2x)", file=out)
    if memory_n:
        with tempfile.TemporaryDirectory(prefix="setara-bench-named-mem-") as tmp:
            work = Path(tmp)
            src = work / "payments.jsonl"
            write_payments(src, memory_n, seed=5, parties=True, pool_size=NAMED_POOL, currencies=NAMED_CURRENCIES)
            mem = setara_submit(work, src, memory_n, un_list=un_list)
            results.update(named_memory_n=memory_n, named_memory_peak_rss_mb=round(mem["peak_rss_mb"], 1),
                           named_memory_per_s=round(mem["per_s"]))
            print(f"  streaming {memory_n:,} named{' (UN list)' if un_list else ''}: peak RSS "
                  f"{mem['peak_rss_mb']:.0f} MB (target <= 300), {mem['per_s']:,.0f} instructions/s", file=out)
    return results


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000, help="payments in the throughput run")
    ap.add_argument("--memory", type=int, default=0, help="also stream this many and report peak RSS")
    ap.add_argument("--un-list", type=Path, help="UN list XML: also measure the cost of screening")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    ap.add_argument("--named", action="store_true",
                    help="issue 17's named-payment runs instead (--n payments, --memory streamed, --un-list)")
    args = ap.parse_args(argv)
    res = named(args.n, args.un_list, args.memory) if args.named else run(args.n, args.memory, un_list=args.un_list)
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
