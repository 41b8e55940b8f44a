"""Simulator benchmark: engine throughput in simulated time per design, and the bounds pre-pass.

    .venv/bin/python bench/bench_sim.py [--payments 20000] [--seed 1]

Prints one line per design: seconds for one run of the day at liquidity level 0.1, payments per
second, periodic solver runs, and what was left unsettled.
"""

from __future__ import annotations

import argparse
import time

from setara.sim import Design, base_network, bounds_of, generate_day, liquidity_at, run_day

DESIGNS = (
    Design("gross"),
    Design("offset", "bilateral"),
    Design("lsm-partial", periodic="partial", period_s=300),
    Design("lsm-optimise", "bilateral", "optimise", 300),
    Design("dns-60", cycles=("*",), cycle_s=3600),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--payments", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--level", type=float, default=0.1)
    args = ap.parse_args()
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
