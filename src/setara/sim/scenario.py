"""`setara simulate`: one day under several settlement designs, liquidity sweeps and stress scenarios.

Every run drives the production `Engine` directly (no store) in simulated time; runs are independent,
so they go to local worker processes or, with `--ray ADDRESS`, to a Ray cluster (sweep.py), and each
finished run is cached under the output folder so an interrupted sweep resumes.
"""

from __future__ import annotations

import csv
import os
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson

from setara.core.money import format_amount
from setara.core.network import Network, NetworkError, load_network

from .day import REFERENCE_RATES, Day, DayError, base_network, generate_day, load_day
from .runner import Bounds, Design, Stress
from .sweep import Cache, Call, Runner, day_hash, task_key

__all__ = ["EXAMPLE_SCENARIO", "Scenario", "ScenarioError", "load_scenario", "simulate"]

WORKERS_MAX = 256
DESIGNS_MAX = 64
LEVELS_MAX = 41
SEEDS_MAX = 1000
TASKS_MAX = 200_000


class ScenarioError(ValueError):
    """An invalid scenario; the message names the key."""


EXAMPLE_SCENARIO = '''\
# Setara simulation scenario: one business day under several settlement designs.
# Run:  setara simulate scenario.toml --out results/   (writes results.json, CSVs, report.html)
# Amounts in results are USD equivalents at the [rates] reference rates (decimal strings) plus
# per-currency minor-unit integers; see docs/simulator.md.

[day]
# A generated trade day (scale-free counterparty network, lognormal values, two intraday peaks).
payments = 3000
seed = 7
cross_currency_share = 0.2      # share paid in the debtor's currency, received in the creditor's (PvP)
urgent_share = 0.1
value_median_usd = 25000.0
value_sigma = 1.7               # lognormal shape: heavier tail when larger
# recorded = "day.csv"          # replay a recorded day instead: a CSV file (id,debtor,creditor,currency,
#                               # amount,priority,time) or a folder of ISO 20022 pacs.008 files
# network = "network.toml"      # default: the example network (`setara network example`)
open = "08:00"
cutoff = "18:00"

[liquidity]
# Levels between the BoF-PSS2 lower bound (0: end-of-day multilateral net debit positions) and
# upper bound (1: what gross RTGS needs to settle every payment on submission), per account.
levels = [0.0, 0.1, 0.25, 0.5, 1.0]
reference = 0.1                 # level at which delays, unsettled value and gridlocks are compared
search_steps = 7                # bisection steps for liquidity_needed (precision 2**-steps of the gap)

# [sweep]                       # repeat the study over seeds (and liquidity levels): confidence bands
# seeds = 10                    # N generated days per design, seeds 1..N (replaces day.seed)
# liquidity = [0.05, 0.1, 0.2]  # the levels to sweep (instead of liquidity.levels)

# [rates]                       # reference rates, units per USD (defaults cover IDR MYR THB PHP SGD ...)
# IDR = "16000"

# --- designs ----------------------------------------------------------------------------------
# on_entry: "bilateral" offsetting when a payment would queue, or "none".
# periodic: liquidity-saving algorithm every period_s seconds over the RTGS queue: "optimise"
#   (maximise settled value), "partial" (T2 algorithm 2), "all-or-nothing" (T2 algorithm 1),
#   "bilateral" (pairwise offsetting), "lp-round", or "none".
# cycles: currencies settled in deferred-net cycles every cycle_minutes (["*"] = all).

[[designs]]
name = "gross"
description = "Gross RTGS: FIFO queues, no liquidity saving"

[[designs]]
name = "offset"
description = "RTGS with bilateral offsetting on entry"
on_entry = "bilateral"

[[designs]]
name = "lsm-all-or-nothing"
periodic = "all-or-nothing"
period_s = 600

[[designs]]
name = "lsm-partial"
periodic = "partial"
period_s = 600

[[designs]]
name = "lsm-bilateral"
periodic = "bilateral"
period_s = 600

[[designs]]
name = "lsm-optimise"
on_entry = "bilateral"
periodic = "optimise"
period_s = 600

[[designs]]
name = "dns-60"
description = "Deferred net settlement, hourly cycles in every currency"
cycles = ["*"]
cycle_minutes = 60

[[designs]]
name = "hybrid"
description = "RTGS with offsetting and periodic optimisation; PHP in 30-minute net cycles"
on_entry = "bilateral"
periodic = "optimise"
period_s = 600
cycles = ["PHP"]
cycle_minutes = 30

# --- stress -----------------------------------------------------------------------------------
# Each runs under `design` at the reference level's liquidity (of the unstressed day) and is
# compared with the same design on the unstressed day.
[[stress]]
name = "outage"
kind = "outage"                 # the member sends nothing from start to end, but keeps receiving
member = "BANK_MY1"
start = "10:00"
end = "13:00"
design = "lsm-optimise"

[[stress]]
name = "liquidity-shock"
kind = "liquidity_shock"        # the member loses `fraction` of its available balance at `start`
member = "BANK_ID1"
start = "11:00"
fraction = 0.8
design = "lsm-optimise"

[[stress]]
name = "fx-provider-stops"
kind = "fx_stop"                # the FX provider withdraws its quotes at `start`
member = "FX_MERDEKA"
start = "12:00"
design = "lsm-optimise"
'''


