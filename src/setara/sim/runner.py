"""Run one business day through the production engine in simulated time, under one settlement design.

The engine is the same `Engine` production runs; the runner is only its clock and its operator: it
submits each payment at its time, runs the design's periodic liquidity-saving algorithm every
`period_s` simulated seconds (the solver chooses, the engine re-checks and settles atomically), closes
deferred-net cycles every `cycle_s`, applies stress events, and records what happened.

Liquidity is measured the way BoF-PSS2 does (Leinonen & Soramäki, "Optimizing liquidity usage and
settlement speed in payment systems", 1999):
- lower bound: each account's multilateral net debit position at the end of the day,
  max(0, -net), summed: what any design needs at least to settle everything;
- upper bound: each account's largest cumulative net debit during the day when every payment
  settles at once on submission, summed: what gross RTGS needs to settle everything without delay.
Liquidity levels in between are `lower + level * (upper - lower)` per account, level in [0, 1].
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from setara.core import (
    HELD,
    QUEUED,
    REJECTED,
    SETTLED,
    CloseCycle,
    DayClose,
    Engine,
    EngineError,
    Fund,
    Init,
    Notice,
    PostRate,
    SettleSet,
    StatusEvent,
    Submit,
)
from setara.core.ledger import Posting
from setara.core.network import Network

from .day import Day, usd_value

__all__ = [
    "Bounds",
    "Design",
    "RunResult",
    "Stress",
    "bounds_of",
    "find_liquidity_needed",
    "liquidity_at",
    "network_config",
    "run_day",
]

Account = tuple[str, str]
BIG_OPENING_MINOR = 10**17  # "unlimited" liquidity of the bounds pre-pass
MAX_AMOUNT_MINOR = 10**17
SAMPLE_S = 600
LSM_TIME_LIMIT_S = 2.0  # below ~1 s the optimiser races its own wall-clock budgets and stops being reproducible
SEARCH_STEPS = 9


@dataclass(frozen=True, slots=True)
class Design:
    """A settlement design: what the network's liquidity_saving and currencies' settlement say.

    on_entry: "bilateral" offsetting when a payment would queue, or "none".
    periodic: a setara.liquidity algorithm run every period_s over the RTGS queue, or "none".
    cycles: currencies settled in deferred-net cycles (closed every cycle_s and at cut-off);
    ("*",) means every currency.
    """

    name: str
    on_entry: str = "none"
    periodic: str = "none"
    period_s: int = 300
    cycles: tuple[str, ...] = ()
    cycle_s: int = 1800
    description: str = ""

    def cycled(self, currency: str) -> bool:
        return "*" in self.cycles or currency in self.cycles


@dataclass(frozen=True, slots=True)
class Stress:
    """outage: the member sends nothing from start_s until end_s (its payments wait and go out at
    end_s, or at cut-off) while it keeps receiving - a liquidity sink. liquidity_shock: at start_s
    the member loses `fraction` of its available balance (in `currency`, or every currency).
    fx_stop: at start_s the FX provider withdraws its quotes for the rest of the day."""

    name: str
    kind: str  # outage | liquidity_shock | fx_stop
    member: str
    start_s: int
    end_s: int | None = None
    fraction: float = 0.5
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class Bounds:
    lower: dict[Account, int]
    upper: dict[Account, int]
    target: frozenset[str]  # ids that settle when liquidity is unlimited (not rejected, not held)
    gross: dict[str, int]  # gross value of the target payments per currency (all legs)


@dataclass
class RunResult:
    design: str
    level: float | None
    liquidity: dict[str, int]  # per currency, minor units
    submitted: int = 0
    settled: int = 0
    settled_value: dict[str, int] = field(default_factory=dict)
    unsettled: int = 0  # target payments not settled by cut-off
    unsettled_value: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    held: int = 0
    delays_s: list[int] = field(default_factory=list)
    delay_values_usd: list[float] = field(default_factory=list)
    lsm_runs: int = 0
    gridlocks_resolved: int = 0  # periodic runs that settled something
    lsm_settled: int = 0
    lsm_value: dict[str, int] = field(default_factory=dict)
    offsets: int = 0  # bilateral offsets on entry
    cycles: list[dict[str, Any]] = field(default_factory=list)
    unwinds: int = 0
    gridlock_events: int = 0  # samples where the queue held a gridlock multilateral netting would clear
    liquidity_used: dict[Account, int] = field(default_factory=dict)  # opening - lowest balance
    series_t: list[int] = field(default_factory=list)
    series_queue_usd: list[float] = field(default_factory=list)
    series_balance_usd: dict[str, list[float]] = field(default_factory=dict)
    member_delay_s: dict[str, int] = field(default_factory=dict)  # by debtor: summed delay of settled payments
    member_settled: dict[str, int] = field(default_factory=dict)
    member_unsettled_usd: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    state_hash: str = ""
    complete: bool = False  # every target payment settled by cut-off

    def delay_stats(self) -> dict[str, float]:
        if not self.delays_s:
            return {"mean_s": 0.0, "p50_s": 0.0, "p95_s": 0.0, "p99_s": 0.0, "max_s": 0.0,
                    "value_weighted_mean_s": 0.0, "within_120s_share": 1.0}
        d = np.asarray(self.delays_s, dtype=np.float64)
        w = np.asarray(self.delay_values_usd, dtype=np.float64)
        return {
            "mean_s": round(float(d.mean()), 1),
            "p50_s": float(np.percentile(d, 50)),
            "p95_s": float(np.percentile(d, 95)),
            "p99_s": float(np.percentile(d, 99)),
            "max_s": float(d.max()),
            "value_weighted_mean_s": round(float((d * w).sum() / w.sum()), 1) if w.sum() > 0 else 0.0,
            "within_120s_share": round(float((d <= 120).mean()), 5),
        }


def network_config(network: Network, design: Design | None, liquidity: Mapping[Account, int] | None) -> dict[str, Any]:
    """The network's Init config with the design's settlement modes and the given opening liquidity
    (every account's whole liquidity as an opening balance, no credit lines)."""
    cfg = network.to_config()
    for c in cfg["currencies"]:
        if design is not None:
            c["settlement"] = "cycles" if design.cycled(c["code"]) else "rtgs"
        if c["max_amount_minor"] is None:
            c["max_amount_minor"] = MAX_AMOUNT_MINOR
    if liquidity is not None:
        for a in cfg["accounts"]:
            a["opening_minor"] = int(liquidity.get((a["member"], a["currency"]), 0))
            a["credit_line_minor"] = 0
            a["net_debit_cap_minor"] = None
    if design is not None:
        cfg["liquidity_saving"] = {"on_entry": design.on_entry, "periodic": design.periodic,
                                   "period_s": max(1, min(design.period_s, 86_400))}
    return cfg


def liquidity_at(bounds: Bounds, level: float) -> dict[Account, int]:
    """Per-account liquidity `lower + level * (upper - lower)`, rounded up to a minor unit."""
    out = {}
    for acct, hi in bounds.upper.items():
        lo = bounds.lower.get(acct, 0)
        out[acct] = lo + math.ceil(level * (hi - lo)) if level < 1.0 else hi
    return out


def _per_currency(values: Mapping[Account, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_m, c), v in values.items():
        out[c] = out.get(c, 0) + v
    return out


# ---------------------------------------------------------------------------------------------- the run


_K_STRESS, _K_PAY, _K_CYCLE, _K_LSM, _K_SAMPLE = 0, 1, 2, 3, 4


def run_day(
    network: Network,
    day: Day,
    design: Design,
    liquidity: Mapping[Account, int] | None = None,
    *,
    stress: Stress | None = None,
    screening: Mapping[str, str] | None = None,
    target: frozenset[str] | None = None,
    level: float | None = None,
    series: bool = False,
    gridlock_check: bool = False,
    sample_s: int = SAMPLE_S,
    lsm_time_limit_s: float = LSM_TIME_LIMIT_S,
    rates: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """One day through a fresh engine. `liquidity` None keeps the network's own opening balances.
    `screening` maps payment id -> "review" | "block" (default "clear")."""
    from setara.liquidity import solve
    from setara.node import queue_problem

    t0 = time.perf_counter()
    cfg = network_config(network, design, liquidity)
    engine = Engine()
    day0 = day.start_ms()
    engine.apply(Init(cfg, day0 + day.start_s * 1000 - 1))
    net = engine.network
    assert net is not None
    units = {c: v.currency.minor_units for c, v in net.currencies.items()}
    ref = dict(rates) if rates is not None else None
    screening = screening or {}
    members = [m for m in net.members]
    opening = {(a.member, a.currency): a.opening_minor for a in net.accounts.values()}
    bal = dict(opening)
    low = dict(opening)
    res = RunResult(design.name, level, _per_currency(opening))

    pays = day.payments
    index = {p.id: i for i, p in enumerate(pays)}
    usd = [usd_value(p.amount_minor, p.currency, units.get(p.currency, 2), ref) for p in pays]
    submit_t = [0] * len(pays)
    state = bytearray(len(pays))  # 0 new, 1 queued, 2 settled, 3 rejected, 4 held
    queued_usd = 0.0
    changes = 0
    lsm_seen = -1

    # ---- the timeline
    timeline: list[tuple[int, int, int]] = []
    delayed_to: dict[int, int] = {}
    if stress is not None and stress.kind == "outage":
        stop = stress.end_s if stress.end_s is not None else day.end_s
        for i, p in enumerate(pays):
            if p.debtor == stress.member and stress.start_s <= p.time_s < stop:
                delayed_to[i] = stop
    for i, p in enumerate(pays):
        timeline.append((delayed_to.get(i, p.time_s), _K_PAY, i))
    if stress is not None and stress.kind in ("liquidity_shock", "fx_stop"):
        timeline.append((stress.start_s, _K_STRESS, 0))
    if any(design.cycled(c) for c in net.currencies):
        t = day.start_s + design.cycle_s
        while t < day.end_s:
            timeline.append((t, _K_CYCLE, 0))
            t += design.cycle_s
        timeline.append((day.end_s, _K_CYCLE, 0))
    if design.periodic != "none":
        t = day.start_s + design.period_s
        while t < day.end_s:
            timeline.append((t, _K_LSM, 0))
            t += design.period_s
        timeline.append((day.end_s, _K_LSM, 0))
    if series or gridlock_check:
        t = day.start_s
        while t <= day.end_s:
            timeline.append((t, _K_SAMPLE, 0))
            t += sample_s
    timeline.sort()

    def absorb(events: list[Any]) -> None:
        nonlocal queued_usd, changes
        for ev in events:
            et = type(ev)
            if et is StatusEvent:
                i = index.get(ev.payment_id, -1)
                if i < 0:
                    continue
                changes += 1
                st = ev.status
                if st == SETTLED:
                    if state[i] == 1:
                        queued_usd -= usd[i]
                    state[i] = 2
                    res.settled += 1
                    p = pays[i]
                    res.settled_value[p.currency] = res.settled_value.get(p.currency, 0) + p.amount_minor
                    delay = ev.time_ms // 1000 - day0 // 1000 - p.time_s
                    res.delays_s.append(delay)
                    res.member_delay_s[p.debtor] = res.member_delay_s.get(p.debtor, 0) + delay
                    res.member_settled[p.debtor] = res.member_settled.get(p.debtor, 0) + 1
                    res.delay_values_usd.append(usd[i])
                elif st == QUEUED:
                    state[i] = 1
                    queued_usd += usd[i]
                elif st == REJECTED:
                    if state[i] == 1:
                        queued_usd -= usd[i]
                    state[i] = 3
                    res.rejected += 1
                    code = ev.reason_code or "?"
                    res.rejected_reasons[code] = res.rejected_reasons.get(code, 0) + 1
                elif st == HELD:
                    state[i] = 4
            elif et is Posting:
                changes += 1
                d = (ev.debit, ev.currency)
                c = (ev.credit, ev.currency)
                if d in bal:
                    b = bal[d] - ev.amount_minor
                    bal[d] = b
                    if b < low[d]:
                        low[d] = b
                if c in bal:
                    bal[c] += ev.amount_minor
            elif et is Notice:
                kind = ev.kind
                if kind == "offset":
                    res.offsets += 1
                elif kind == "cycle_closed":
                    res.cycles.append({k: ev.data[k] for k in ("currency", "cycle", "payments", "gross_minor",
                                                                "liquidity_needed_minor", "netting_efficiency_ppm")}
                                      | {"time_s": 0})
                elif kind == "cycle_unwound":
                    res.unwinds += 1

    def now_ms(t_s: int) -> int:
        return day0 + t_s * 1000

    for prov, base, quote, text in day.rates:
        if (prov in net.members and (prov, base) in net.accounts and (prov, quote) in net.accounts):
            absorb(engine.apply(PostRate(prov, base, quote, text, now_ms(day.end_s + 3600), now_ms(day.start_s) - 1)))

    done = 0
    for t, kind, i in timeline:
        if kind == _K_PAY:
            p = pays[i]
            submit_t[i] = t
            res.submitted += 1
            cmd = Submit(p.id, p.debtor, p.creditor, p.currency, p.amount_minor, p.priority, i, "",
                         screening.get(p.id, "clear"), "sim", now_ms(t), p.to_currency)
            try:
                evs = engine.apply(cmd)
            except EngineError:
                state[i] = 3
                res.rejected += 1
                res.rejected_reasons["ENGINE"] = res.rejected_reasons.get("ENGINE", 0) + 1
                continue
            absorb(evs)
            done += 1
            if progress is not None and done % 500 == 0:
                progress(500)
        elif kind == _K_LSM:
            if changes == lsm_seen:
                continue  # nothing moved since the last run found nothing: it would find nothing again
            available, items = queue_problem(engine)
            if not items:
                lsm_seen = changes
                continue
            res.lsm_runs += 1
            sol = solve(available, items, design.periodic, time_limit_s=lsm_time_limit_s, compute_lp_bound=False)
            if sol.selected:
                evs = engine.apply(SettleSet(tuple(sol.selected), design.periodic, now_ms(t)))
                res.gridlocks_resolved += 1
                res.lsm_settled += len(sol.selected)
                absorb(evs)
                for pid in sol.selected:
                    k = index.get(pid, -1)
                    if k >= 0:
                        q = pays[k]
                        res.lsm_value[q.currency] = res.lsm_value.get(q.currency, 0) + q.amount_minor
            else:
                lsm_seen = changes
        elif kind == _K_CYCLE:
            n_before = len(res.cycles)
            # One netting over every cycled currency ("*"): a PvP payment's two legs net together.
            # Closing one currency at a time left the FX provider short in the other leg's currency
            # (its inflows there waited in that currency's cycle), and the unwinds cascaded.
            if any(engine.cycle_pending.get(c) for c, cc in net.currencies.items() if cc.settlement == "cycles"):
                absorb(engine.apply(CloseCycle("*", now_ms(t))))
            for rec in res.cycles[n_before:]:
                rec["time_s"] = t
        elif kind == _K_STRESS:
            assert stress is not None
            absorb(_apply_stress(engine, stress, now_ms(t)))
        elif kind == _K_SAMPLE:
            if series:
                res.series_t.append(t)
                res.series_queue_usd.append(max(0.0, queued_usd))
                for m in members:
                    v = 0.0
                    for c in net.currencies:
                        b = bal.get((m, c))
                        if b is not None:
                            v += usd_value(b, c, units[c], ref)
                    res.series_balance_usd.setdefault(m, []).append(v)
            if gridlock_check and queued_usd > 0:
                available, items = queue_problem(engine)
                if items and solve(available, items, "partial", time_limit_s=1.0, compute_lp_bound=False).selected:
                    res.gridlock_events += 1

    # ---- cut-off
    tgt = target if target is not None else frozenset(p.id for p in pays)
    for i, p in enumerate(pays):
        if p.id in tgt and state[i] != 2:
            res.unsettled += 1
            res.unsettled_value[p.currency] = res.unsettled_value.get(p.currency, 0) + p.amount_minor
            res.member_unsettled_usd[p.debtor] = res.member_unsettled_usd.get(p.debtor, 0.0) + usd[i]
    res.held = sum(1 for s in state if s == 4)
    res.complete = res.unsettled == 0
    res.state_hash = engine.state_hash() if series else ""
    absorb(engine.apply(DayClose(now_ms(day.end_s))))
    res.liquidity_used = {a: max(0, opening[a] - low[a]) for a in opening if a[0] in net.members}
    res.seconds = time.perf_counter() - t0
    if progress is not None:
        progress(done % 500)
    return res


def _apply_stress(engine: Engine, stress: Stress, time_ms: int) -> list[Any]:
    net = engine.network
    assert net is not None
    out: list[Any] = []
    if stress.kind == "liquidity_shock":
        for c in net.currencies:
            if stress.currency not in (None, c) or (stress.member, c) not in net.accounts:
                continue
            amount = int(engine.available(stress.member, c) * stress.fraction)
            if amount > 0:
                out += engine.apply(Fund(f"shock:{stress.member}:{c}", stress.member, c, amount, True, time_ms))
    elif stress.kind == "fx_stop":
        for r in list(engine.valid_rates(time_ms)):
            if r.provider == stress.member:
                out += engine.apply(PostRate(r.provider, r.base, r.quote, r.text, time_ms + 1, time_ms))
    return out


# ---------------------------------------------------------------------------------------------- bounds & search


def bounds_of(network: Network, day: Day, *, stress: Stress | None = None,
              screening: Mapping[str, str] | None = None) -> Bounds:
    """BoF-PSS2 lower and upper bounds per account, from a gross run with unlimited liquidity (so
    cross-currency legs, FX provider choice and stress effects come from the engine itself)."""
    gross = Design("bounds", "none", "none")
    cfg_accounts = {(a.member, a.currency): BIG_OPENING_MINOR for a in network.accounts.values()}
    engine = Engine()
    engine.apply(Init(network_config(network, gross, cfg_accounts), day.start_ms() + day.start_s * 1000 - 1))
    day0 = day.start_ms()
    for prov, base, quote, text in day.rates:
        if prov in network.members and (prov, base) in network.accounts and (prov, quote) in network.accounts:
            engine.apply(PostRate(prov, base, quote, text, day0 + (day.end_s + 3600) * 1000,
                                  day0 + day.start_s * 1000 - 1))
    cum: dict[Account, int] = {a: 0 for a in network.accounts}
    worst: dict[Account, int] = {a: 0 for a in network.accounts}
    settled: set[str] = set()
    gross_value: dict[str, int] = {}
    screening = screening or {}
    events: list[tuple[int, int, int]] = []
    delayed: dict[int, int] = {}
    if stress is not None and stress.kind == "outage":
        stop = stress.end_s if stress.end_s is not None else day.end_s
        for i, p in enumerate(day.payments):
            if p.debtor == stress.member and stress.start_s <= p.time_s < stop:
                delayed[i] = stop
    for i, p in enumerate(day.payments):
        events.append((delayed.get(i, p.time_s), 1, i))
    if stress is not None and stress.kind == "fx_stop":
        events.append((stress.start_s, 0, -1))
    events.sort()
    for t, _k, i in events:
        if i < 0:
            assert stress is not None
            _apply_stress(engine, stress, day0 + t * 1000)
            continue
        p = day.payments[i]
        try:
            evs = engine.apply(Submit(p.id, p.debtor, p.creditor, p.currency, p.amount_minor, p.priority, i, "",
                                      screening.get(p.id, "clear"), "sim", day0 + t * 1000, p.to_currency))
        except EngineError:
            continue
        for ev in evs:
            if type(ev) is Posting:
                d = (ev.debit, ev.currency)
                if d in cum:
                    v = cum[d] - ev.amount_minor
                    cum[d] = v
                    if -v > worst[d]:
                        worst[d] = -v
                c = (ev.credit, ev.currency)
                if c in cum:
                    cum[c] += ev.amount_minor
                gross_value[ev.currency] = gross_value.get(ev.currency, 0) + ev.amount_minor
            elif type(ev) is StatusEvent and ev.status == SETTLED:
                settled.add(ev.payment_id)
    stuck = [p.id for p in engine.queued()]
    if stuck:
        raise ValueError(f"{len(stuck)} payments do not settle even with unlimited liquidity (first: {stuck[0]})")
    lower = {a: max(0, -v) for a, v in cum.items()}
    return Bounds(lower, worst, frozenset(settled), gross_value)


def find_liquidity_needed(
    network: Network,
    day: Day,
    design: Design,
    bounds: Bounds,
    *,
    stress: Stress | None = None,
    screening: Mapping[str, str] | None = None,
    known: Mapping[float, bool] | None = None,
    steps: int = SEARCH_STEPS,
    lsm_time_limit_s: float = LSM_TIME_LIMIT_S,
) -> tuple[float, dict[Account, int], int, bool]:
    """The least level in [0, 1] (to 2**-steps) at which the design settles every target payment by
    cut-off, by bisection; `known` holds levels already run (from the sweep). Returns (level,
    per-account liquidity, runs made, settles): at level 1 gross RTGS settles everything by
    definition of the upper bound, and so do the liquidity-saving designs and (closing every cycled
    currency in one netting) the net cycles in practice; a design that does not gets level 1 and
    settles=False. Settlement is
    assumed monotone in liquidity, which holds for gross RTGS and, in practice, for the solvers."""
    known = dict(known or {})
    runs = 0

    def ok(level: float) -> bool:
        nonlocal runs
        if level not in known:
            runs += 1
            r = run_day(network, day, design, liquidity_at(bounds, level), stress=stress, screening=screening,
                        target=bounds.target, level=level, lsm_time_limit_s=lsm_time_limit_s)
            known[level] = r.complete
        return known[level]

    if not ok(1.0):
        return 1.0, liquidity_at(bounds, 1.0), runs, False
    lo_fail = max((lv for lv, good in known.items() if not good), default=-1.0)
    hi_ok = min((lv for lv, good in known.items() if good and lv > lo_fail), default=1.0)
    if lo_fail < 0 and ok(0.0):
        return 0.0, liquidity_at(bounds, 0.0), runs, True
    lo = max(lo_fail, 0.0)
    hi = hi_ok
    for _ in range(steps):
        if hi - lo <= 2.0**-steps:
            break
        mid = (lo + hi) / 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi, liquidity_at(bounds, hi), runs, True
