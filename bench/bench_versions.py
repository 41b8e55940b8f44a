"""Durable submit of the same payments by two versions of setara, alternated in one run.

    python bench/bench_versions.py --old-src PATH/TO/OLD/src [--n 200000] [--rounds 3]

Each round times `setara submit FILE` end to end (a fresh store, the example network) with this
checkout's code and with the code at --old-src (put first on PYTHONPATH), alternating so that a
noisy machine affects both alike. Prints each version's median instructions/s and their ratio.
Used for issue #13: the restructuring must stay within 5% of the code before it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from setara.bench import write_payments
from setara.core.network import example_toml


def _submit(src: Path, work: Path, pythonpath: str | None) -> float:
    env = {**os.environ}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    net = work / "network.toml"
    net.write_text(example_toml())
    db = work / "s.db"
    exe = [sys.executable, "-m", "setara.cli"]
    subprocess.run([*exe, "init", "--network", str(net), "--db", str(db)], check=True, capture_output=True, env=env)
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run([*exe, "submit", str(src), "--db", str(db)], check=True, stdout=sink,
                       stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--old-src", required=True, type=Path)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="setara-versions-") as tmp:
        root = Path(tmp)
        src = root / "payments.jsonl"
        write_payments(src, args.n)
        new: list[float] = []
        old: list[float] = []
        for r in range(args.rounds):
            for label, path, out in (("new", None, new), ("old", str(args.old_src), old)):
                work = root / f"{label}{r}"
                work.mkdir()
                out.append(args.n / _submit(src, work, path))
                print(f"round {r + 1} {label}: {out[-1]:,.0f} instructions/s", file=sys.stderr)
    m_new, m_old = statistics.median(new), statistics.median(old)
    print(f"this checkout : {m_new:>10,.0f} instructions/s (median of {args.rounds})")
    print(f"--old-src     : {m_old:>10,.0f} instructions/s")
    print(f"ratio         : {m_new / m_old:>10.3f}")


if __name__ == "__main__":
    main()
