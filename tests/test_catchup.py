"""A new member's node starts from a snapshot whose state hash a quorum signed, then follows the
stream from there (docs/nodes.md, "Catching up from a snapshot"), through the CLI on a real
3-server JetStream cluster; a snapshot it cannot check is refused and leaves no store behind."""

from __future__ import annotations

import subprocess
import uuid
import zlib
from pathlib import Path

import orjson

from tests.conftest import run_cli
from tests.test_nodes import _cli, _env, _follow_all, _network, _payments, cluster, follow_once_args

__all__ = ["cluster"]  # the module's NATS cluster fixture, shared with tests/test_nodes.py


def _follow_once(cluster_urls: list[str], stream: str, member: str, key: Path, net: Path, db: Path,
                 *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*follow_once_args(cluster_urls, stream, member, key, net, db), *extra],
                          capture_output=True, timeout=600)


def _rewrite(src: Path, dst: Path, change: object) -> None:
    head, _, state = zlib.decompress(src.read_bytes()).partition(b"\n")
    header = orjson.loads(head)
    head, state = change(header, state)  # type: ignore[operator]
    dst.write_bytes(zlib.compress(orjson.dumps(head) + b"\n" + state))


def test_a_new_node_starts_from_a_quorum_signed_snapshot_and_follows_on(cluster: object, tmp_path: Path) -> None:
    urls = cluster.urls  # type: ignore[attr-defined]
    stream = "t" + uuid.uuid4().hex[:10]
    net, keys = _network(tmp_path)
    writer = tmp_path / "writer.db"
    run_cli("init", "--network", str(net), "--db", str(writer))
    day1, day2 = tmp_path / "day1.jsonl", tmp_path / "day2.jsonl"
    _payments(day1, 2000)
    env = _env(cluster, stream, keys["seq"])  # type: ignore[arg-type]
    assert _cli("submit", str(day1), "--db", str(writer), env=env).returncode == 0
    docs = _follow_all(cluster, stream, net, keys, tmp_path)  # type: ignore[arg-type]
    assert all(d["final"] for d in docs)

    snap = tmp_path / "snap.bin"
    out = run_cli("checkpoint", "snapshot", "--db", str(tmp_path / "BANK_ID1.db"), "--out", str(snap))
    seq = docs[0]["seq"]
    assert out.stdout.decode().startswith(f"snapshot of block {seq} written to {snap}")
    again = run_cli("checkpoint", "snapshot", "--db", str(tmp_path / "BANK_ID1.db"), "--out", str(snap), check=False)
    assert again.returncode == 2 and b"exists" in again.stderr

    # More payments after the snapshot; BANK_TH1's node lost its store and starts again from it.
    rows = [orjson.loads(line) for line in day1.read_bytes().splitlines()]
    with day2.open("wb") as f:
        for r in rows[:500]:
            f.write(orjson.dumps({**r, "id": "late-" + r["id"]}) + b"\n")
    assert _cli("submit", str(day2), "--db", str(writer), env=env).returncode == 0
    fresh = tmp_path / "th1-fresh.db"
    p = _follow_once(urls, stream, "BANK_TH1", keys["BANK_TH1"], net, fresh, "--snapshot", str(snap))
    assert p.returncode == 0, p.stderr.decode()
    doc = orjson.loads(p.stdout)
    writer_hash = run_cli("verify", "--db", str(writer)).stdout.strip().decode()
    assert doc["state_hash"] == writer_hash and doc["seq"] > seq  # type: ignore[operator]
    # It replayed only the blocks after the snapshot: its store begins there, and verifies from there.
    assert run_cli("verify", "--db", str(fresh)).stdout.strip().decode() == writer_hash
    late = run_cli("export", "payments", "--db", str(fresh)).stdout.decode()
    assert "late-p0," in late and "\np0," not in late
    # The other members sign the new head too; the restarted node's signature counts toward finality.
    docs = _follow_all(cluster, stream, net, keys, tmp_path)  # type: ignore[arg-type]
    assert all(d["state_hash"] == writer_hash and d["final"] for d in docs)

    # Snapshots it cannot check are refused, naming why, and leave no store behind.
    def refused(path: Path, why: bytes) -> None:
        db = tmp_path / f"refused-{path.name}.db"
        r = _follow_once(urls, stream, "BANK_TH1", keys["BANK_TH1"], net, db, "--snapshot", str(path))
        assert r.returncode == 1 and why in r.stderr, r.stderr.decode()
        assert run_cli("verify", "--db", str(db), check=False).returncode == 2  # no Setara database there

    tampered = tmp_path / "tampered.bin"
    _rewrite(snap, tampered, lambda h, s: (h, s + b" "))
    refused(tampered, b"does not hash to its checkpoint's state hash")
    few = tmp_path / "few.bin"
    _rewrite(snap, few, lambda h, s: ({**h, "checkpoint": {**h["checkpoint"],
                                                           "signatures": h["checkpoint"]["signatures"][:1]}}, s))
    refused(few, b"is not final")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a snapshot")
    refused(junk, b"not a Setara snapshot")
    other_net = tmp_path / "other.toml"
    other_net.write_text(net.read_text().replace('name = "Setara example', 'name = "Another network', 1))
    db = tmp_path / "other.db"
    r = _follow_once(urls, stream, "BANK_TH1", keys["BANK_TH1"], other_net, db, "--snapshot", str(snap))
    assert r.returncode == 1 and b"network" in r.stderr, r.stderr.decode()
