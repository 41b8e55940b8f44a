"""Liquidity-saving benchmark: every algorithm against the LP bound and HiGHS's integer incumbent.

    .venv/bin/python bench/bench_liquidity.py            # 1k..1M, MILP reference 120 s where tractable
    .venv/bin/python bench/bench_liquidity.py --quick    # MILP reference 10 s, smaller sweep

Instances come from setara.liquidity.generator (scale-free network, lognormal values, liquidity a
fraction of gross outflows, a few unfunded gridlock rings). Columns: settled value / LP bound,
settled value / HiGHS incumbent (the "milp" algorithm run with --milp-time-s), seconds, and the
optimiser's time as a share of HiGHS's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from setara.liquidity import ALGORITHMS, solve_problem
from setara.liquidity._lp import lp_relaxation
from setara.liquidity.generator import generate

HEURISTICS = tuple(a for a in ALGORITHMS if a != "milp")


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="MILP reference 10 s; sizes 1k, 10k, 100k, 1M")
    ap.add_argument("--sizes", default="", help="comma-separated payment counts (default 1000,10000,40000,"
                    "100000,1000000; quick 1000,10000,100000,1000000)")
    ap.add_argument("--fractions", default="0.05", help="liquidity as a fraction of gross outflows")
    ap.add_argument("--seeds", default="0", help="comma-separated generator seeds")
    ap.add_argument("--milp-time-s", type=float, default=None, help="HiGHS reference time limit (120; quick 10)")
    ap.add_argument("--milp-max-items", type=int, default=100_000,
                    help="no MILP reference above this many payments (HiGHS has no incumbent in time)")
    ap.add_argument("--time-limit-s", type=float, default=20.0, help="time limit for every other algorithm")
    ap.add_argument("--algorithms", default=",".join(HEURISTICS))
    args = ap.parse_args()
    milp_s = args.milp_time_s if args.milp_time_s is not None else (10.0 if args.quick else 120.0)
    default_sizes = "1000,10000,100000,1000000" if args.quick else "1000,10000,40000,100000,1000000"
    sizes = [int(s) for s in (args.sizes or default_sizes).split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    algs = [a for a in args.algorithms.split(",") if a]
    widths = [16, 9, 7, 15, 9, 9, 8, 10]
    print(f"# bench_liquidity: milp reference {milp_s:g} s, others time_limit_s={args.time_limit_s:g}", flush=True)
    print(_row(["algorithm", "payments", "liq", "settled", "/LP", "/MILP", "sec", "t/t_milp"], widths), flush=True)
    worst: dict[str, float] = {}
    for n in sizes:
        for frac in fractions:
            for seed in seeds:
                q = generate(n, liquidity_fraction=frac, rings=max(1, n // 10_000), seed=seed)
                p = q.problem()
                lp = lp_relaxation(p, None, 60.0)
                bound = lp.bound
                ref = None
                t_milp = None
                results = []
                if n <= args.milp_max_items:
                    s = solve_problem(p, "milp", time_limit_s=milp_s, compute_lp_bound=False)
                    ref, t_milp = s.settled_value, s.seconds
                    results.append(s)
                for alg in algs:
                    results.append(solve_problem(p, alg, time_limit_s=args.time_limit_s, compute_lp_bound=False))
                for s in results:
                    r_lp = s.settled_value / bound if bound else float("nan")
                    r_milp = s.settled_value / ref if ref else float("nan")
                    share = s.seconds / t_milp if t_milp and s.algorithm != "milp" else float("nan")
                    if s.algorithm == "optimise" and ref:
                        worst[s.algorithm] = min(worst.get(s.algorithm, 9.0), r_milp)
                    print(_row([s.algorithm, str(p.n), f"{frac:.2f}", str(s.settled_value), f"{r_lp:.4f}",
                                f"{r_milp:.4f}", f"{s.seconds:.2f}", f"{share:.3f}"], widths), flush=True)
                print(f"# n={p.n} accounts={p.n_accounts} seed={seed} LP bound={bound:.0f} "
                      f"(LP {lp.seconds:.2f} s, {lp.columns} columns)", flush=True)
    if worst:
        print(f"# optimise: worst settled/MILP-incumbent = {worst['optimise']:.4f}")
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    rc = main()
    print(f"# total {time.perf_counter() - t0:.1f} s")
    raise SystemExit(rc)
