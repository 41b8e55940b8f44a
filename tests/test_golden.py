"""A golden log, recorded once from a varied day (payments plain, named, cross-currency, held,
blocked and queued; liquidity saving, cycles, reviews, holds, freezes, suspension, day close and
open, a batch of submissions), must replay to the state hash it gave when it was recorded: a
restructuring of the code must not change what a stored log means."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from setara.core import Engine, apply_logged, log_commands
from setara.core.ledger import GENESIS
from setara.store import block_hash

GOLDEN = Path(__file__).parent / "golden" / "day.json"


def _golden() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(GOLDEN.read_bytes())
    return data


def test_golden_log_chain_is_intact() -> None:
    prev = GENESIS
    for b in _golden()["blocks"]:
        h = block_hash(prev, b["seq"], b["first_cmd"], b["n_cmds"], orjson.dumps(b["log"]))
        assert h.hex() == b["hash"], f"block {b['seq']}"
        prev = h


def test_golden_log_replays_command_by_command_to_its_state_hash() -> None:
    golden = _golden()
    engine = Engine()
    n = 0
    for b in golden["blocks"]:
        for _, cmd in log_commands(b["log"]):
            engine.apply(cmd)
            n += 1
    engine.check()
    assert n == golden["commands"]
    assert engine.state_hash() == golden["state_hash"]


def test_golden_log_loads_through_the_bulk_path_to_its_state_hash() -> None:
    golden = _golden()
    engine = Engine()
    for b in golden["blocks"]:
        apply_logged(engine, b["log"])
    assert engine.state_hash() == golden["state_hash"]
