"""Durable submit throughput on PostgreSQL against a pgledger-style baseline, in the same run.

    .venv/bin/python bench/bench_postgres.py [--n 200000] [--url postgresql://127.0.0.1:5432/test]

Setara: `Node.submit_lines` on the example network, same-currency payments that settle at once,
each acknowledged only after its block is committed (synchronous_commit on).
Baseline: what a SQL ledger such as pgledger does per transfer, one transaction per transfer:
lock the two accounts in sorted order (SELECT … FOR UPDATE), check and update both balances,
insert the transfer row; a PL/pgSQL function so each transfer is one round trip, called from
`--threads` concurrent connections (4 by default), over `--accounts` accounts (1000 by default,
so that row-lock contention does not hold the baseline back).
Both run in fresh schemas of the same database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import orjson
import psycopg

from setara.core.network import example_toml, load_network
from setara.node import Node
from setara.store.postgres import split_url

MEMBERS = ["BANK_ID1", "BANK_ID2", "BANK_ID3", "BANK_MY1", "BANK_MY2", "BANK_TH1", "BANK_TH2", "BANK_PH1",
           "FX_MERDEKA", "FX_STRAITS"]

SERIAL_TRANSFERS = 200

BASELINE_SCHEMA_SQL = """
CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL, version BIGINT NOT NULL DEFAULT 0);
CREATE TABLE transfers (id BIGSERIAL PRIMARY KEY, from_id BIGINT NOT NULL REFERENCES accounts(id),
    to_id BIGINT NOT NULL REFERENCES accounts(id), amount BIGINT NOT NULL CHECK (amount > 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE FUNCTION transfer(p_from BIGINT, p_to BIGINT, p_amount BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    bal BIGINT;
    t_id BIGINT;
BEGIN
    -- lock both accounts in id order, so concurrent transfers cannot deadlock
    PERFORM 1 FROM accounts WHERE id = LEAST(p_from, p_to) FOR UPDATE;
    PERFORM 1 FROM accounts WHERE id = GREATEST(p_from, p_to) FOR UPDATE;
    SELECT balance INTO bal FROM accounts WHERE id = p_from;
    IF bal < p_amount THEN
        RAISE EXCEPTION 'insufficient funds in account %', p_from;
    END IF;
    UPDATE accounts SET balance = balance - p_amount, version = version + 1 WHERE id = p_from;
    UPDATE accounts SET balance = balance + p_amount, version = version + 1 WHERE id = p_to;
    INSERT INTO transfers (from_id, to_id, amount) VALUES (p_from, p_to, p_amount) RETURNING id INTO t_id;
    RETURN t_id;
END $$;
"""


def instructions(n: int, seed: int = 1) -> Iterator[bytes]:
    rng = random.Random(seed)
    for i in range(n):
        d, c = rng.sample(MEMBERS, 2)
        yield orjson.dumps({"id": f"b{i:08d}", "debtor": d, "creditor": c, "currency": "IDR",
                            "amount": f"{rng.randint(1, 5000)}.{rng.randint(0, 99):02d}"})


def bench_setara(url: str, n: int, batch: int) -> tuple[int, float]:
    node = Node.create(url, load_network(example_toml()), int(time.time() * 1000))
    lines = list(instructions(n))
    settled = 0
    try:
        started = time.perf_counter()
        for acks in node.submit_lines(lines, source="bench", batch_lines=batch):
            settled += sum(1 for a in acks if a.status == "SETTLED")
        secs = time.perf_counter() - started
    finally:
        node.close()
    if settled != n:
        raise SystemExit(f"only {settled} of {n} payments settled at once; the benchmark assumes all do")
    return n, secs


def bench_baseline(conninfo: str, schema: str, threads: int, accounts: int, seconds: float) -> tuple[int, float]:
    with psycopg.connect(conninfo, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
        c.execute(f"SET search_path TO {schema}")
        c.execute(BASELINE_SCHEMA_SQL)
        c.execute("INSERT INTO accounts (id, balance) SELECT g, 1000000000000 FROM generate_series(1, %s) g",
                  (accounts,))
    # One connection, serial: the server's commit latency, what every baseline transfer waits for.
    with psycopg.connect(conninfo, autocommit=True) as c:
        c.execute(f"SET search_path TO {schema}")
        c.execute("SET synchronous_commit TO on")
        t0 = time.perf_counter()
        for i in range(SERIAL_TRANSFERS):
            c.execute("SELECT transfer(%s, %s, %s)", (1 + i % accounts, 1 + (i + 1) % accounts, 100))
        serial_ms = (time.perf_counter() - t0) / SERIAL_TRANSFERS * 1000
    print(f"baseline, 1 connection: {serial_ms:.2f} ms per transfer (commit latency)", file=sys.stderr)
    done = [0] * threads
    stop = threading.Event()
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        rng = random.Random(100 + k)
        try:
            with psycopg.connect(conninfo, autocommit=True) as c:
                c.execute(f"SET search_path TO {schema}")
                c.execute("SET synchronous_commit TO on")
                barrier.wait()
                while not stop.is_set():
                    a, b = rng.sample(range(1, accounts + 1), 2)
                    c.execute("SELECT transfer(%s, %s, %s)", (a, b, rng.randint(100, 500_000)))
                    done[k] += 1
        except BaseException as e:  # reported after the run
            errors.append(e)
            stop.set()
            barrier.abort()

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    secs = time.perf_counter() - started
    if errors:
        raise SystemExit(f"baseline failed: {errors[0]}")
    with psycopg.connect(conninfo, autocommit=True) as c:
        c.execute(f"SET search_path TO {schema}")
        row = c.execute("SELECT (SELECT COUNT(*) FROM transfers), (SELECT SUM(balance) FROM accounts)").fetchone()
        if row is None or int(row[0]) != sum(done) + SERIAL_TRANSFERS or int(row[1]) != accounts * 1000000000000:
            raise SystemExit(f"baseline check failed: {row}, {sum(done)} transfers counted")
    return sum(done), secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="instructions for setara (default 200000)")
    ap.add_argument("--url", default="postgresql://127.0.0.1:5432/test")
    ap.add_argument("--batch", type=int, default=2000, help="lines per group commit (setara submit's default)")
    ap.add_argument("--threads", type=int, default=4, help="baseline connections (default 4)")
    ap.add_argument("--accounts", type=int, default=1000, help="baseline accounts (default 1000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="baseline duration (default 10 s)")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark schemas")
    args = ap.parse_args()

    conninfo, _ = split_url(args.url)
    tag = uuid.uuid4().hex[:8]
    s_schema, b_schema = f"bench_setara_{tag}", f"bench_baseline_{tag}"
    sep = "&" if "?" in conninfo else "?"
    try:
        with psycopg.connect(conninfo, autocommit=True) as c:
            server = c.execute("SHOW server_version").fetchone()
            sync = c.execute("SHOW synchronous_commit").fetchone()
            fsync = c.execute("SHOW fsync").fetchone()
    except psycopg.Error as e:
        raise SystemExit(f"PostgreSQL not reachable at {args.url}: {e}") from None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"PostgreSQL {server[0] if server else '?'}, synchronous_commit={sync[0] if sync else '?'}, "
          f"fsync={fsync[0] if fsync else '?'}; {os.cpu_count()} CPUs, load average {load:.1f}", file=sys.stderr)
    try:
        print(f"setara: submitting {args.n} instructions ...", file=sys.stderr)
        n, secs = bench_setara(f"{conninfo}{sep}schema={s_schema}", args.n, args.batch)
        setara_rate = n / secs
        print(f"baseline: {args.threads} connections for {args.seconds:g} s ...", file=sys.stderr)
        bn, bsecs = bench_baseline(conninfo, b_schema, args.threads, args.accounts, args.seconds)
        base_rate = bn / bsecs
    finally:
        if not args.keep:
            with psycopg.connect(conninfo, autocommit=True) as c:
                for s in (s_schema, b_schema):
                    c.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
    ratio = setara_rate / base_rate
    print(f"setara submit, durable (one commit per {args.batch}-line block): {n} instructions in {secs:.2f} s"
          f" = {setara_rate:,.0f}/s")
    print(f"pgledger-style baseline (1 transaction per transfer, {args.threads} connections): {bn} transfers in"
          f" {bsecs:.2f} s = {base_rate:,.0f}/s")
    print(f"ratio: {ratio:.1f}x (target >= 5x)")
    print(json.dumps({"setara_per_s": round(setara_rate), "baseline_per_s": round(base_rate),
                      "ratio": round(ratio, 2), "n": n, "baseline_transfers": bn, "threads": args.threads,
                      "batch": args.batch}))


if __name__ == "__main__":
    main()
