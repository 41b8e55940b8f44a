"""`setara simtest`: the whole network under injected faults, seeded and replayable (issue 19)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from setara.node.node import SetaraError
from setara.replication.header import build_block_message
from setara.replication.jetstream import StreamConflict, StreamUnavailable
from setara.replication.keys import generate
from setara.simtest import sabotage
from setara.simtest.stream import SimCluster, SimLog
from setara.simtest.world import FAULTS, LEASE_TTL_MS, World, run_seed
from tests.conftest import run_cli

CI_SEEDS = 100


def test_100_seeds_with_every_fault_keep_every_invariant() -> None:
    p = run_cli("simtest", "--seed", "1", "--seeds", str(CI_SEEDS), check=False)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    assert f"seeds 1..{CI_SEEDS} ({CI_SEEDS}), faults all: every invariant held" in out
    totals = dict((k, int(v)) for k, v in re.findall(r"(\w+) (\d+)(?:,|$)", out.split("totals: ")[1]))
    # The faults really happened, and the node code really met them.
    for k in ("crashes", "lost_writes", "partitions", "corruptions_detected", "byzantine_blocks", "lies", "proofs",
              "forged_rejected", "dedup", "stops", "pauses", "failovers", "fenced_writes", "set_aside"):
        assert totals[k] > 0, k
    assert totals["acks"] == totals["payments"]
    assert totals["epochs"] > CI_SEEDS  # sequencers changed hands


def test_a_seed_prints_the_same_result_every_time() -> None:
    a = run_cli("simtest", "--seed", "42", "--seeds", "3").stdout
    b = run_cli("simtest", "--seed", "42", "--seeds", "3").stdout
    assert a == b
    assert run_seed(7).stats == run_seed(7).stats


@pytest.mark.parametrize("name", sabotage.NAMES)
def test_each_sabotage_is_caught_within_100_seeds_and_its_seed_reproduces_it(name: str) -> None:
    p = run_cli("simtest", "--seed", "1", "--seeds", "100", "--sabotage", name, check=False)
    out = p.stdout.decode()
    assert p.returncode == 1, out
    first, repro = out.splitlines()[:2]
    m = re.match(r"seed (\d+): FAILED at step \d+: (.+)", first)
    assert m is not None, first
    assert repro.strip() == f"reproduce: setara simtest --seed {m.group(1)} --sabotage {name}"
    again = run_cli(*repro.strip().removeprefix("reproduce: setara ").split(), check=False)
    assert again.returncode == 1
    assert again.stdout.decode().splitlines()[0] == first
    assert sabotage.ACTIVE is None  # the switch is off again after the run


def test_without_faults_every_block_is_final_and_every_payment_answered() -> None:
    r = run_seed(3, set())
    assert r.ok, r.violation
    assert r.stats["acks"] == r.stats["payments"] > 0
    assert r.stats["final_seq"] == r.stats["blocks"]


@pytest.mark.parametrize("args, word", [
    (("--faults", "meteor"), "--faults"), (("--sabotage", "nope"), "--sabotage"), (("--seeds", "0"), "--seeds"),
])
def test_bad_options_exit_2_with_one_line(args: tuple[str, ...], word: str) -> None:
    p = run_cli("simtest", *args, check=False)
    assert p.returncode == 2
    err = p.stderr.decode().strip().splitlines()
    assert len(err) == 1 and word in err[0]
    assert p.stdout == b""


def test_a_single_fault_runs_alone() -> None:
    for fault in ("crash", "byzantine-sequencer", "failover"):
        assert fault in FAULTS
        r = run_seed(5, {fault})
        assert r.ok, r.violation


# ---------------------------------------------------------------- failover, step by step

def _world(tmp_path: Path) -> World:
    w = World(11, {"failover"}, tmp_path)
    for h in w.hosts:
        w.start_host(h)
    return w


def _submit(w: World, h: object, n: int) -> list[str]:
    """n new payments to sequencer h; the ids it acknowledged."""
    node = h.node  # type: ignore[attr-defined]
    lines = [w._new_payment() for _ in range(n)]
    acked = [a.id for acks in node.submit_lines(lines, source="t", batch_lines=100, clock=w.clock) for a in acks]
    return [i for i in acked if i is not None]


def test_the_standby_takes_over_only_once_the_lease_lapsed_and_the_old_sequencer_is_fenced(tmp_path: Path) -> None:
    w = _world(tmp_path)
    try:
        active, standby = w.hosts
        assert active.node is not None and standby.standby is not None
        acked = _submit(w, active, 5)
        assert len(acked) == 5
        w.crash_writer(active)  # stops renewing
        w._advance_clock(LEASE_TTL_MS - 1)
        w.standby_round(standby)
        assert standby.standby is not None and standby.node is None  # the lease still holds
        w._advance_clock(1)
        w.standby_round(standby)
        assert standby.node is not None and w.stats["failovers"] == 1  # took over, at the stream's head
        for pid in acked:
            assert standby.node.engine.status(pid) is not None
        head = w.cluster.blocks()[-1].data.header  # type: ignore[union-attr]
        assert (head.signer, head.epoch) == (standby.name, standby.epoch) and standby.epoch > active.epoch
        w._check_stream_epochs()
        assert w.epoch_started[-1] == (head.seq, standby.epoch)  # an EpochStart opened the new epoch
        # The old sequencer comes back: refused (another holds the lease) and set aside as a standby.
        w.start_host(active)
        assert active.node is None and active.role == "standby" and w.stats["set_aside"] == 1
        w.start_host(active)
        w.standby_round(active)
        assert active.standby is not None and active.standby.node.block_seq == head.seq
        w.check()
    finally:
        w.close()


def test_a_writer_waking_from_a_pause_is_refused_and_its_payments_go_to_the_new_one(tmp_path: Path) -> None:
    w = _world(tmp_path)
    try:
        active, standby = w.hosts
        active.paused_until = 10**9  # frozen: no renewal
        w._advance_clock(LEASE_TTL_MS + 1)
        w.standby_round(standby)
        assert standby.node is not None
        # It wakes with its stale lease and stream position: the stream refuses its block.
        assert active.node is not None and active.node.replicator.lease_lost is None
        with pytest.raises(SetaraError, match="did not publish"):
            _submit(w, active, 3)
        w.crash_writer(active)
        # The client resubmits what was not answered to the sequencer now writing.
        unanswered = [p.line for p in w.payments.values() if p.ack is None]
        assert len(unanswered) == 3
        w._submit(standby.node, unanswered)
        assert all(p.ack is not None for p in w.payments.values())
        w._check_stream_epochs()
        assert {b.data.header.signer for b in w.cluster.blocks()[-2:]} == {standby.name}  # type: ignore[union-attr]
    finally:
        w.close()


def test_the_lease_renews_on_the_simulated_clock_and_a_lapsed_one_stops_the_writer(tmp_path: Path) -> None:
    w = _world(tmp_path)
    try:
        active = w.hosts[0]
        rep = active.node.replicator  # type: ignore[union-attr]
        w._advance_clock(10 * LEASE_TTL_MS)  # renewed every third of the TTL all along
        assert w.cluster.lease_value is not None and w.cluster.lease_value[0] == active.name
        assert rep.lease_lost is None
        w.cluster.partitioned.add(active.name)
        w._advance_clock(LEASE_TTL_MS + 1)  # its renewals cannot reach the stream: the lease lapses
        w.cluster.partitioned.clear()
        w._advance_clock(LEASE_TTL_MS // 3)
        assert rep.lease_lost is not None
        with pytest.raises(SetaraError, match="lost the sequencer lease"):
            _submit(w, active, 1)
    finally:
        w.close()


# ---------------------------------------------------------------- the simulated stream's semantics

def _block(key: object, seq: int, prev: bytes, log: bytes = b"[]") -> object:
    return build_block_message(key, signer="seq-1", network="n", epoch=1, seq=seq, first_cmd=seq,  # type: ignore[arg-type]
                               n_cmds=1, time_ms=seq, prev_hash=prev, log=log)


def test_sim_stream_appends_once_per_message_id_and_refuses_another_history() -> None:
    import random

    c = SimCluster(random.Random(1), lambda: 0)
    key = generate()
    log = SimLog(c, "writer", lambda: 0)
    b1 = _block(key, 1, bytes(32))
    assert log.publish_block(b1) == 1  # type: ignore[arg-type]
    assert log.publish_block(b1) == 1  # type: ignore[arg-type]  # a retry is stored once
    other = SimLog(c, "second-writer", lambda: 0)
    with pytest.raises(StreamConflict):
        other.publish_block(_block(key, 1, bytes(32), b'[["x"]]'))  # type: ignore[arg-type]
    assert [m.seq for m in c.blocks()] == [1]


def test_sim_stream_needs_a_majority_and_a_reachable_client() -> None:
    import random

    c = SimCluster(random.Random(1), lambda: 0)
    log = SimLog(c, "writer", lambda: 0)
    c.up = [True, False, False]
    with pytest.raises(StreamUnavailable):
        log.last_block()
    c.up = [True, True, False]
    assert log.last_block() is None
    c.partitioned.add("writer")
    with pytest.raises(StreamUnavailable):
        log.last_block()


def test_sim_lease_expires_with_its_ttl_on_the_simulated_clock() -> None:
    import random

    now = [0]
    c = SimCluster(random.Random(1), lambda: now[0])
    a, b = SimLog(c, "a", lambda: 0), SimLog(c, "b", lambda: 0)
    lease = a.acquire_lease("seq-a", 5.0)
    assert lease is not None and b.acquire_lease("seq-b", 5.0) is None
    now[0] = 4_000
    lease = a.renew_lease(lease)
    now[0] = 8_000
    assert b.acquire_lease("seq-b", 5.0) is None  # renewed at 4 s: held until 9 s
    now[0] = 9_000
    taken = b.acquire_lease("seq-b", 5.0)
    assert taken is not None and taken.epoch > lease.epoch
