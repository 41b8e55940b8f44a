"""Shared fixtures: the example network, a fresh store, and a way to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from setara.core.network import Network, example_toml, load_network
from setara.node import Node

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def network() -> Network:
    return load_network(example_toml())


@pytest.fixture
def db(tmp_path: Path, network: Network) -> str:
    path = str(tmp_path / "setara.db")
    Node.create(path, network, T0_MS).close()
    return path


@pytest.fixture
def node(db: str) -> Iterator[Node]:
    n = Node.open(db, write=True)
    yield n
    n.close()


def run_cli(*args: str, input: bytes | None = None, cwd: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "setara.cli", *args], input=input, capture_output=True,
                          cwd=cwd, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"setara {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
    return proc


def requires_shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data is not beside the repo)")
    return path
