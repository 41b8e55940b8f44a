"""Where the simulator's runs execute (this process, local worker processes, or Ray) and the run cache.

A task is one unit of a sweep: the bounds pre-pass of one day (per seed and stress), one run (design,
liquidity level, stress case, seed), or one design's liquidity_needed bisection for one seed. A run
task returns a compact, JSON-ready summary (`compact`): figures, per-member totals and, for
reference runs, the queue series of the report, never the day's payment log.

The network config, each seed's day and each day's bounds travel to the workers once: on Ray they
are put in the object store and tasks receive references; local worker processes receive them when
they start (one pool per phase, since the bounds exist only after the first), and tasks carry a
handle. What a task itself carries is its parameters: design, level, stress case, seed.

Finished runs and searches are cached in `OUT/cache/` as one JSON file each, named by a content hash
of (day, network, rates, design, parameters, seed, code version): a re-run, or a sweep resumed after
an interruption, executes only what is missing.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from setara.core.network import Network

from .day import Day
from .runner import Bounds, Design, RunResult, Stress, bounds_of, find_liquidity_needed, liquidity_at, run_day

__all__ = ["RAY_OBJECT_STORE_BYTES", "Cache", "Call", "Runner", "RunnerError", "code_version", "compact", "task"]

WORKERS_MAX = 256
# A local Ray instance on a small machine: the object store holds the days and bounds only (a few
# MB per seed), so a small store leaves the memory to the workers.
RAY_OBJECT_STORE_BYTES = 256 * 1024**2

Call = tuple[str, dict[str, Any], Any, Any, Any, Any]  # kind, params, network config, day, bounds, target bounds


class RunnerError(ValueError):
    """--ray cannot be used: Ray missing, a bad address, or no cluster there (one line)."""


# ---------------------------------------------------------------------------------------------- tasks


def _per_currency(values: dict[tuple[str, str], int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_m, c), v in values.items():
        out[c] = out.get(c, 0) + v
    return out


def compact(r: RunResult, series: bool) -> dict[str, Any]:
    """What a run sends back: totals and statistics, per-member figures for the stress comparison,
    and the queue series only when asked for (reference and stress runs)."""
    out: dict[str, Any] = {
        "complete": r.complete,
        "liquidity": r.liquidity,
        "settled": r.settled,
        "settled_value": r.settled_value,
        "unsettled": r.unsettled,
        "unsettled_value": r.unsettled_value,
        "rejected": r.rejected,
        "rejected_reasons": r.rejected_reasons,
        "held": r.held,
        "delay": r.delay_stats(),
        "lsm_runs": r.lsm_runs,
        "gridlocks_resolved": r.gridlocks_resolved,
        "gridlock_events": r.gridlock_events,
        "offsets": r.offsets,
        "cycles": len([c for c in r.cycles if c["payments"]]),
        "unwinds": r.unwinds,
        "member_delay_s": r.member_delay_s,
        "member_settled": r.member_settled,
        "member_unsettled_usd": {m: round(v, 2) for m, v in r.member_unsettled_usd.items()},
        "state_hash": r.state_hash,
        "seconds": round(r.seconds, 4),
    }
    if series:
        out["series_t"] = r.series_t
        out["series_queue_usd"] = [round(v, 2) for v in r.series_queue_usd]
    # Through JSON here already, so a fresh result and one read back from the cache are identical.
    result: dict[str, Any] = orjson.loads(orjson.dumps(out))
    return result


def task(kind: str, params: dict[str, Any], cfg: dict[str, Any], day: Day, bounds: Bounds | None,
         tbounds: Bounds | None) -> Any:
    """One task, for a worker process or a Ray task (module level, so it pickles). On Ray the last
    four arguments arrive as object references, which Ray resolves before the call."""
    net = Network.from_config(cfg)
    stress: Stress | None = params.get("stress")
    if kind == "bounds":
        return bounds_of(net, day, stress=stress)
    assert bounds is not None
    design: Design = params["design"]
    if kind == "run":
        assert tbounds is not None
        level = float(params["level"])
        series = bool(params["series"])
        r = run_day(net, day, design, liquidity_at(bounds, level), stress=stress, target=tbounds.target,
                    level=level, series=series, gridlock_check=series)
        return compact(r, series)
    if kind == "search":
        known = {float(lv): bool(ok) for lv, ok in params["known"]}
        level, liq, runs, settles = find_liquidity_needed(net, day, design, bounds, known=known,
                                                          steps=int(params["steps"]))
        return {"level": level, "liquidity": _per_currency(liq), "runs": runs, "settles": settles}
    raise ValueError(f"unknown task {kind}")


class _Ref:
    """A handle to an object a local worker process received when it started."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


_SHARED: dict[int, Any] = {}


def _init_worker(shared: dict[int, Any]) -> None:
    global _SHARED
    _SHARED = shared


def _resolve(x: Any) -> Any:
    return _SHARED[x.n] if isinstance(x, _Ref) else x


