"""Simulator: generated and recorded business days run through the production engine in simulated time.

    generate_day(network, payments, seed=...)      a realistic trade day (day.py)
    load_day(path, network)                        a recorded day: CSV or a folder of pacs.008 files
    run_day(network, day, design, liquidity)       one day, one design, one liquidity level (runner.py)
    bounds_of(network, day)                        BoF-PSS2 lower and upper liquidity bounds
    load_scenario(text) / simulate(scenario, out)  `setara simulate` (scenario.py)
    run_demo(folder)                               `setara demo` (demo.py)

See docs/simulator.md and docs/demo.md.
"""

from __future__ import annotations

from setara._lazy import lazy_getattr

# Submodules load on first use: the `setara` CLI registers `demo` and `simulate` on every start and
# must not pay for numpy and the solvers unless it simulates.
_LAZY = {
    "Day": "day",
    "DayError": "day",
    "Payment": "day",
    "base_network": "day",
    "generate_day": "day",
    "load_csv_day": "day",
    "load_day": "day",
    "load_iso20022_day": "day",
    "Bounds": "runner",
    "Design": "runner",
    "RunResult": "runner",
    "Stress": "runner",
    "bounds_of": "runner",
    "find_liquidity_needed": "runner",
    "liquidity_at": "runner",
    "run_day": "runner",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "Bounds",
    "Day",
    "DayError",
    "Design",
    "Payment",
    "RunResult",
    "Stress",
    "base_network",
    "bounds_of",
    "find_liquidity_needed",
    "generate_day",
    "liquidity_at",
    "load_csv_day",
    "load_day",
    "load_iso20022_day",
    "run_day",
]
