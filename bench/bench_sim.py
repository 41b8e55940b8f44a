"""Simulator benchmark: engine throughput in simulated time per design, and the bounds pre-pass;
with --sweep, one sweep run in this process, on local worker processes and on a local Ray instance.

    .venv/bin/python bench/bench_sim.py [--payments 20000] [--seed 1]
    .venv/bin/python bench/bench_sim.py --sweep [--payments 1000] [--seeds 4] [--workers 2]
    .venv/bin/python bench/bench_sim.py --dns-check

--dns-check: the example scenario's dns-60 at the upper bound and at the lower bound, with one
netting over every cycled currency (what the runner does) and with one close per currency (what it
did before issue 20), counting unwinds by who was short and in which currency.

Default: one line per design: seconds for one run of the day at liquidity level 0.1, payments per
second, periodic solver runs, and what was left unsettled.

--sweep: the same sweep (the example scenario's designs but lsm-optimise and hybrid, 3 liquidity
levels, seeds 1..N, the outage stress) three ways, without the run cache: in this process (the
baseline), on local processes and on a local Ray instance with as many CPUs, in turn, --rounds times
(medians of the task phases' wall time). Prints wall times and
ratios to the baseline, the cost per run, the overhead per task of each path (worker-seconds of the
task phases beyond the baseline's, per task: dispatch, transfer, and idle workers at the barriers
between phases) and the dispatch cost of an empty task that takes the day.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from setara.sim import Design, base_network, bounds_of, generate_day, liquidity_at, run_day

DESIGNS = (
    Design("gross"),
    Design("offset", "bilateral"),
    Design("lsm-partial", periodic="partial", period_s=300),
    Design("lsm-optimise", "bilateral", "optimise", 300),
    Design("dns-60", cycles=("*",), cycle_s=3600),
)


SWEEP_DESIGNS = ("gross", "offset", "lsm-all-or-nothing", "lsm-partial", "lsm-bilateral", "dns-60")


def _noop(x: Any) -> int:
    return len(getattr(x, "payments", ()))


def sweep(payments: int, seeds: int, workers: int, rounds: int) -> None:
    import ray

    from setara.sim.scenario import EXAMPLE_SCENARIO, load_scenario, simulate
    from setara.sim.sweep import RAY_OBJECT_STORE_BYTES

    text = (EXAMPLE_SCENARIO.replace("payments = 3000", f"payments = {payments}")
            .replace("levels = [0.0, 0.1, 0.25, 0.5, 1.0]", "levels = [0.0, 0.1, 0.5]")
            .replace("[liquidity]", f"[sweep]\nseeds = {seeds}\n\n[liquidity]"))
    sc = load_scenario(text)
    sc.designs = [d for d in sc.designs if d.name in SWEEP_DESIGNS]
    sc.stresses = [(s, "lsm-partial") for s, _ in sc.stresses if s.name == "outage"]
    tmp = Path(tempfile.mkdtemp(prefix="bench_sim_"))
    print(f"sweep: {len(sc.designs)} designs x {len(sc.levels)} levels x {seeds} seeds, 1 stress, "
          f"{payments} payments a day; {os.cpu_count()} CPUs")
    simulate(load_scenario(text.replace(f"payments = {payments}", "payments = 50")), tmp / "warm", workers=1,
             cache=False)  # imports (scipy, matplotlib) and first-use costs out of the baseline
    t = time.perf_counter()
    ray.init(num_cpus=workers, object_store_memory=RAY_OBJECT_STORE_BYTES, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING)
    print(f"ray.init (local, {workers} CPUs): {time.perf_counter() - t:.2f} s, once, before the rounds")
    # The three paths in turn, `rounds` times: on a shared machine the load drifts, so each path sees
    # the same conditions on average; medians are reported.
    paths: dict[str, dict[str, Any]] = {"in this process": {"workers": 1},
                                        f"local processes x{workers}": {"workers": workers},
                                        f"local Ray x{workers}": {"ray_address": "local"}}
    walls: dict[str, list[float]] = {k: [] for k in paths}
    results: dict[str, dict[str, Any]] = {}
    for i in range(rounds):
        for label, kw in paths.items():
            r = simulate(sc, tmp / f"{i}-{len(results)}", cache=False, **kw)
            walls[label].append(r["timing"]["tasks_wall_seconds"])
            results[label] = r
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in walls.items())
              + f" (load average {os.getloadavg()[0]:.1f})")
    base = results["in this process"]["timing"]
    tasks = base["executed"]
    serial = statistics.median(walls["in this process"])
    print(f"{tasks} tasks a sweep (runs and searches; +{base['tasks'] - tasks} bounds pre-passes), "
          f"cost per run {base['run_seconds_mean'] * 1000:.0f} ms (last round)")
    for label in paths:
        w = statistics.median(walls[label])
        n_workers = 1 if label == "in this process" else workers
        print(f"{label:19s} median {w:7.2f} s for the tasks: {serial / w:.2f}x the baseline, "
              f"{w / tasks * 1000:.0f} ms a task, overhead per task {(w * n_workers - serial) / tasks * 1000:.0f} ms")
    ref = {k: v for k, v in results["in this process"].items() if k != "timing"}
    print("results.json identical but timings: "
          + str(all({k: v for k, v in r.items() if k != "timing"} == ref for r in results.values())))
    # Dispatch cost alone: an empty task with a task's parameters; on Ray also one that takes the day
    # by reference (the worker deserialises it from the object store for each task).
    from concurrent.futures import ProcessPoolExecutor

    params = {"design": sc.designs[0], "level": 0.1, "stress": None, "series": False}
    n = 400
    day_ref = ray.put(sc.day_for(1))
    remote = ray.remote(_noop)
    ray.get([remote.remote(params) for _ in range(workers * 2)])  # workers warm
    t = time.perf_counter()
    ray.get([remote.remote(params) for _ in range(n)])
    per_ray = (time.perf_counter() - t) / n
    t = time.perf_counter()
    ray.get([remote.remote(day_ref) for _ in range(n)])
    per_ray_day = (time.perf_counter() - t) / n
    ray.shutdown()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_noop, [params] * workers * 2))
        t = time.perf_counter()
        list(pool.map(_noop, [params] * n))
        per_pool = (time.perf_counter() - t) / n
    print(f"empty task ({n}, {workers} workers, wall per task): local processes {per_pool * 1000:.2f} ms, "
          f"Ray {per_ray * 1000:.2f} ms, Ray taking the day by reference {per_ray_day * 1000:.2f} ms")


def dns_check() -> None:
    from collections import Counter

    from setara.core import CloseCycle, Engine
    from setara.sim.scenario import EXAMPLE_SCENARIO, load_scenario

    sc = load_scenario(EXAMPLE_SCENARIO)
    design = next(d for d in sc.designs if d.name == "dns-60")
    b = bounds_of(sc.network, sc.day)
    joint_apply = Engine.apply
    closing: list[str] = []
    short: Counter[str] = Counter()
    first: list[str] = []

    def per_currency(self: Engine, cmd: Any) -> Any:
        if type(cmd) is CloseCycle and cmd.currency == "*":
            assert self.network is not None
            out = []
            for c, cc in self.network.currencies.items():
                if cc.settlement == "cycles" and self.cycle_pending.get(c):
                    closing[:] = [c]
                    out += joint_apply(self, CloseCycle(c, cmd.time_ms))
            return out
        return joint_apply(self, cmd)

    shortfalls = Engine._cycle_shortfalls

    def who(self: Engine, chosen: Any) -> Any:
        found = shortfalls(self, chosen)
        if found and closing:
            member = max(found)[1]
            deltas: dict[tuple[str, str], int] = {}
            for p in chosen:
                for leg in p.legs():
                    deltas[(leg.debit, leg.currency)] = deltas.get((leg.debit, leg.currency), 0) - leg.amount_minor
                    deltas[(leg.credit, leg.currency)] = deltas.get((leg.credit, leg.currency), 0) + leg.amount_minor
            for (m, c), v in deltas.items():
                if m == member and v < 0 and -v > self.ledger.available((m, c)):
                    kind = "an FX provider" if self.network and self.network.members[m].is_fx_provider else "a bank"
                    where = "the other leg's currency" if c != closing[0] else "the closed currency"
                    short[f"{kind} short in {where}"] += 1
                    if len(first) < 3:
                        first.append(f"closing {closing[0]}: {m} short in {c}")
        return found

    for label, patch in (("one netting over all cycled currencies", False), ("one close per currency", True)):
        Engine.apply = per_currency if patch else joint_apply  # type: ignore[method-assign]
        Engine._cycle_shortfalls = who  # type: ignore[method-assign]
        short.clear()
        first.clear()
        for level in (1.0, 0.0):
            r = run_day(sc.network, sc.day, design, liquidity_at(b, level), target=b.target)
            print(f"{label:40s} level {level}: unsettled {r.unsettled:4d} of {len(b.target)}, unwinds {r.unwinds}")
            if level == 1.0 and short:
                print(f"    at the upper bound: first unwinds {first}; {dict(short)}")
    Engine.apply = joint_apply  # type: ignore[method-assign]
    Engine._cycle_shortfalls = shortfalls  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--payments", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--level", type=float, default=0.1)
    ap.add_argument("--sweep", action="store_true", help="local processes against a local Ray instance")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="--sweep: the three paths in turn, this many times")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--dns-check", action="store_true", help="why per-currency cycle closes fail dns-60")
    args = ap.parse_args()
    if args.dns_check:
        dns_check()
        return
    if args.sweep:
        sweep(args.payments or 1000, args.seeds, args.workers, args.rounds)
        return
    args.payments = args.payments or 20_000
    net = base_network()
    t = time.perf_counter()
    day = generate_day(net, args.payments, seed=args.seed)
    print(f"generate  {args.payments} payments: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    b = bounds_of(net, day)
    dt = time.perf_counter() - t
    print(f"bounds    unlimited-liquidity pre-pass: {dt:.2f} s ({args.payments / dt:,.0f} payments/s)")
    liq = liquidity_at(b, args.level)
    for d in DESIGNS:
        r = run_day(net, day, d, liq, target=b.target)
        print(f"{d.name:13s} {r.seconds:6.2f} s  {args.payments / r.seconds:9,.0f} payments/s  "
              f"solver runs {r.lsm_runs:4d}  unsettled {r.unsettled:5d}  mean delay {r.delay_stats()['mean_s']:.0f} s")


if __name__ == "__main__":
    main()