def _pool_task(kind: str, params: dict[str, Any], cfg: Any, day: Any, bounds: Any, tbounds: Any) -> Any:
    return task(kind, params, _resolve(cfg), _resolve(day), _resolve(bounds), _resolve(tbounds))


# ---------------------------------------------------------------------------------------------- cache


_CODE_VERSION: str | None = None


def code_version() -> str:
    """A hash of the setara package's source: a cached run is reused only by the code that made it."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        root = Path(__file__).resolve().parent.parent  # the setara package (a namespace package: no __file__)
        h = hashlib.sha256()
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        _CODE_VERSION = h.hexdigest()[:16]
    return _CODE_VERSION


def _default(obj: Any) -> Any:
    if isinstance(obj, frozenset | set):
        return sorted(obj)
    raise TypeError(type(obj).__name__)


def content_hash(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, default=_default, option=orjson.OPT_SORT_KEYS
                                       | orjson.OPT_NON_STR_KEYS)).hexdigest()


def day_hash(day: Day, cfg: dict[str, Any], rates: dict[str, str]) -> str:
    """Identity of a day as a run sees it: the payments, the network and the reference rates."""
    return content_hash(asdict(day), cfg, rates)


def task_key(kind: str, day_key: str, seed: int, params: dict[str, Any]) -> str:
    p = {k: (asdict(v) if isinstance(v, Design | Stress) else v) for k, v in params.items()}
    return content_hash(kind, code_version(), day_key, seed, p)


class Cache:
    """One JSON file per finished task under `folder`, written atomically (a killed sweep leaves no
    half-written entry)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Any:
        if self.folder is None:
            return None
        try:
            return orjson.loads((self.folder / f"{key}.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None

    def put(self, key: str, value: Any) -> None:
        if self.folder is None:
            return
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(orjson.dumps(value))
        os.replace(tmp, self.folder / f"{key}.json")


# ---------------------------------------------------------------------------------------------- runner


def _start_ray(address: str) -> tuple[Any, bool]:
    """Ray, and whether this call started or joined it (and so shuts it down after the sweep)."""
    try:
        import ray
    except ImportError:
        raise RunnerError("--ray needs Ray, which is not installed (pip install 'setara[ray]')") from None
    if address != "local" and address != "auto" and not address.startswith("ray://") and ":" not in address:
        raise RunnerError(f"--ray {address}: expected local, auto or ray://HOST:PORT")
    if ray.is_initialized():
        return ray, False  # a caller (a notebook, a test fixture) runs Ray already: use that instance
    try:
        if address == "local":
            ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=RAY_OBJECT_STORE_BYTES,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as e:
        raise RunnerError(f"--ray {address}: cannot start or join Ray ({str(e).splitlines()[0] if str(e) else e!r})"
                          ) from None
    return ray, True


class Runner:
    """Runs tasks in this process (workers 1), local worker processes, or on Ray (`ray_address`:
    local, auto or ray://HOST:PORT)."""

    def __init__(self, workers: int, ray_address: str | None = None) -> None:
        self.workers = max(1, min(workers, WORKERS_MAX))
        self.ray_address = ray_address
        self._shared: dict[int, Any] = {}
        self._ray: Any = None
        self._owns_ray = False
        if ray_address:
            self._ray, self._owns_ray = _start_ray(ray_address)
            self._remote = self._ray.remote(task)

    @property
    def label(self) -> str | int:
        return f"ray:{self.ray_address}" if self.ray_address else self.workers

    def put(self, obj: Any) -> Any:
        """Into the object store once (Ray), or to each local worker process when it starts; in this
        process, the object itself."""
        if self._ray is not None:
            return self._ray.put(obj)
        if self.workers > 1:
            self._shared[len(self._shared)] = obj
            return _Ref(len(self._shared) - 1)
        return obj

    def run(self, calls: Sequence[Call], done: Callable[[int, Any], None]) -> None:
        """Run every call; `done(index, result)` as each finishes, in completion order."""
        if not calls:
            return
        if self._ray is not None:
            refs = [self._remote.remote(*c) for c in calls]
            index = {r: i for i, r in enumerate(refs)}
            pending = list(refs)
            try:
                while pending:
                    ready, pending = self._ray.wait(pending, num_returns=1)
                    for r in ready:
                        done(index[r], self._ray.get(r))
            except BaseException:
                for r in pending:
                    self._ray.cancel(r, force=True)
                raise
            return
        if self.workers > 1:
            pool = ProcessPoolExecutor(max_workers=min(self.workers, len(calls)), initializer=_init_worker,
                                       initargs=(self._shared,))
            try:
                futures: dict[Future[Any], int] = {pool.submit(_pool_task, *c): i for i, c in enumerate(calls)}
                waiting = set(futures)
                while waiting:
                    finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                    for f in finished:
                        done(futures[f], f.result())
            finally:
                pool.shutdown(cancel_futures=True)
            return
        for i, c in enumerate(calls):
            done(i, task(*c))

    def close(self) -> None:
        if self._ray is not None and self._owns_ray:
            self._ray.shutdown()
