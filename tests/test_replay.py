"""A member's node replays blocks (`Node.replay_block`) to what the writer stored: the same state
hash, and block by block the same journal, journal head and status events, whether payments were
logged in batches or one by one (as the API's writer logs them, which replay settles in runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setara.core import Command, DayClose, DayOpen, EngineError, Fund, Submit
from setara.node import Node
from setara.node.verify import verify_store
from tests.test_engine import T, small_network
from tests.test_golden import _golden

MEMBERS = ["A", "B", "C", "FX"]


def _replica_of(blocks: list[Any], path: Path) -> Node:
    node = Node.create_replica(str(path))
    with node.store.deferred_sync():
        for b in blocks:
            node.replay_block(b.seq, b.first_cmd, b.n_cmds, b.time_ms, b.log, b.hash)
    return node


def _same_blocks(writer: Node, replica: Node) -> None:
    ours, theirs = list(writer.store.iter_blocks()), list(replica.store.iter_blocks())
    assert [b.seq for b in ours] == [b.seq for b in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert (a.hash, a.journal, a.journal_head) == (b.hash, b.journal, b.journal_head), f"block {a.seq}"
        assert orjson.loads(a.events)["status"] == orjson.loads(b.events)["status"], f"block {a.seq}"
        assert orjson.loads(a.events)["notices"] == orjson.loads(b.events)["notices"], f"block {a.seq}"


def test_the_golden_log_replays_block_by_block_to_its_state_hash(tmp_path: Path) -> None:
    golden = _golden()
    node = Node.create_replica(str(tmp_path / "r.db"))
    try:
        for b in golden["blocks"]:
            node.replay_block(b["seq"], b["first_cmd"], b["n_cmds"], b["time_ms"], orjson.dumps(b["log"]),
                              bytes.fromhex(b["hash"]))
        assert node.engine.state_hash() == golden["state_hash"]
        assert verify_store(node.store).state_hash == golden["state_hash"]
    finally:
        node.close()


@st.composite
def days(draw: st.DrawFn) -> list[list[Command]]:
    """Blocks of mostly plain payments, some short of liquidity (they queue, and inflows release
    them), some screened, cross-currency or repeated, with funding and a day close between."""
    blocks: list[list[Command]] = []
    ids: list[str] = []
    t = T
    for _ in range(draw(st.integers(1, 6))):
        block: list[Command] = []
        for _ in range(draw(st.integers(1, 40))):
            t += draw(st.sampled_from([0, 0, 1, 5]))
            kind = draw(st.sampled_from(["pay"] * 12 + ["fx", "fund", "day"]))
            if kind == "fund":
                block.append(Fund(f"f{t}-{len(block)}", draw(st.sampled_from(MEMBERS)), "IDR",
                                  draw(st.integers(1, 30_000)), False, t))
            elif kind == "day":
                block += [DayClose(t), DayOpen(t)]
            else:
                d, c = draw(st.permutations(MEMBERS))[:2]
                pid = draw(st.sampled_from([f"p{len(ids)}"] * 6 + ids[-2:]))
                ids.append(pid)
                block.append(Submit(pid, d, c, "IDR", draw(st.integers(1, 6_000)), draw(st.integers(0, 1)),
                                    hash(pid) & 0xFFFF, "digest", draw(st.sampled_from(["clear"] * 8 + ["review"])),
                                    "t", t, "THB" if kind == "fx" else None))
        blocks.append(block)
    return blocks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days())
def test_a_replica_stores_what_the_writer_stored(tmp_path_factory: Any, blocks: list[list[Command]]) -> None:
    tmp = tmp_path_factory.mktemp("replay")
    writer = Node.create(str(tmp / "w.db"), small_network(), T)
    try:
        for cmds in blocks:
            b = writer.begin()
            for cmd in cmds:
                try:
                    writer.stage(b, cmd)
                except EngineError:
                    continue  # refused (a repeated id): not logged
            writer.flush(b)
        replica = _replica_of(list(writer.store.iter_blocks()), tmp / "r.db")
        try:
            assert replica.engine.state_hash() == writer.engine.state_hash()
            _same_blocks(writer, replica)
            assert verify_store(replica.store).state_hash == writer.engine.state_hash()
        finally:
            replica.close()
    finally:
        writer.close()


def test_a_day_from_the_api_replays_in_runs_to_the_same_blocks(tmp_path: Path) -> None:
    """Submissions logged one by one, many to a block (as `serve` logs them), some queueing for
    liquidity and released later: replayed in runs, the replica stores the writer's blocks."""
    from setara.core.instructions import Instruction

    writer = Node.create(str(tmp_path / "w.db"), small_network(), T)
    try:
        clock = iter(range(T + 1, T + 10**6))
        for k in range(20):
            ins = [Instruction(f"p{k}-{i}", MEMBERS[i % 3], MEMBERS[(i + 1 + k) % 3], "IDR",
                               25_000 if i % 37 == 5 else 1 + (i * 7919 + k) % 900)
                   for i in range(150)]
            writer.submit_instructions(ins, clock=lambda: next(clock))
            if k % 5 == 4:
                writer.execute([Fund(f"fund{k}", MEMBERS[k % 3], "IDR", 50_000, False, next(clock))])
        statuses = {s[1] for b in writer.store.iter_blocks() for s in orjson.loads(b.events)["status"]}
        assert {"SETTLED", "QUEUED"} <= statuses  # the day has both
        replica = _replica_of(list(writer.store.iter_blocks()), tmp_path / "r.db")
        try:
            assert replica.engine.state_hash() == writer.engine.state_hash()
            _same_blocks(writer, replica)
        finally:
            replica.close()
    finally:
        writer.close()

