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
baseline), on local processes and on a local Ray instance with as many CPUs. Prints wall times and
ratios to the baseline, the cost per run, the overhead per task of each path (worker-seconds of the
task phases beyond the baseline's, per task: dispatch, transfer, and idle workers at the barriers
between phases) and the dispatch cost of an empty task that takes the day.
"""

from __future__ import annotations

import argparse
import logging
import os
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


def _noop(day: Any) -> int:
    return len(day.payments)


def sweep(payments: int, seeds: int, workers: int) -> None:
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
    base = simulate(sc, tmp / "serial", workers=1, cache=False)
    serial = time.perf_counter() - t
    bt = base["timing"]
    tasks, serial_tasks = bt["executed"], bt["tasks_wall_seconds"]
    print(f"in this process     {serial:7.2f} s  tasks {serial_tasks:.2f} s: {tasks} runs and searches "
          f"(+{bt['tasks'] - tasks} bounds pre-passes), cost per run {bt['run_seconds_mean'] * 1000:.0f} ms, "
          f"per task {serial_tasks / tasks * 1000:.0f} ms")

    def line(label: str, wall: float, timing: dict[str, Any], extra: str = "") -> None:
        tw = timing["tasks_wall_seconds"]
        print(f"{label:19s} {wall:7.2f} s  tasks {tw:.2f} s: {serial_tasks / tw:.2f}x the baseline, "
              f"overhead per task {(tw * workers - serial_tasks) / tasks * 1000:.0f} ms{extra}")

    t = time.perf_counter()
    local = simulate(sc, tmp / "local", workers=workers, cache=False)
    line(f"local processes x{workers}", time.perf_counter() - t, local["timing"])
    t = time.perf_counter()
    ray.init(num_cpus=workers, object_store_memory=RAY_OBJECT_STORE_BYTES, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING)
    init = time.perf_counter() - t
    t = time.perf_counter()
    on_ray = simulate(sc, tmp / "ray", ray_address="local", cache=False)
    line(f"local Ray x{workers}", time.perf_counter() - t, on_ray["timing"], f" (ray.init before it: {init:.2f} s)")
    same = {k: v for k, v in local.items() if k != "timing"} == {k: v for k, v in on_ray.items() if k != "timing"}
    print(f"results.json identical but timings: {same}")
    # Dispatch cost alone: an empty task that receives the day (Ray: a reference to it in the object store)
    from concurrent.futures import ProcessPoolExecutor

    day = sc.day_for(1)
    n = 400
    ref = ray.put(day)
    remote = ray.remote(_noop)
    ray.get([remote.remote(ref) for _ in range(workers * 2)])  # workers warm
    t = time.perf_counter()
    ray.get([remote.remote(ref) for _ in range(n)])
    per_ray = (time.perf_counter() - t) / n
    ray.shutdown()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_noop, [day] * workers * 2))
        t = time.perf_counter()
        list(pool.map(_noop, [day] * n))
        per_pool = (time.perf_counter() - t) / n
    print(f"empty task taking the day ({n} tasks): local processes {per_pool * 1000:.2f} ms, "
          f"Ray {per_ray * 1000:.2f} ms (wall per task, {workers} workers)")


def dns_check() -> None:
    from collections import Counter

    from setara.engine import CloseCycle, Engine
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
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--dns-check", action="store_true", help="why per-currency cycle closes fail dns-60")
    args = ap.parse_args()
    if args.dns_check:
        dns_check()
        return
    if args.sweep:
        sweep(args.payments or 1000, args.seeds, args.workers)
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
