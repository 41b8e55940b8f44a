"""Simulator: generated and recorded business days run through the production engine in simulated time.

    generate_day(network, payments, seed=...)      a realistic trade day (day.py)
    load_day(path, network)                        a recorded day: CSV or a folder of pacs.008 files
    run_day(network, day, design, liquidity)       one day, one design, one liquidity level (runner.py)
    bounds_of(network, day)                        BoF-PSS2 lower and upper liquidity bounds
    load_scenario(text) / simulate(scenario, out)  `setara simulate` (scenario.py)
    run_demo(folder)                               `setara demo` (demo.py)

See docs/simulator.md and docs/demo.md.
"""

from .day import Day, DayError, Payment, base_network, generate_day, load_csv_day, load_day, load_iso20022_day
from .runner import Bounds, Design, RunResult, Stress, bounds_of, find_liquidity_needed, liquidity_at, run_day

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
