"""`setara simulate`: one day under several settlement designs, liquidity sweeps and stress scenarios.

Every run drives the production `Engine` directly (no store) in simulated time; runs are independent,
so they go to local worker processes (concurrent.futures) or, with `--ray ADDRESS`, to a Ray cluster.
"""

from __future__ import annotations

import csv
import os
import time
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson

from setara.core.money import format_amount
from setara.core.network import Network, NetworkError, load_network

from .day import REFERENCE_RATES, Day, DayError, base_network, generate_day, load_day
from .runner import (
    Bounds,
    Design,
    RunResult,
    Stress,
    bounds_of,
    find_liquidity_needed,
    liquidity_at,
    run_day,
)

__all__ = ["EXAMPLE_SCENARIO", "Scenario", "ScenarioError", "load_scenario", "simulate"]

WORKERS_MAX = 256
DESIGNS_MAX = 64
LEVELS_MAX = 41


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
    day: Day
    designs: list[Design]
    levels: list[float]
    reference: float
    search_steps: int
    stresses: list[tuple[Stress, str]]
    rates: dict[str, str]
    text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


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
    unknown = set(doc) - {"day", "liquidity", "rates", "designs", "stress"}
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
    try:
        if recorded:
            day = load_day(str(base / recorded), network, rates=rates)
        else:
            day = generate_day(
                network, _get(d, "payments", "day", int, 4000), seed=_get(d, "seed", "day", int, 7),
                cross_currency_share=_get(d, "cross_currency_share", "day", float, 0.2),
                urgent_share=_get(d, "urgent_share", "day", float, 0.1),
                value_median_usd=_get(d, "value_median_usd", "day", float, 25_000.0),
                value_sigma=_get(d, "value_sigma", "day", float, 1.7),
                rates=rates, start_s=start, end_s=end, sanctioned_payments=0,
            )
    except (DayError, ValueError) as e:
        raise ScenarioError(f"day: {e}") from None
    liq = _get(doc, "liquidity", "scenario", dict, {})
    levels = sorted({float(x) for x in _get(liq, "levels", "liquidity", list, [0.0, 0.1, 0.25, 0.5, 1.0])})
    if not levels or len(levels) > LEVELS_MAX or not all(0.0 <= x <= 1.0 for x in levels):
        raise ScenarioError(f"liquidity.levels: 1..{LEVELS_MAX} numbers in [0, 1]")
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
        stresses.append((stress, design))
    return Scenario(network, day, designs, levels, reference, steps, stresses, rates, text)


# ---------------------------------------------------------------------------------------------- tasks


def _task(job: tuple[Any, ...]) -> Any:
    """One unit of work for a worker process or a Ray task (module-level so it pickles)."""
    kind = job[0]
    if kind == "run":
        _, cfg, day, design, liquidity, stress, target, level, series = job
        net = Network.from_config(cfg)
        return run_day(net, day, design, liquidity, stress=stress, target=target, level=level,
                       series=series, gridlock_check=series)
    if kind == "search":
        _, cfg, day, design, bounds, known, steps = job
        return find_liquidity_needed(Network.from_config(cfg), day, design, bounds, known=known, steps=steps)
    if kind == "bounds":
        _, cfg, day, stress = job
        return bounds_of(Network.from_config(cfg), day, stress=stress)
    raise ValueError(f"unknown task {kind}")


class Runner:
    """Maps tasks over local processes (workers > 1), the current process (1) or Ray."""

    def __init__(self, workers: int, ray_address: str | None = None) -> None:
        self.workers = max(1, min(workers, WORKERS_MAX))
        self.ray_address = ray_address
        self._pool: ProcessPoolExecutor | None = None
        self._ray: Any = None
        if ray_address:
            try:
                import ray
            except ImportError:
                raise ScenarioError("--ray needs Ray, which is not installed (pip install 'setara[ray]')") from None
            try:
                ray.init(address=None if ray_address == "local" else ray_address, ignore_reinit_error=True,
                         log_to_driver=False)
            except Exception as e:
                raise ScenarioError(f"--ray {ray_address}: cannot connect ({e})") from None
            self._ray = ray
            self._remote = ray.remote(_task)
        elif self.workers > 1:
            self._pool = ProcessPoolExecutor(max_workers=self.workers)

    def map(self, jobs: Sequence[tuple[Any, ...]]) -> list[Any]:
        if self._ray is not None:
            return list(self._ray.get([self._remote.remote(j) for j in jobs]))
        if self._pool is not None:
            return list(self._pool.map(_task, jobs))
        return [_task(j) for j in jobs]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        if self._ray is not None:
            self._ray.shutdown()