@dataclass
class Scenario:
    network: Network
    day: Day  # the day of seeds[0]
    designs: list[Design]
    levels: list[float]
    reference: float
    search_steps: int
    stresses: list[tuple[Stress, str]]
    rates: dict[str, str]
    text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)  # one day per seed; empty: just `day` (its own seed)
    generator: dict[str, Any] | None = None  # generate_day's arguments but the seed; None: a recorded day

    def day_seeds(self) -> list[int]:
        return self.seeds or [int(self.day.meta.get("seed", 0))]

    def day_for(self, seed: int) -> Day:
        """The day of one seed: generated from it, or the recorded day (which has no seed)."""
        if self.generator is None or seed == self.day.meta.get("seed"):
            return self.day
        return _generate(self.network, self.generator, seed)


def _generate(network: Network, generator: dict[str, Any], seed: int) -> Day:
    day = generate_day(network, seed=seed, **generator)
    return replace(day, meta={**day.meta, "seed": seed})


def _clock(text: Any, where: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if isinstance(text, str):
        parts = text.split(":")
        if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
            h, m = int(parts[0]), int(parts[1])
            s = int(parts[2]) if len(parts) == 3 else 0
            if h <= 24 and m < 60 and s < 60:
                return h * 3600 + m * 60 + s
    raise ScenarioError(f"{where}: expected a time of day such as \"10:30\"")


def _get(d: dict[str, Any], key: str, where: str, typ: type | tuple[type, ...], default: Any) -> Any:
    if key not in d:
        return default
    v = d[key]
    if isinstance(v, bool) and typ is not bool:
        raise ScenarioError(f"{where}.{key}: wrong type")
    if typ is float and isinstance(v, int):
        v = float(v)
    if not isinstance(v, typ):
        raise ScenarioError(f"{where}.{key}: wrong type ({type(v).__name__})")
    return v


def load_scenario(text: str, base_dir: Path | None = None) -> Scenario:
    from setara.liquidity import ALGORITHMS

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"scenario TOML: {e}") from None
    unknown = set(doc) - {"day", "liquidity", "rates", "designs", "stress", "sweep"}
    if unknown:
        raise ScenarioError(f"scenario: unknown section(s) {', '.join(sorted(unknown))}")
    base = base_dir or Path(".")
    rates = {**REFERENCE_RATES}
    for k, v in _get(doc, "rates", "scenario", dict, {}).items():
        try:
            if Fraction(str(v)) <= 0:
                raise ValueError
        except (ValueError, ZeroDivisionError):
            raise ScenarioError(f"rates.{k}: expected a positive decimal string") from None
        rates[str(k)] = str(v)
    d = _get(doc, "day", "scenario", dict, {})
    net_path = _get(d, "network", "day", str, None)
    try:
        network = load_network((base / net_path).read_text(encoding="utf-8")) if net_path else base_network()
    except OSError as e:
        raise ScenarioError(f"day.network: {e.strerror or e}") from None
    except NetworkError as e:
        raise ScenarioError(f"day.network: {e}") from None
    recorded = _get(d, "recorded", "day", str, None)
    start = _clock(d.get("open", "08:00"), "day.open")
    end = _clock(d.get("cutoff", "18:00"), "day.cutoff")
    sweep = _get(doc, "sweep", "scenario", dict, {})
    extra = set(sweep) - {"seeds", "liquidity"}
    if extra:
        raise ScenarioError(f"sweep: unknown key(s) {', '.join(sorted(extra))} (known: seeds, liquidity)")
    n_seeds = _get(sweep, "seeds", "sweep", int, 0)
    if "seeds" in sweep and not 1 <= n_seeds <= SEEDS_MAX:
        raise ScenarioError(f"sweep.seeds: 1..{SEEDS_MAX} (runs per design with seeds 1..N)")
    if n_seeds and recorded:
        raise ScenarioError("sweep.seeds: a recorded day has no seed to vary")
    generator: dict[str, Any] | None = None
    try:
        if recorded:
            day = load_day(str(base / recorded), network, rates=rates)
        else:
            generator = {
                "payments": _get(d, "payments", "day", int, 4000),
                "cross_currency_share": _get(d, "cross_currency_share", "day", float, 0.2),
                "urgent_share": _get(d, "urgent_share", "day", float, 0.1),
                "value_median_usd": _get(d, "value_median_usd", "day", float, 25_000.0),
                "value_sigma": _get(d, "value_sigma", "day", float, 1.7),
                "rates": rates, "start_s": start, "end_s": end, "sanctioned_payments": 0,
            }
            day = _generate(network, generator, 1 if n_seeds else _get(d, "seed", "day", int, 7))
    except (DayError, ValueError) as e:
        raise ScenarioError(f"day: {e}") from None
    liq = _get(doc, "liquidity", "scenario", dict, {})
    if "liquidity" in sweep and "levels" in liq:
        raise ScenarioError("sweep.liquidity: give the levels here or in liquidity.levels, not both")
    where_levels = "sweep.liquidity" if "liquidity" in sweep else "liquidity.levels"
    raw_levels = (_get(sweep, "liquidity", "sweep", list, []) if "liquidity" in sweep
                  else _get(liq, "levels", "liquidity", list, [0.0, 0.1, 0.25, 0.5, 1.0]))
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw_levels):
        raise ScenarioError(f"{where_levels}: numbers in [0, 1]")
    levels = sorted({float(x) for x in raw_levels})
    if not levels or len(levels) > LEVELS_MAX or not all(0.0 <= x <= 1.0 for x in levels):
        raise ScenarioError(f"{where_levels}: 1..{LEVELS_MAX} numbers in [0, 1]")
    reference = _get(liq, "reference", "liquidity", float, 0.1)
    if not 0.0 <= reference <= 1.0:
        raise ScenarioError("liquidity.reference: a number in [0, 1]")
    if reference not in levels:
        levels = sorted([*levels, reference])
    steps = _get(liq, "search_steps", "liquidity", int, 7)
    if not 1 <= steps <= 20:
        raise ScenarioError("liquidity.search_steps: 1..20")
    designs: list[Design] = []
    raw_designs = _get(doc, "designs", "scenario", list, [])
    if not raw_designs or len(raw_designs) > DESIGNS_MAX:
        raise ScenarioError(f"designs: 1..{DESIGNS_MAX} [[designs]] tables")
    for i, r in enumerate(raw_designs):
        where = f"designs[{i}]"
        if not isinstance(r, dict):
            raise ScenarioError(f"{where}: expected a table")
        extra = set(r) - {"name", "description", "on_entry", "periodic", "period_s", "cycles", "cycle_minutes"}
        if extra:
            raise ScenarioError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        name = _get(r, "name", where, str, "")
        if not name or any(x.name == name for x in designs):
            raise ScenarioError(f"{where}.name: missing or repeated")
        on_entry = _get(r, "on_entry", where, str, "none")
        if on_entry not in ("none", "bilateral"):
            raise ScenarioError(f"{where}.on_entry: bilateral or none")
        periodic = _get(r, "periodic", where, str, "none")
        if periodic != "none" and (periodic not in ALGORITHMS or periodic in ("milp", "fifo")):
            raise ScenarioError(f"{where}.periodic: one of optimise, lp-round, all-or-nothing, partial, "
                                "bilateral, none")
        period = _get(r, "period_s", where, int, 300)
        cycles = tuple(str(c) for c in _get(r, "cycles", where, list, []))
        for c in cycles:
            if c != "*" and c not in network.currencies:
                raise ScenarioError(f"{where}.cycles: {c} is not a currency of the network")
        minutes = _get(r, "cycle_minutes", where, int, 30)
        if not 1 <= period <= 86_400 or not 1 <= minutes <= 1440:
            raise ScenarioError(f"{where}: period_s in 1..86400 and cycle_minutes in 1..1440")
        designs.append(Design(name, on_entry, periodic, period, cycles, minutes * 60,
                              _get(r, "description", where, str, "")))
    stresses: list[tuple[Stress, str]] = []
    for i, r in enumerate(_get(doc, "stress", "scenario", list, [])):
        where = f"stress[{i}]"
        if not isinstance(r, dict):
            raise ScenarioError(f"{where}: expected a table")
        kind = _get(r, "kind", where, str, "")
        if kind not in ("outage", "liquidity_shock", "fx_stop"):
            raise ScenarioError(f"{where}.kind: outage, liquidity_shock or fx_stop")
        member = _get(r, "member", where, str, "")
        if member not in network.members:
            raise ScenarioError(f"{where}.member: {member!r} is not a member of the network")
        if kind == "fx_stop" and not network.members[member].is_fx_provider:
            raise ScenarioError(f"{where}.member: {member} is not an FX provider")
        design = _get(r, "design", where, str, designs[-1].name)
        if not any(x.name == design for x in designs):
            raise ScenarioError(f"{where}.design: no design named {design!r}")
        fraction = _get(r, "fraction", where, float, 0.5)
        if not 0.0 < fraction <= 1.0:
            raise ScenarioError(f"{where}.fraction: in (0, 1]")
        ccy = _get(r, "currency", where, str, None)
        stress = Stress(_get(r, "name", where, str, f"{kind}-{member}"), kind, member,
                        _clock(r.get("start", "10:00"), f"{where}.start"),
                        _clock(r["end"], f"{where}.end") if "end" in r else None, fraction, ccy)
        if any(x.name == stress.name for x, _ in stresses):
            raise ScenarioError(f"{where}.name: {stress.name!r} repeated")
        stresses.append((stress, design))
    seeds = list(range(1, n_seeds + 1)) if n_seeds else []
    if len(designs) * (len(levels) + 1 + len(stresses)) * max(1, len(seeds)) > TASKS_MAX:
        raise ScenarioError(f"sweep: more than {TASKS_MAX} runs (designs x levels x seeds)")
    return Scenario(network, day, designs, levels, reference, steps, stresses, rates, text, seeds=seeds,
                    generator=generator)


