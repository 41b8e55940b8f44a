"""`setara simtest`: the whole network under injected faults, seeded and replayable (issue 19)."""

from __future__ import annotations

import re

import pytest

from setara.replication.header import build_block_message
from setara.replication.jetstream import StreamConflict, StreamUnavailable
from setara.replication.keys import generate
from setara.simtest import sabotage
from setara.simtest.stream import SimCluster, SimLog
from setara.simtest.world import FAULTS, run_seed
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
              "forged_rejected", "dedup"):
        assert totals[k] > 0, k
    assert totals["acks"] == totals["payments"]


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
    for fault in ("crash", "byzantine-sequencer"):
        assert fault in FAULTS
        r = run_seed(5, {fault})
        assert r.ok, r.violation


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
