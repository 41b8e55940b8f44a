"""The simulator's Ray path against a real local Ray instance: same results.json as local processes.

One Ray instance serves the module (starting one takes ~6 s here); the runner uses an instance that
is already running and leaves it up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from setara.sim.commands import register
from setara.sim.scenario import load_scenario, simulate
from setara.sim.sweep import RAY_OBJECT_STORE_BYTES

_SWEEP = """
[day]
payments = 120
cross_currency_share = 0.2
[liquidity]
reference = 0.1
search_steps = 3
[sweep]
liquidity = [0.0, 0.1, 0.5]
seeds = 4
[[designs]]
name = "gross"
[[designs]]
name = "lsm-partial"
periodic = "partial"
period_s = 1800
[[designs]]
name = "dns-60"
cycles = ["*"]
cycle_minutes = 60
[[stress]]
name = "outage"
kind = "outage"
member = "BANK_MY1"
start = "10:00"
end = "13:00"
design = "lsm-partial"
"""


@pytest.fixture(scope="module")
def ray() -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        pytest.skip("Ray is not installed (pip install -e '.[dev]' pins it); the Ray path is untested here")
    ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=RAY_OBJECT_STORE_BYTES, include_dashboard=False,
             log_to_driver=False)
    yield ray
    ray.shutdown()


def _without_timing(results: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in results.items() if k != "timing"}


def test_sweep_on_ray_matches_local_processes(ray: Any, tmp_path: Path) -> None:
    sc = load_scenario(_SWEEP)
    local = simulate(sc, tmp_path / "local", workers=2, cache=False)
    seen: list[tuple[int, int]] = []
    on_ray = simulate(sc, tmp_path / "ray", ray_address="local", cache=False,
                      progress=lambda d, t: seen.append((d, t)))
    assert ray.is_initialized()  # the fixture's instance was used, and left up
    assert on_ray["timing"]["workers"] == "ray:local" and local["timing"]["workers"] == 2
    assert on_ray["timing"]["executed"] == on_ray["timing"]["tasks"] - 4 * 2  # all but the bounds pre-passes
    assert seen[-1] == (on_ray["timing"]["tasks"], on_ray["timing"]["tasks"])
    # 3 designs x 3 liquidity levels x 4 seeds, plus the outage per seed
    assert len([r for r in on_ray["runs"] if r["stress"] is None]) == 36 and len(on_ray["runs"]) == 40
    assert sorted({r["seed"] for r in on_ray["runs"]}) == [1, 2, 3, 4]
    assert _without_timing(on_ray) == _without_timing(local)
    for name in ("designs.csv", "sweep.csv", "stress.csv"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text()
    html = (tmp_path / "ray" / "report.html").read_text()
    assert "seed by seed" in html and html.count("data:image/png;base64,") >= 6


def test_cli_ray_run_resumes_a_local_sweep(ray: Any, tmp_path: Path) -> None:
    """A sweep started with local processes and finished on Ray: the cache is shared, results equal."""
    scen = tmp_path / "s.toml"
    scen.write_text(_SWEEP.replace("seeds = 4", "seeds = 2"))
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["simulate", str(scen), "--out", str(tmp_path / "a"), "--workers", "2"])
    assert res.exit_code == 0, res.output
    first = json.loads((tmp_path / "a" / "results.json").read_text())
    victims = sorted((tmp_path / "a" / "cache").glob("*.json"))[::3]
    for v in victims:
        v.unlink()
    res = CliRunner().invoke(app, ["simulate", str(scen), "--out", str(tmp_path / "a"), "--ray", "local"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().endswith("results.json")
    second = json.loads((tmp_path / "a" / "results.json").read_text())
    assert second["timing"]["executed"] == len(victims) and second["timing"]["workers"] == "ray:local"
    assert _without_timing(second) == _without_timing(first)


def test_bad_ray_address_is_one_line(ray: Any, tmp_path: Path) -> None:
    scen = tmp_path / "s.toml"
    scen.write_text(_SWEEP.replace("seeds = 4", "seeds = 1"))
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["simulate", str(scen), "--out", str(tmp_path / "a"), "--ray", "nowhere"])
    assert res.exit_code == 2 and "expected local, auto or ray://HOST:PORT" in res.output
    assert len(res.output.strip().splitlines()) == 1