# ---------------------------------------------------------------------------------------------- results


CACHE_DIR = "cache"  # under --out: one JSON file per finished run (see sweep.py)


def _usd_minor(by_ccy: dict[str, int], sc: Scenario) -> int:
    """USD cents at the reference rates (exact rational arithmetic, rounded once)."""
    total = Fraction(0)
    for c, v in by_ccy.items():
        units = sc.network.minor_units(c) or 0
        total += Fraction(v) / 10**units / Fraction(sc.rates.get(c, "1"))
    return round(total * 100)


def _usd(by_ccy: dict[str, int], sc: Scenario) -> str:
    return format_amount(_usd_minor(by_ccy, sc), 2)


def _ccy_totals(values: dict[tuple[str, str], int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_m, c), v in values.items():
        out[c] = out.get(c, 0) + v
    return out


def mean_ci(xs: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% confidence interval of the mean (Student's t) over seeds; a single seed has no spread."""
    n = len(xs)
    if n == 0:
        return 0.0, 0.0, 0.0
    m = sum(xs) / n
    if n == 1:
        return m, m, m
    from scipy.stats import t

    sd = float(sum((x - m) ** 2 for x in xs) / (n - 1)) ** 0.5
    h = float(t.ppf(0.975, n - 1)) * sd / n**0.5
    return m, m - h, m + h


def _run_summary(c: dict[str, Any], sc: Scenario, gross_usd_minor: int) -> dict[str, Any]:
    return {
        "liquidity": _usd(c["liquidity"], sc),
        "liquidity_minor": c["liquidity"],
        "complete": c["complete"],
        "settled_payments": c["settled"],
        "settled_value": _usd(c["settled_value"], sc),
        "unsettled_payments": c["unsettled"],
        "unsettled_value": _usd(c["unsettled_value"], sc),
        "unsettled_value_minor": c["unsettled_value"],
        "unsettled_share_of_gross": round(_usd_minor(c["unsettled_value"], sc) / max(1, gross_usd_minor), 6),
        "delay": c["delay"],
        "gridlock_events": c["gridlock_events"],
        "gridlocks_resolved": c["gridlocks_resolved"],
        "lsm_runs": c["lsm_runs"],
        "offsets": c["offsets"],
        "cycles": c["cycles"],
        "unwinds": c["unwinds"],
        "rejected": c["rejected"],
        "state_hash": c["state_hash"],
    }


def _settled_share(c: dict[str, Any]) -> float:
    settled, unsettled = int(c["settled"]), int(c["unsettled"])
    return settled / max(1, settled + unsettled)


def simulate(sc: Scenario, out: Path, *, workers: int = 1, ray_address: str | None = None,
             log: Callable[[str], None] = lambda s: None,
             progress: Callable[[int, int], None] | None = None, cache: bool = True) -> dict[str, Any]:
    """Run the scenario's sweep (seeds x designs x levels, the liquidity searches and the stress runs)
    and write results.json, the CSVs and report.html to `out`. Finished runs are cached in
    `out/cache/` (unless `cache` is False), so an interrupted sweep resumes where it stopped.
    `progress(done, total)` is called as tasks finish (cached ones at once)."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    cfg = sc.network.to_config()
    seeds = sc.day_seeds()
    stress_of = {s.name: s for s, _ in sc.stresses}
    design_of = {d.name: d for d in sc.designs}
    store = Cache(out / CACHE_DIR if cache else None)
    total = (len(seeds) * (1 + len(sc.stresses) + len(sc.designs) * (len(sc.levels) + 1))
             + len(seeds) * len(sc.stresses))
    count = {"done": 0, "executed": 0, "cached": 0}
    run_seconds: list[float] = []

    def tick() -> None:
        count["done"] += 1
        if progress is not None:
            progress(count["done"], total)

    log(f"{len(seeds)} day(s) of {len(sc.day.payments)} payments ({sc.day.source})")
    days = {s: sc.day_for(s) for s in seeds}
    day_keys = {s: day_hash(days[s], cfg, sc.rates) for s in seeds}
    runner = Runner(workers, ray_address)
    try:
        # The network, each day and each day's bounds travel once (Ray's object store); tasks refer to them.
        cfg_ref = runner.put(cfg)
        day_refs = {s: runner.put(days[s]) for s in seeds}
        log("bounds: unlimited-liquidity pre-pass per day and stress")
        bkeys = [(s, name) for s in seeds for name in (None, *stress_of)]
        bounds: dict[tuple[int, str | None], Bounds] = {}

        def got_bounds(i: int, b: Bounds) -> None:
            bounds[bkeys[i]] = b
            tick()

        runner.run([("bounds", {"stress": stress_of[n] if n else None}, cfg_ref, day_refs[s], None, None)
                    for s, n in bkeys], got_bounds)
        bounds_refs = {k: runner.put(b) for k, b in bounds.items()}
        t_tasks = time.perf_counter()

        def phase(jobs: list[tuple[Any, str, int, dict[str, Any], str | None]]) -> dict[Any, Any]:
            """Cached results at once, the rest through the runner; each cached as it finishes."""
            got: dict[Any, Any] = {}
            todo: list[tuple[Any, str, str, Call]] = []
            for ident, kind, seed, params, stress_name in jobs:
                key = task_key(kind, day_keys[seed], seed, params)
                hit = store.get(key)
                if hit is not None:
                    got[ident] = hit
                    count["cached"] += 1
                    tick()
                    continue
                call = (kind, params, cfg_ref, day_refs[seed], bounds_refs[(seed, None)],
                        bounds_refs[(seed, stress_name)])
                todo.append((ident, kind, key, call))

            def done(i: int, value: Any) -> None:
                ident, kind, key, _ = todo[i]
                value = orjson.loads(orjson.dumps(value))
                store.put(key, value)
                got[ident] = value
                count["executed"] += 1
                if kind == "run":
                    run_seconds.append(float(value["seconds"]))
                tick()

            runner.run([c for _, _, _, c in todo], done)
            return got

        log(f"sweep: {len(seeds)} seed(s) x {len(sc.designs)} designs x {len(sc.levels)} levels")
        sweep = phase([((d.name, s, lv), "run", s, {"design": d, "level": lv, "stress": None,
                                                     "series": lv == sc.reference}, None)
                       for s in seeds for d in sc.designs for lv in sc.levels])
        log(f"liquidity_needed: bisection for {len(sc.designs)} designs x {len(seeds)} seed(s)")
        searched = phase([((d.name, s), "search", s,
                           {"design": d, "steps": sc.search_steps,
                            "known": [[lv, sweep[(d.name, s, lv)]["complete"]] for lv in sc.levels]}, None)
                          for s in seeds for d in sc.designs])
        log(f"stress: {len(sc.stresses)} cases x {len(seeds)} seed(s)")
        stressed = phase([((st.name, s), "run", s, {"design": design_of[dn], "level": sc.reference, "stress": st,
                                                     "series": True}, st.name)
                          for s in seeds for st, dn in sc.stresses])
        tasks_wall = time.perf_counter() - t_tasks
    finally:
        runner.close()
    results = _results(sc, seeds, days, bounds, sweep, searched, stressed)
    results["timing"] = {
        "seconds": round(time.perf_counter() - t0, 2), "workers": runner.label, "tasks": total,
        "executed": count["executed"], "from_cache": count["cached"],
        "tasks_wall_seconds": round(tasks_wall, 2),  # runs, searches and stress runs, the bounds pre-pass aside
        "run_seconds_sum": round(sum(run_seconds), 2),
        "run_seconds_mean": round(sum(run_seconds) / len(run_seconds), 3) if run_seconds else None,
    }
    (out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    _write_csvs(out, results)
    from .plots import simulate_report

    series = {(d.name, s): sweep[(d.name, s, sc.reference)] for d in sc.designs for s in seeds}
    stress_series = {(st.name, s): stressed[(st.name, s)] for st, _ in sc.stresses for s in seeds}
    (out / "report.html").write_text(simulate_report(results, series, stress_series), encoding="utf-8")
    return results


def _results(sc: Scenario, seeds: list[int], days: dict[int, Day], bounds: dict[tuple[int, str | None], Bounds],
             sweep: dict[Any, Any], searched: dict[Any, Any], stressed: dict[Any, Any]) -> dict[str, Any]:
    gross_cents = {s: _usd_minor(bounds[(s, None)].gross, sc) for s in seeds}
    day_rows = []
    for s in seeds:
        bs = bounds[(s, None)]
        lower_c, upper_c = _ccy_totals(bs.lower), _ccy_totals(bs.upper)
        day_rows.append({"seed": s, "payments": len(days[s].payments), "target_payments": len(bs.target),
                         "gross_value": _usd(bs.gross, sc), "gross_value_minor": bs.gross,
                         "lower_bound": _usd(lower_c, sc), "upper_bound": _usd(upper_c, sc),
                         "lower_bound_minor": lower_c, "upper_bound_minor": upper_c})
    bounds_of_seed = {r["seed"]: r for r in day_rows}
    results: dict[str, Any] = {
        "units": ("amounts are USD equivalents at the scenario's reference rates, as decimal strings; "
                  "*_minor fields are per-currency integers in minor units; means and confidence intervals "
                  "over seeds are statistics (floats, or strings rounded to the cent)"),
        "report_currency": "USD",
        "day": {"source": sc.day.source, "payments": len(sc.day.payments), "date": sc.day.date},
        "seeds": seeds,
        "levels": sc.levels,
        "reference_level": sc.reference,
        "days": day_rows,
        "designs": {},
        "liquidity_needed": [],
        "runs": [],
        "stress": {},
    }
    for s in seeds:
        for d in sc.designs:
            f = searched[(d.name, s)]
            b_row = bounds_of_seed[s]
            results["liquidity_needed"].append({
                "design": d.name, "seed": s, "liquidity_needed": _usd(f["liquidity"], sc),
                "liquidity_needed_minor": f["liquidity"], "liquidity_needed_level": f["level"],
                # False: even the upper bound leaves payments unsettled; liquidity_needed is then the upper bound
                "settles_whole_day": f["settles"], "search_runs": f["runs"],
                "lower_bound": b_row["lower_bound"], "upper_bound": b_row["upper_bound"]})
            for lv in sc.levels:
                results["runs"].append({"design": d.name, "seed": s, "level": lv, "stress": None,
                                        "reference": lv == sc.reference,
                                        **_run_summary(sweep[(d.name, s, lv)], sc, gross_cents[s])})
        for st, dn in sc.stresses:
            results["runs"].append({"design": dn, "seed": s, "level": sc.reference, "stress": st.name,
                                    "reference": False, **_run_summary(stressed[(st.name, s)], sc, gross_cents[s])})
    for d in sc.designs:
        need = [r for r in results["liquidity_needed"] if r["design"] == d.name]
        cents = [_usd_minor(r["liquidity_needed_minor"], sc) for r in need]
        _mean, lo, hi = mean_ci([float(x) for x in cents])
        refs = [sweep[(d.name, s, sc.reference)] for s in seeds]
        delay_m, delay_lo, delay_hi = mean_ci([c["delay"]["mean_s"] for c in refs])
        unsettled = [_usd_minor(c["unsettled_value"], sc) for c in refs]
        by_level = []
        for lv in sc.levels:
            cs = [sweep[(d.name, s, lv)] for s in seeds]
            sm, slo, shi = mean_ci([_settled_share(c) for c in cs])
            dm, dlo, dhi = mean_ci([c["delay"]["mean_s"] for c in cs])
            by_level.append({"level": lv, "settled_share_mean": round(sm, 6), "settled_share_ci95": [round(slo, 6),
                             round(shi, 6)], "delay_mean_s_mean": round(dm, 1),
                             "delay_mean_s_ci95": [round(dlo, 1), round(dhi, 1)],
                             "complete_seeds": sum(1 for c in cs if c["complete"])})
        results["designs"][d.name] = {
            "description": d.description,
            "design": {"on_entry": d.on_entry, "periodic": d.periodic, "period_s": d.period_s,
                       "cycles": list(d.cycles), "cycle_s": d.cycle_s},
            "seeds": len(seeds),
            "liquidity_needed": format_amount(round(sum(cents) / len(cents)), 2),
            "liquidity_needed_ci95": [format_amount(round(lo), 2), format_amount(round(hi), 2)],
            "liquidity_needed_level": round(sum(r["liquidity_needed_level"] for r in need) / len(need), 6),
            "settles_whole_day": all(r["settles_whole_day"] for r in need),
            "reference": {
                "unsettled_value": format_amount(round(sum(unsettled) / len(unsettled)), 2),
                "delay_mean_s": round(delay_m, 1), "delay_mean_s_ci95": [round(delay_lo, 1), round(delay_hi, 1)],
                "delay_p95_s": round(sum(c["delay"]["p95_s"] for c in refs) / len(refs), 1),
                "gridlock_events": round(sum(c["gridlock_events"] for c in refs) / len(refs), 2),
                "gridlocks_resolved": round(sum(c["gridlocks_resolved"] for c in refs) / len(refs), 2),
            },
            "by_level": by_level,
        }
    for st, dn in sc.stresses:
        per_seed = []
        for s in seeds:
            base, r = sweep[(dn, s, sc.reference)], stressed[(st.name, s)]
            members = sorted(set(base["member_settled"]) | set(r["member_settled"]) | set(r["member_unsettled_usd"]))
            knock = {}
            for mem in members:
                b_mean = base["member_delay_s"].get(mem, 0) / max(1, base["member_settled"].get(mem, 0))
                s_mean = r["member_delay_s"].get(mem, 0) / max(1, r["member_settled"].get(mem, 0))
                knock[mem] = {"mean_delay_s_base": round(b_mean, 1), "mean_delay_s_stress": round(s_mean, 1),
                              "unsettled_usd_base": round(base["member_unsettled_usd"].get(mem, 0.0), 2),
                              "unsettled_usd_stress": round(r["member_unsettled_usd"].get(mem, 0.0), 2)}
            per_seed.append({"seed": s, "unsettled_value_base": _usd(base["unsettled_value"], sc),
                             "unsettled_value_stress": _usd(r["unsettled_value"], sc),
                             "mean_delay_s_base": base["delay"]["mean_s"], "mean_delay_s_stress": r["delay"]["mean_s"],
                             "extra_rejections": r["rejected"] - base["rejected"],
                             "rejected_reasons": r["rejected_reasons"], "by_member": knock})
        results["stress"][st.name] = {"kind": st.kind, "member": st.member, "start_s": st.start_s,
                                      "end_s": st.end_s, "fraction": st.fraction, "design": dn, "seeds": per_seed}
    return results


def _write_csvs(out: Path, results: dict[str, Any]) -> None:
    """Flat views of results.json, one row per run (designs.csv: per design and seed)."""
    ref = {(r["design"], r["seed"]): r for r in results["runs"] if r["reference"]}
    with (out / "designs.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["design", "seed", "liquidity_needed_usd", "lower_bound_usd", "upper_bound_usd", "level_needed",
                    "settles_whole_day", "search_runs", "reference_level", "unsettled_value_usd", "delay_mean_s",
                    "delay_p95_s", "delay_max_s", "within_120s_share", "gridlock_events", "gridlocks_resolved",
                    "offsets", "unwinds"])
        for n in results["liquidity_needed"]:
            r = ref[(n["design"], n["seed"])]
            w.writerow([n["design"], n["seed"], n["liquidity_needed"], n["lower_bound"], n["upper_bound"],
                        n["liquidity_needed_level"], n["settles_whole_day"], n["search_runs"],
                        results["reference_level"], r["unsettled_value"], r["delay"]["mean_s"], r["delay"]["p95_s"],
                        r["delay"]["max_s"], r["delay"]["within_120s_share"], r["gridlock_events"],
                        r["gridlocks_resolved"], r["offsets"], r["unwinds"]])
    with (out / "sweep.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["design", "seed", "level", "stress", "liquidity_usd", "settled_payments", "unsettled_payments",
                    "unsettled_value_usd", "delay_mean_s", "delay_p95_s", "gridlock_events", "gridlocks_resolved",
                    "offsets", "cycles", "unwinds", "rejected"])
        for r in results["runs"]:
            w.writerow([r["design"], r["seed"], r["level"], r["stress"] or "", r["liquidity"], r["settled_payments"],
                        r["unsettled_payments"], r["unsettled_value"], r["delay"]["mean_s"], r["delay"]["p95_s"],
                        r["gridlock_events"], r["gridlocks_resolved"], r["offsets"], r["cycles"], r["unwinds"],
                        r["rejected"]])
    with (out / "stress.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["stress", "seed", "kind", "member", "design", "member_affected", "mean_delay_s_base",
                    "mean_delay_s_stress", "unsettled_usd_base", "unsettled_usd_stress"])
        for name, s in results["stress"].items():
            for ps in s["seeds"]:
                for m, k in ps["by_member"].items():
                    w.writerow([name, ps["seed"], s["kind"], s["member"], s["design"], m, k["mean_delay_s_base"],
                                k["mean_delay_s_stress"], k["unsettled_usd_base"], k["unsettled_usd_stress"]])


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))
