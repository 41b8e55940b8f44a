"""Bounded fuzzing in CI (issue #15): each atheris harness of fuzz/ runs as a subprocess for a
fixed time from a seed corpus built from the tests' own inputs (fuzz/make_corpus.py), and must end
cleanly: no exception other than the documented refusals, every accepted input round-trips (the
harnesses assert it). `SETARA_FUZZ_S` sets the time per harness (default 30 s). Skips when atheris
is not installed (`pip install -e '.[dev]'` installs it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (pip install -e '.[dev]')")

from fuzz.make_corpus import write

REPO = Path(__file__).resolve().parents[1]
SECONDS = int(os.environ.get("SETARA_FUZZ_S", "30"))


@pytest.mark.parametrize("harness", ["jsonl", "iso20022"])
def test_fuzz_harness_runs_clean(harness: str, tmp_path: Path) -> None:
    counts = write(tmp_path / "corpus")
    assert counts[harness] >= 5
    corpus = tmp_path / "corpus" / harness  # the run adds what it finds here, not in the repo
    proc = subprocess.run(
        [sys.executable, str(REPO / "fuzz" / f"fuzz_{harness}.py"), str(corpus), f"-max_total_time={SECONDS}",
         "-print_final_stats=1", "-rss_limit_mb=2048", "-timeout=10", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, timeout=SECONDS + 120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err[-4000:]
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", err)
    assert runs is not None and int(runs.group(1)) > 1000, err[-2000:]
    assert not list(tmp_path.glob("crash-*")), err[-4000:]
    print(f"{harness}: {runs.group(1)} executions in {SECONDS} s")
