"""Load benchmark of `setara serve` on loopback: batch throughput and paced single-POST latency.

    .venv/bin/python bench/bench_api.py [--payments 60000] [--batch 1000] [--rate 500] [--seconds 10]
    .venv/bin/python bench/bench_api.py --payments 100000 --rate 200 --seconds 20 --statements 20

Starts a server on a fresh example network in a temporary directory (127.0.0.1, a free port), then
1. throughput: `--clients` concurrent clients POST `/v1/payments/batch` with `--batch` instructions
   each until `--payments` are acknowledged (every acknowledgement is durable: fsynced group commit);
2. latency: single `POST /v1/payments` at a paced `--rate` requests/s for `--seconds` (open loop: each
   request's latency counts from its scheduled send time, so a stalled server cannot hide queueing).
3. statements (`--statements N`): the paced phase again, this time with N other clients (in a process
   of their own, so that they do not slow the load generator) each paging through its member's full
   JSON statement (pages of 1000) over and over; POST p99 with statements minus p99 without, and the
   server's RSS before, after, and 5 s after; `--statement-rounds R` repeats the phase. The entries
   read model is caught up by one statement before the baseline, as a running server keeps it.
Bounded in count and time (`--max-seconds` per phase); only loopback traffic. Prints a JSON summary
to stdout, progress to stderr. Targets: >= 2,000 payments/s batched; p99 < 50 ms at 500 requests/s;
20 parallel statements raise POST p99 by at most 50 ms, with the server's RSS flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from setara.api.keys import issue_key
from setara.core.network import example_toml, load_network
from setara.node import Node
from setara.store import open_store

MEMBERS = ("BANK_ID1", "BANK_ID2", "BANK_ID3", "BANK_MY1", "BANK_MY2", "BANK_TH1")


def log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_cmd(db: str, port: int) -> list[str]:
    from typer.main import get_command

    from setara.cli import app

    if "serve" in getattr(get_command(app), "commands", {}):
        return [sys.executable, "-m", "setara.cli", "serve", "--db", db, "--port", str(port)]
    return [sys.executable, "-m", "setara.api", "serve", "--db", db, "--port", str(port)]


def start(db: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(serve_cmd(db, port), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not come up in 30 s")


def throughput(base: str, keys: dict[str, str], total: int, batch: int, clients: int,
               max_s: float) -> dict[str, object]:
    done = [0] * clients
    errors: list[str] = []
    per_client = (total + clients - 1) // clients
    started = time.perf_counter()

    def worker(n: int) -> None:
        debtor = MEMBERS[n % len(MEMBERS)]
        creditor = MEMBERS[(n + 1) % len(MEMBERS)]
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {keys[debtor]}"}) as c:
            sent = 0
            while sent < per_client and time.perf_counter() - started < max_s:
                k = min(batch, per_client - sent)
                items = [{"id": f"T{n}-{sent + i}", "debtor": debtor, "creditor": creditor, "currency": "IDR",
                          "amount": f"{1 + (sent + i) % 97}.00"} for i in range(k)]
                r = c.post("/v1/payments/batch", json=items)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                res = r.json()["results"]
                done[n] += sum(1 for x in res if x["status"] in ("SETTLED", "QUEUED", "HELD"))
                sent += k

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.perf_counter() - started
    n = sum(done)
    return {"payments": n, "seconds": round(secs, 3), "payments_per_s": round(n / secs, 1), "batch": batch,
            "clients": clients, "errors": errors[:5]}


class _Pool:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator shares two cores with
    the server, so it must cost far less per request than a full client library."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.opened = 0

    async def _get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle.empty() and self.opened < self.size:
            self.opened += 1
            return await asyncio.open_connection(self.host, self.port)
        return await self.idle.get()

    async def post(self, path: str, body: bytes, key: str) -> int:
        r, w = await self._get()
        w.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        if length:
            await r.readexactly(length)
        self.idle.put_nowait((r, w))
        return status

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


async def paced(port: int, keys: dict[str, str], rate: float, seconds: float, max_s: float,
                prefix: str = "L") -> dict[str, object]:
    count = int(rate * seconds)
    lat_ms: list[float] = []
    errors: list[str] = []
    pool = _Pool("127.0.0.1", port, 128)
    t0 = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        debtor = MEMBERS[i % len(MEMBERS)]
        body = json.dumps({"id": f"{prefix}-{i}", "debtor": debtor, "creditor": MEMBERS[(i + 1) % len(MEMBERS)],
                           "currency": "IDR", "amount": f"{1 + i % 89}.50"}).encode()
        try:
            status = await pool.post("/v1/payments", body, keys[debtor])
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            errors.append(type(e).__name__)
            return
        lat_ms.append((time.perf_counter() - due) * 1000)
        if status != 201:
            errors.append(str(status))

    started = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), timeout=max_s)
    finally:
        pool.close()
    secs = time.perf_counter() - started
    lat_ms.sort()

    def q(p: float) -> float:
        return round(lat_ms[min(len(lat_ms) - 1, int(p * len(lat_ms)))], 2) if lat_ms else float("nan")

    return {"requests": count, "rate_target": rate, "rate_achieved": round(len(lat_ms) / secs, 1),
            "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "max_ms": round(lat_ms[-1], 2) if lat_ms else None,
            "errors": len(errors), "error_samples": errors[:5]}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _statement_client(base: str, key: str, stop: object, out: object, limit: int = 1000) -> None:
    """Page through the key's member's IDR statement until told to stop; count pages and entries."""
    import multiprocessing.synchronize as ms

    assert isinstance(stop, ms.Event)
    pages = entries = 0
    with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {key}"}) as c:
        while not stop.is_set():
            after = 0
            while not stop.is_set():
                r = c.get(f"/v1/statements/IDR?limit={limit}&after={after}")
                if r.status_code != 200:
                    out.put(("error", r.status_code))  # type: ignore[attr-defined]
                    return
                # Only the page's tail is parsed: the clients share the machine with the server.
                tail = r.content[r.content.rindex(b"], ") + 2:]
                body = json.loads(b"{" + tail)
                pages += 1
                entries += int(body["count"])
                if body["next_after"] is None:
                    break
                after = body["next_after"]
    out.put(("done", pages, entries))  # type: ignore[attr-defined]


def _statements_proc(base: str, keys: list[str], stop: object, out: object, limit: int) -> None:
    ts = [threading.Thread(target=_statement_client, args=(base, k, stop, out, limit)) for k in keys]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def statements_phase(base: str, port: int, pid: int, keys: dict[str, str], n: int, rate: float, seconds: float,
                     max_s: float, limit: int = 1000, prefix: str = "S") -> dict[str, object]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    out = ctx.Queue()
    who = [keys[MEMBERS[i % len(MEMBERS)]] for i in range(n)]
    log(f"statements: {n} parallel statement clients during {rate:.0f} POST/s for {seconds:.0f} s …")
    rss_before = rss_mb(pid)
    proc = ctx.Process(target=_statements_proc, args=(base, who, stop, out, limit))
    proc.start()
    time.sleep(1.0)  # let every client be in the middle of a statement
    lat = asyncio.run(paced(port, keys, rate, seconds, max_s, prefix=prefix))  # new ids: every POST is a new payment
    stop.set()
    proc.join(max_s)
    if proc.is_alive():
        proc.kill()
    rss_after = rss_mb(pid)
    time.sleep(5)
    rss_settled = rss_mb(pid)
    pages = entries = 0
    errors: list[object] = []
    while not out.empty():
        m = out.get()
        if m[0] == "done":
            pages += m[1]
            entries += m[2]
        else:
            errors.append(m[1])
    return {"clients": n, "page_limit": limit, "latency_single": lat, "statement_pages": pages,
            "statement_entries": entries, "statement_errors": errors[:5], "rss_mb_before": rss_before,
            "rss_mb_after": rss_after, "rss_mb_5s_after": rss_settled}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payments", type=int, default=60_000, help="payments in the throughput phase (0: skip it)")
    ap.add_argument("--batch", type=int, default=1000, help="instructions per batch request")
    ap.add_argument("--clients", type=int, default=4, help="concurrent batch clients")
    ap.add_argument("--rate", type=float, default=500.0, help="paced single POSTs per second")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the paced phase")
    ap.add_argument("--statements", type=int, default=0, help="parallel statement clients in a third phase")
    ap.add_argument("--statement-rounds", type=int, default=1, help="statement phases in a row (RSS over time)")
    ap.add_argument("--statement-limit", type=int, default=1000, help="entries a statement page (1-1000)")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="bound on each phase")
    a = ap.parse_args()
    if not (0 <= a.payments <= 1_000_000 and 0 < a.batch <= 10_000 and 0 < a.rate <= 5000 and 0 < a.seconds <= 120):
        raise SystemExit("bounds: payments <= 1e6, batch <= 10000, rate <= 5000, seconds <= 120")
    if not (0 <= a.statements <= 100 and 1 <= a.statement_rounds <= 10 and 1 <= a.statement_limit <= 1000):
        raise SystemExit("bounds: statements <= 100, statement rounds 1-10, statement limit 1-1000")
    with tempfile.TemporaryDirectory(prefix="setara-bench-") as tmp:
        db = str(Path(tmp) / "bench.db")
        Node.create(db, load_network(example_toml()), 1_700_000_000_000).close()
        store = open_store(db)
        keys = {m: issue_key(store, "member", m)[1] for m in MEMBERS}
        store.close()
        port = free_port()
        proc = start(db, port)
        base = f"http://127.0.0.1:{port}"
        st: dict[str, object] = {"skipped": True}
        try:
            tp: dict[str, object] = {"skipped": True}
            if a.payments:
                log(f"throughput: {a.payments} payments in batches of {a.batch}, {a.clients} clients …")
                tp = throughput(base, keys, a.payments, a.batch, a.clients, a.max_seconds)
                log(f"  {tp['payments_per_s']} payments/s")
            if a.statements:  # catch the entries read model up once, as a serving node keeps it
                t = time.perf_counter()
                httpx.get(f"{base}/v1/statements/IDR?limit=1", timeout=600,
                          headers={"Authorization": f"Bearer {keys[MEMBERS[0]]}"}).raise_for_status()
                log(f"  entries read model caught up in {time.perf_counter() - t:.1f} s")
            log(f"latency: {a.rate:.0f} requests/s for {a.seconds:.0f} s …")
            lat = asyncio.run(paced(port, keys, a.rate, a.seconds, a.max_seconds))
            log(f"  p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, errors {lat['errors']}")
            rounds: list[dict[str, object]] = []
            for r in range(a.statement_rounds if a.statements else 0):
                st = statements_phase(base, port, proc.pid, keys, a.statements, a.rate, a.seconds, a.max_seconds,
                                      a.statement_limit, prefix=f"S{r}")
                with_lat = st["latency_single"]
                assert isinstance(with_lat, dict)
                st["p99_increase_ms"] = round(float(with_lat["p99_ms"]) - float(str(lat["p99_ms"])), 2)
                log(f"  p99 {with_lat['p99_ms']} ms with statements ({st['p99_increase_ms']:+} ms), "
                    f"RSS {st['rss_mb_before']} → {st['rss_mb_after']} → {st['rss_mb_5s_after']} MB")
                rounds.append(st)
            if rounds:
                st = {"rounds": rounds}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        verify = subprocess.run([sys.executable, "-m", "setara.cli", "verify", "--db", db], capture_output=True,
                                text=True, timeout=600)
    summary = {"throughput_batch": tp, "latency_single": lat, "statements": st, "verify_ok": verify.returncode == 0,
               "cpus": os.cpu_count(), "python": sys.version.split()[0],
               "targets": {"payments_per_s": 2000, "p99_ms_at_500_rps": 50,
                           "p99_increase_ms_with_20_statements": 50}}
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