# ---------------------------------------------------------------------------------------------- results


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


def _run_summary(r: RunResult, sc: Scenario, bounds: Bounds) -> dict[str, Any]:
    gross = sum(_usd_minor({c: v}, sc) for c, v in bounds.gross.items()) or 1
    return {
        "level": r.level,
        "liquidity": _usd(r.liquidity, sc),
        "liquidity_minor": r.liquidity,
        "settled_payments": r.settled,
        "settled_value": _usd(r.settled_value, sc),
        "unsettled_payments": r.unsettled,
        "unsettled_value": _usd(r.unsettled_value, sc),
        "unsettled_value_minor": r.unsettled_value,
        "unsettled_share_of_gross": round(_usd_minor(r.unsettled_value, sc) / gross, 6),
        "delay": r.delay_stats(),
        "gridlock_events": r.gridlock_events,
        "gridlocks_resolved": r.gridlocks_resolved,
        "lsm_runs": r.lsm_runs,
        "offsets": r.offsets,
        "cycles": len([c for c in r.cycles if c["payments"]]),
        "unwinds": r.unwinds,
        "rejected": r.rejected,
        "seconds": round(r.seconds, 3),
    }


def simulate(sc: Scenario, out: Path, *, workers: int = 1, ray_address: str | None = None,
             log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    cfg = sc.network.to_config()
    runner = Runner(workers, ray_address)
    try:
        log(f"day: {len(sc.day.payments)} payments ({sc.day.source}); computing bounds")
        stress_jobs = [("bounds", cfg, sc.day, s) for s, _ in sc.stresses]
        all_bounds = runner.map([("bounds", cfg, sc.day, None), *stress_jobs])
        bounds: Bounds = all_bounds[0]
        sweep_jobs = [("run", cfg, sc.day, d, liquidity_at(bounds, lv), None, bounds.target, lv, lv == sc.reference)
                      for d in sc.designs for lv in sc.levels]
        log(f"sweep: {len(sweep_jobs)} runs ({len(sc.designs)} designs x {len(sc.levels)} levels)")
        sweep: list[RunResult] = runner.map(sweep_jobs)
        by_design: dict[str, list[RunResult]] = {d.name: [] for d in sc.designs}
        for r in sweep:
            by_design[r.design].append(r)
        search_jobs = [("search", cfg, sc.day, d, bounds, {r.level: r.complete for r in by_design[d.name]
                                                           if r.level is not None}, sc.search_steps)
                       for d in sc.designs]
        log(f"liquidity_needed: bisection for {len(search_jobs)} designs")
        searched = runner.map(search_jobs)
        stress_runs: list[tuple[Stress, RunResult, RunResult]] = []
        if sc.stresses:
            jobs = []
            liq = liquidity_at(bounds, sc.reference)
            design_of = {d.name: d for d in sc.designs}
            for (s, dname), sb in zip(sc.stresses, all_bounds[1:], strict=True):
                jobs.append(("run", cfg, sc.day, design_of[dname], liq, s, sb.target, sc.reference, True))
            log(f"stress: {len(jobs)} runs")
            stressed = runner.map(jobs)
            for (s, dname), r in zip(sc.stresses, stressed, strict=True):
                base = next(x for x in by_design[dname] if x.level == sc.reference)
                stress_runs.append((s, base, r))
    finally:
        runner.close()
    lower_c, upper_c = _ccy_totals(bounds.lower), _ccy_totals(bounds.upper)
    results: dict[str, Any] = {
        "units": ("amounts are USD equivalents at the scenario's reference rates, as decimal strings; "
                  "*_minor fields are per-currency integers in minor units"),
        "report_currency": "USD",
        "day": {"source": sc.day.source, "payments": len(sc.day.payments), "date": sc.day.date,
                "target_payments": len(bounds.target), "gross_value": _usd(bounds.gross, sc),
                "gross_value_minor": bounds.gross},
        "lower_bound": _usd(lower_c, sc), "upper_bound": _usd(upper_c, sc),
        "reference_level": sc.reference,
        "designs": {},
        "stress": {},
    }
    for d, (level, liq, runs, settles) in zip(sc.designs, searched, strict=True):
        rs = sorted(by_design[d.name], key=lambda r: r.level or 0.0)
        ref = next(r for r in rs if r.level == sc.reference)
        needed_c = _ccy_totals(liq)
        results["designs"][d.name] = {
            "description": d.description,
            "design": {"on_entry": d.on_entry, "periodic": d.periodic, "period_s": d.period_s,
                       "cycles": list(d.cycles), "cycle_s": d.cycle_s},
            "liquidity_needed": _usd(needed_c, sc),
            "lower_bound": _usd(lower_c, sc),
            "upper_bound": _usd(upper_c, sc),
            "liquidity_needed_level": level,
            "settles_whole_day": settles,  # False: even the upper bound leaves payments unsettled
            "liquidity_needed_minor": needed_c, "lower_bound_minor": lower_c, "upper_bound_minor": upper_c,
            "search_runs": runs,
            **{k: v for k, v in _run_summary(ref, sc, bounds).items() if k not in ("level",)},
            "sweep": [_run_summary(r, sc, bounds) for r in rs],
        }
    for s, base, r in stress_runs:
        members = sorted(set(base.member_settled) | set(r.member_settled) | set(r.member_unsettled_usd))
        knock = {}
        for m in members:
            b_mean = base.member_delay_s.get(m, 0) / max(1, base.member_settled.get(m, 0))
            s_mean = r.member_delay_s.get(m, 0) / max(1, r.member_settled.get(m, 0))
            knock[m] = {"mean_delay_s_base": round(b_mean, 1), "mean_delay_s_stress": round(s_mean, 1),
                        "unsettled_usd_base": round(base.member_unsettled_usd.get(m, 0.0), 2),
                        "unsettled_usd_stress": round(r.member_unsettled_usd.get(m, 0.0), 2)}
        results["stress"][s.name] = {
            "kind": s.kind, "member": s.member, "start_s": s.start_s, "end_s": s.end_s, "fraction": s.fraction,
            "design": r.design, "baseline": _run_summary(base, sc, bounds), "stressed": _run_summary(r, sc, bounds),
            "rejected_reasons": r.rejected_reasons, "by_member": knock,
        }
    results["seconds"] = round(time.perf_counter() - t0, 2)
    results["workers"] = "ray:" + ray_address if ray_address else workers
    (out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    _write_csvs(out, results)
    from .plots import simulate_report

    refs = {d.name: next(r for r in by_design[d.name] if r.level == sc.reference) for d in sc.designs}
    (out / "report.html").write_text(simulate_report(results, by_design, refs, stress_runs), encoding="utf-8")
    return results


def _write_csvs(out: Path, results: dict[str, Any]) -> None:
    with (out / "designs.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["design", "liquidity_needed_usd", "lower_bound_usd", "upper_bound_usd", "level_needed",
                    "reference_level", "unsettled_value_usd", "delay_mean_s", "delay_p95_s", "delay_max_s",
                    "within_120s_share", "gridlock_events", "gridlocks_resolved", "offsets", "unwinds"])
        for name, d in results["designs"].items():
            w.writerow([name, d["liquidity_needed"], d["lower_bound"], d["upper_bound"], d["liquidity_needed_level"],
                        results["reference_level"], d["unsettled_value"], d["delay"]["mean_s"], d["delay"]["p95_s"],
                        d["delay"]["max_s"], d["delay"]["within_120s_share"], d["gridlock_events"],
                        d["gridlocks_resolved"], d["offsets"], d["unwinds"]])
    with (out / "sweep.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["design", "level", "liquidity_usd", "settled_payments", "unsettled_payments",
                    "unsettled_value_usd", "delay_mean_s", "delay_p95_s", "gridlocks_resolved"])
        for name, d in results["designs"].items():
            for s in d["sweep"]:
                w.writerow([name, s["level"], s["liquidity"], s["settled_payments"], s["unsettled_payments"],
                            s["unsettled_value"], s["delay"]["mean_s"], s["delay"]["p95_s"], s["gridlocks_resolved"]])
    with (out / "stress.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["stress", "kind", "member", "design", "member_affected", "mean_delay_s_base",
                    "mean_delay_s_stress", "unsettled_usd_base", "unsettled_usd_stress"])
        for name, s in results["stress"].items():
            for m, k in s["by_member"].items():
                w.writerow([name, s["kind"], s["member"], s["design"], m, k["mean_delay_s_base"],
                            k["mean_delay_s_stress"], k["unsettled_usd_base"], k["unsettled_usd_stress"]])


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))
