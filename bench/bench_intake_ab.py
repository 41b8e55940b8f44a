"""A/B of the intake's parsing, this tree against another checkout's, in one process.

    git worktree add /tmp/base <commit>   # or any copy of an older src/
    .venv/bin/python bench/bench_intake_ab.py --baseline-src /tmp/base/src [--lines 20000] [--runs 21]

Loads the baseline's `setara.core.instructions` and `setara.node.intake` beside this tree's and times
`parse_chunk` on the three paths a chunk can take: columnar (a chunk of plain payments), per line
(plain payments with one odd line among them) and full (payments with party data). Runs alternate
between the two, timed in CPU time of this thread (a loaded machine disturbs wall time far more),
and the best of `--runs` is reported, with the ratio. Prints a JSON summary to stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
import timeit
from pathlib import Path
from types import ModuleType
from typing import Any

from setara import intake
from setara.core.network import example_toml, load_network
from setara.ports import NullScreening

MEMBERS = ["BANK_ID1", "BANK_ID2", "BANK_ID3", "BANK_MY1", "BANK_TH1"]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def baseline_intake(src: Path) -> ModuleType:
    """The baseline's intake module, bound to the baseline's instructions module."""
    instructions = _load("baseline_instructions", src / "setara" / "instructions.py")
    ours = sys.modules["setara.core.instructions"]
    sys.modules["setara.core.instructions"] = instructions
    try:
        return _load("baseline_intake", src / "setara" / "intake.py")
    finally:
        sys.modules["setara.core.instructions"] = ours


def lines(n: int, seed: int = 1) -> dict[str, list[bytes]]:
    rng = random.Random(seed)

    def one(i: int, extra: dict[str, str] | None = None) -> bytes:
        d, c = rng.sample(MEMBERS, 2)
        m = rng.randint(100, 10_000_000)
        rec = {"id": f"b{i}", "debtor": d, "creditor": c, "currency": "IDR", "amount": f"{m // 100}.{m % 100:02d}",
               **(extra or {})}
        return (json.dumps(rec) + "\n").encode()

    plain = [one(i) for i in range(n)]
    return {"columnar": plain, "per_line": [*plain[:-1], one(n, {"amount": "1.5"})],
            "full": [one(i, {"debtor_name": "Budi Santoso PT"}) for i in range(n // 2)]}


def run(baseline_src: Path, n: int, runs: int) -> dict[str, Any]:
    base = baseline_intake(baseline_src)
    net, key, screening = load_network(example_toml()), bytes(32), NullScreening()
    out: dict[str, Any] = {}
    for path, chunk in lines(n).items():
        before: list[float] = []
        after: list[float] = []
        for _ in range(runs):
            before.append(timeit.timeit(lambda c=chunk: base.parse_chunk(c, 1, net, key, screening, 0), number=1,
                                        timer=time.thread_time))
            after.append(timeit.timeit(lambda c=chunk: intake.parse_chunk(c, 1, net, key, screening, 0), number=1,
                                       timer=time.thread_time))
        b, a = min(before) / len(chunk), min(after) / len(chunk)
        out[path] = {"baseline_ns_per_line": round(b * 1e9), "ns_per_line": round(a * 1e9),
                     "ratio": round(a / b, 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-src", type=Path, required=True, help="the src/ directory of the other checkout")
    ap.add_argument("--lines", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    if not (args.baseline_src / "setara" / "intake.py").is_file():
        ap.error(f"--baseline-src: no setara/intake.py under {args.baseline_src}")
    print(json.dumps(run(args.baseline_src, max(100, min(args.lines, 200_000)), max(1, min(args.runs, 200)))))


if __name__ == "__main__":
    main()
