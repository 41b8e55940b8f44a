"""`setara demo`: a trade day end to end on the embedded default (SQLite), through the durable node.

Build the example network, fund it from the day's own liquidity bounds, generate the day, screen every
party, submit each payment at its simulated time through `Node` (so the database is a normal Setara
database afterwards: `setara export`, `setara verify`, `setara holds list` work on it), run the
network's periodic liquidity-saving algorithm every period_s simulated seconds, and report.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from setara.core import PostRate
from setara.core.instructions import Instruction
from setara.core.network import Network
from setara.node import Node
from setara.node.projection import status_rows
from setara.ports import ScreeningDecision

from .day import Day, base_network, generate_day, usd_value
from .report import Page, figure, money_usd
from .runner import Design, bounds_of, liquidity_at, network_config

__all__ = ["DemoInputError", "DemoResult", "DemoScreening", "run_demo", "synthetic_list"]

DEMO_LEVEL = 0.15  # opening liquidity: net end-of-day debit + 15% of the gap to gross RTGS's need
DEMO_PERIOD_S = 300
DEMO_ALGORITHM = "optimise"
LSM_TIME_LIMIT_S = 2.0  # below ~1 s the optimiser races its own wall-clock budgets and stops being reproducible
SYNTHETIC_SOURCE = "synthetic-demo"

# Fictional names, for the clearly labelled synthetic list used when no UN list is given.
_SYNTHETIC = (
    ("SYN-0001", "Oceanic Shadow Trading LLC", "entity", "KP"),
    ("SYN-0002", "Viktor Demoskov", "person", "RU"),
    ("SYN-0003", "Red Lantern Maritime Company", "entity", "KP"),
    ("SYN-0004", "Kim Chol Ung", "person", "KP"),
    ("SYN-0005", "Golden Crescent Exchange House", "entity", "IR"),
    ("SYN-0006", "Abdul Rahman Al-Fictiti", "person", "SY"),
    ("SYN-0007", "Northstar Arms Procurement Ltd", "entity", "BY"),
    ("SYN-0008", "Lazarus Harbor Logistics", "entity", "KP"),
)


class DemoInputError(ValueError):
    """A problem with the demo's inputs (the folder, the UN list), not with the system."""


def synthetic_list() -> Any:
    """A small, clearly labelled synthetic sanctions list (fictional names; NOT a real list)."""
    from setara.compliance import Entity, ListData

    entities = tuple(Entity(eid, (name,), kind, (cc,), programme="SYNTHETIC DEMO - not a real list")  # type: ignore[arg-type]
                     for eid, name, kind, cc in _SYNTHETIC)
    digest = hashlib.sha256(orjson.dumps([e[:2] for e in _SYNTHETIC])).hexdigest()
    return ListData(SYNTHETIC_SOURCE, "2026-01-01", digest, entities)


class DemoScreening:
    """The node's screening port backed by the compliance package's Screener: every named party is
    screened; the best score decides (clear / review -> HELD / block -> REJECTED RR04)."""

    def __init__(self, lists: list[Any]) -> None:
        from setara.compliance import Screener

        self.screener = Screener(lists)
        self.lists = lists
        self.outcomes: dict[str, tuple[str, str, float, str]] = {}  # id -> (decision, name, score, entity)

    def decide(self, ins: Instruction, network: Network) -> ScreeningDecision:
        best: tuple[float, str, Any, str] | None = None
        for key in ("debtor_name", "creditor_name", "ultimate_debtor_name", "ultimate_creditor_name"):
            name = ins.parties.get(key)
            if not isinstance(name, str) or not name.strip():
                continue
            country = ins.parties.get(key.replace("_name", "_country"))
            m = self.screener.screen(name, country if isinstance(country, str) else None)
            if best is None or m.score > best[0]:
                best = (m.score, name, m, key)
        if best is None or best[2].decision == "clear":
            return ScreeningDecision("clear", "clear")
        score, name, m, field = best
        from setara.node.screening import hold_reference

        # The demo imports no list into the store, so a list's version is its date.
        versions = ";".join(f"{lst.source}@{lst.list_date or 'undated'}" for lst in self.lists)
        ref = hold_reference(versions, field, score, m.list, m.entity_id)
        self.outcomes[ins.id] = (m.decision, name, score, f"{m.entity_id} {m.matched_name}")
        audit = {"list": m.list, "entity_id": m.entity_id, "score": score, "decision": m.decision}
        return ScreeningDecision(m.decision, ref, (audit,))


@dataclass
class DemoResult:
    db: Path
    report: Path
    seconds: float
    payments: int
    summary: dict[str, Any] = field(default_factory=dict)


def _load_un(source: str) -> Any:
    from setara.compliance import fetch_list, load_list, load_list_path

    try:
        if source.startswith(("http://", "https://")):
            return load_list("un-xml", fetch_list("un-xml", source))
        return load_list_path("un-xml", source)
    except (ValueError, OSError) as e:
        raise DemoInputError(f"--un-list {source}: {e}") from None


def _listed_names(lists: list[Any], rng: np.random.Generator, k: int) -> tuple[str, ...]:
    names = [e.names[0] for lst in lists for e in lst.entities if e.names and e.type in ("person", "entity")]
    if not names:
        return ()
    pick = rng.choice(len(names), size=min(k, len(names)), replace=False)
    return tuple(names[int(i)] for i in pick)


def _instruction(p: Any) -> Instruction:
    parties = {k: v for k, v in (("creditor_country", p.creditor_country), ("creditor_name", p.creditor_name),
                                 ("debtor_country", p.debtor_country), ("debtor_name", p.debtor_name)) if v}
    return Instruction(p.id, p.debtor, p.creditor, p.currency, p.amount_minor, p.priority, p.to_currency,
                       parties=parties)


def run_demo(
    folder: Path,
    *,
    payments: int = 20_000,
    seed: int = 1,
    un_list: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoResult:
    """Run the demo in `folder` (its setara.db must not exist yet). Raises ValueError / SetaraError /
    StoreError with a one-line message on failure."""
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "setara.db"
    if db.exists():
        raise DemoInputError(f"{db} already exists: run the demo in an empty folder (or remove it)")
    lists = [_load_un(un_list)] if un_list else [synthetic_list()]
    screening = DemoScreening(lists)
    base = base_network()
    design = Design("demo", "bilateral", DEMO_ALGORITHM, DEMO_PERIOD_S)
    rng = np.random.default_rng(seed + 1_000_003)
    listed = _listed_names(lists, rng, 4)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    day = generate_day(base, payments, seed=seed, sanctioned_names=listed, sanctioned_payments=8, date=today)
    # Screen once up front (the screener caches), so the bounds pre-pass knows what never settles.
    decisions: dict[str, str] = {}
    for p in day.payments:
        d = screening.decide(_instruction(p), base)
        if d.decision != "clear":
            decisions[p.id] = d.decision
    bounds = bounds_of(Network.from_config(network_config(base, design, None)), day, screening=decisions)
    liquidity = liquidity_at(bounds, DEMO_LEVEL)
    from setara.sim import demo_nodes

    nodes = demo_nodes.prepare(folder)
    cfg = network_config(base, design, liquidity)
    if not isinstance(nodes, str):
        cfg["nodes"] = nodes.configs  # member nodes co-sign the day (block 1 registers their keys)
    network = Network.from_config(cfg)
    day0 = day.start_ms()

    def at(t_s: int) -> int:
        return day0 + t_s * 1000

    node = Node.create(str(db), network, at(day.start_s) - 60_000)
    lsm: list[dict[str, Any]] = []
    try:
        node.screening = screening
        node.execute([PostRate(prov, b, q, text, at(day.end_s + 3600), at(day.start_s) - 1000)
                      for prov, b, q, text in day.rates])
        # the network's own periodic liquidity saving, every period_s simulated seconds
        algorithm, period = network.lsm.periodic, network.lsm.period_s
        ticks = [*range(day.start_s + period, day.end_s, period), day.end_s]
        i = 0
        pays = day.payments
        idle = (-1, -1)
        for tick in ticks:
            b = node.begin()
            n0 = i
            while i < len(pays) and pays[i].time_s < tick:
                p = pays[i]
                node.submit_instruction(b, _instruction(p), i + 1, "demo", at(p.time_s))
                i += 1
            node.flush(b)
            tick_ms = at(tick)
            moved = (node.engine.ledger.seq, node.engine.order)
            if algorithm != "none" and moved != idle:  # skip when nothing moved since a run found nothing
                summary = node.resolve_gridlock(algorithm, time_limit_s=LSM_TIME_LIMIT_S,
                                                clock=lambda: tick_ms)  # noqa: B023 - called at once
                summary["time_s"] = tick
                lsm.append(summary)
                idle = moved if not summary.get("settled") else (-1, -1)
            if progress is not None:
                progress("day", i - n0, len(pays))
        node.snapshot()
    finally:
        node.close()
    if progress is not None:
        progress("report", 0, 0)
    summary = _analyse(db, day, network, bounds, lsm, screening)
    if progress is not None:
        progress("nodes", 0, 0)
    summary["member_nodes"] = demo_nodes.summary_line(nodes if isinstance(nodes, str) else demo_nodes.run(nodes, db))
    report = folder / "report.html"
    report.write_text(_report(summary, day, network), encoding="utf-8")
    seconds = time.perf_counter() - t0
    summary["seconds"] = round(seconds, 1)
    return DemoResult(db, report, seconds, len(day.payments), summary)


# ---------------------------------------------------------------------------------------------- analysis


def _analyse(db: Path, day: Day, network: Network, bounds: Any, lsm: list[dict[str, Any]],
             screening: DemoScreening) -> dict[str, Any]:
    """Everything the summary and the report show, read back from the durable blocks."""
    node = Node.open(str(db), write=False)
    units = {c: v.currency.minor_units for c, v in network.currencies.items()}
    pays = {p.id: p for p in day.payments}
    opening = {(a.member, a.currency): a.opening_minor for a in network.accounts.values()}
    bal = dict.fromkeys(opening, 0)  # the journal starts with the opening postings
    low = dict(opening)
    status: dict[str, str] = {}
    settled_at: dict[str, int] = {}
    queued_since: dict[str, None] = {}
    queue_usd = 0.0
    series_t: list[int] = []
    series_q: list[float] = []
    series_bal: dict[str, list[float]] = {m: [] for m in network.members}
    offsets = 0
    lsm_sets = 0
    day0 = day.start_ms()
    next_sample = day.start_s
    members = list(network.members)

    def sample(t_s: int) -> None:
        series_t.append(t_s)
        series_q.append(max(0.0, queue_usd))
        for m in members:
            series_bal[m].append(sum(usd_value(bal[(m, c)], c, units[c]) for c in units if (m, c) in bal))

    try:
        for blk in node.store.iter_blocks(0):
            t_s = (blk.time_ms - day0) // 1000
            while next_sample <= min(t_s, day.end_s):
                sample(next_sample)
                next_sample += 300
            for row in orjson.loads(blk.journal):
                _seq, _pid, ccy, debit, credit, amount = row[:6]
                if (debit, ccy) in bal:
                    bal[(debit, ccy)] -= amount
                    low[(debit, ccy)] = min(low[(debit, ccy)], bal[(debit, ccy)])
                if (credit, ccy) in bal:
                    bal[(credit, ccy)] += amount
            ev = orjson.loads(blk.events)
            for pid, st, *_rest in status_rows(orjson.loads(blk.log), ev):
                p = pays.get(pid)
                if p is None:
                    continue
                v = usd_value(p.amount_minor, p.currency, units[p.currency])
                if pid in queued_since and st != "QUEUED":
                    del queued_since[pid]
                    queue_usd -= v
                if st == "QUEUED":
                    queued_since[pid] = None
                    queue_usd += v
                status[pid] = st
                if st == "SETTLED":
                    settled_at[pid] = int(_rest[2]) // 1000 - day0 // 1000
            for _n, kind, _data in ev["notices"]:
                if kind == "offset":
                    offsets += 1
                elif kind == "liquidity_saving":
                    lsm_sets += 1
        while next_sample <= day.end_s:
            sample(next_sample)
            next_sample += 300
    finally:
        node.close()
    delays = [settled_at[pid] - pays[pid].time_s for pid in settled_at]
    settled_value: dict[str, int] = {}
    for pid in settled_at:
        p = pays[pid]
        settled_value[p.currency] = settled_value.get(p.currency, 0) + p.amount_minor
    used: dict[str, int] = {}
    upper: dict[str, int] = {}
    lower: dict[str, int] = {}
    for acct in opening:
        c = acct[1]
        used[c] = used.get(c, 0) + max(0, opening[acct] - low[acct])
        upper[c] = upper.get(c, 0) + bounds.upper.get(acct, 0)
        lower[c] = lower.get(c, 0) + bounds.lower.get(acct, 0)
    counts: dict[str, int] = {}
    for st in status.values():
        counts[st] = counts.get(st, 0) + 1
    hits = [{"id": pid, "decision": d, "name": name, "score": round(score, 3), "entity": ent,
             "status": status.get(pid, "?"), "planted": pays[pid].sanctioned}
            for pid, (d, name, score, ent) in sorted(screening.outcomes.items())]
    d_arr = np.asarray(delays or [0], dtype=np.float64)

    def usd(by: dict[str, int]) -> float:
        return sum(usd_value(v, c, units[c]) for c, v in by.items())

    gross_settled = usd(settled_value)
    return {
        "payments": len(day.payments),
        "statuses": counts,
        "settled": len(settled_at),
        "settled_value_usd": gross_settled,
        "settled_value_minor": settled_value,
        "delay_p50_s": float(np.percentile(d_arr, 50)), "delay_p95_s": float(np.percentile(d_arr, 95)),
        "delay_p99_s": float(np.percentile(d_arr, 99)), "delay_max_s": float(d_arr.max()),
        "delay_mean_s": float(d_arr.mean()),
        "settled_at_once_share": float((d_arr == 0).mean()),
        "liquidity_used_minor": used, "liquidity_used_usd": usd(used),
        "gross_rtgs_need_minor": upper, "gross_rtgs_need_usd": usd(upper),
        "net_need_minor": lower, "net_need_usd": usd(lower),
        "opening_usd": usd({c: sum(v for (m, cc), v in opening.items() if cc == c) for c in units}),
        "netting_efficiency": 1.0 - usd(used) / gross_settled if gross_settled else 0.0,
        "saving_vs_gross": 1.0 - usd(used) / usd(upper) if usd(upper) else 0.0,
        "offsets": offsets, "lsm_sets": lsm_sets,
        "gridlocks_resolved": sum(1 for x in lsm if x.get("settled")),
        "lsm_value_usd": 0.0,
        "holds": counts.get("HELD", 0),
        "screening_rejected": sum(1 for h in hits if h["status"] == "REJECTED"),
        "hits": hits,
        "lists": [f"{lst.source} ({lst.entity_count} entities)" for lst in screening.lists],
        "series_t": series_t, "series_queue_usd": series_q, "series_balance_usd": series_bal,
        "delays": delays, "cross_currency": sum(1 for p in day.payments if p.to_currency),
        "currencies": list(units),
    }


# ---------------------------------------------------------------------------------------------- report


def _report(s: dict[str, Any], day: Day, network: Network) -> str:
    page = Page("Setara demo: one trade day, settled")
    synthetic = any(x.startswith(SYNTHETIC_SOURCE) for x in s["lists"])
    page.p(f"{s['payments']} payments among {len(network.members)} banks in {', '.join(s['currencies'])} "
           f"({s['cross_currency']} cross-currency, settled payment-versus-payment through FX providers), "
           f"business day {day.date} in simulated time. Screening lists: {', '.join(s['lists'])}.", "note")
    if synthetic:
        page.raw('<p><span class="tag">SYNTHETIC LIST</span> no UN list was given (--un-list): screening ran '
                 "against a small fictional list made for this demo. It is not a real sanctions list.</p>")
    page.h2("Summary")
    page.table(["figure", "value"], _summary_rows(s))
    hours = [t / 3600 for t in s["series_t"]]
    fig, ax = figure(9, 4.2)
    for m, vals in s["series_balance_usd"].items():
        ax.plot(hours, [v / 1e6 for v in vals], label=m)
    ax.set_xlabel("hour of day")
    ax.set_ylabel("balance, all currencies (USD m)")
    ax.set_title("Liquidity over the day per member")
    ax.legend(fontsize=7, ncol=3)
    page.fig(fig, "Each member's settlement balances (all four currencies, in USD at reference rates) over the "
                  "day: liquidity flows from payers to payees and back.")
    fig, ax = figure(9, 3.6)
    ax.fill_between(hours, [v / 1e6 for v in s["series_queue_usd"]], color="#e9c46a")
    ax.set_xlabel("hour of day")
    ax.set_ylabel("queued value (USD m)")
    ax.set_title("Queue value over time")
    page.fig(fig, "Value waiting in RTGS queues; periodic liquidity saving (every 5 simulated minutes) clears "
                  "gridlocks as they form.")
    fig, ax = figure(9, 4)
    ccys = s["currencies"]
    units = {c: network.currencies[c].currency.minor_units for c in ccys}
    gross = [usd_value(s["settled_value_minor"].get(c, 0), c, units[c]) / 1e6 for c in ccys]
    need = [usd_value(s["gross_rtgs_need_minor"].get(c, 0), c, units[c]) / 1e6 for c in ccys]
    used = [usd_value(s["liquidity_used_minor"].get(c, 0), c, units[c]) / 1e6 for c in ccys]
    x = np.arange(len(ccys))
    ax.bar(x - 0.27, gross, 0.27, label="gross value settled")
    ax.bar(x, need, 0.27, label="liquidity gross RTGS would need")
    ax.bar(x + 0.27, used, 0.27, label="liquidity used")
    ax.set_xticks(x, ccys)
    ax.set_ylabel("USD m")
    ax.set_title("Netting savings per currency")
    ax.legend(fontsize=8)
    page.fig(fig, "Gross value settled against the liquidity gross RTGS would need to settle every payment at once "
                  "(BoF-PSS2 upper bound) and the liquidity this run actually used (opening balance minus the "
                  "lowest balance, summed over accounts).")
    fig, ax = figure(9, 3.6)
    d = np.asarray(s["delays"], dtype=np.float64)
    queued = d[d > 0] / 60
    ax.hist(queued if len(queued) else [0.0], bins=40, color="#4c78a8")
    ax.set_xlabel("delay (minutes) of payments that queued")
    ax.set_ylabel("payments")
    ax.set_title(f"Delay distribution ({100 * s['settled_at_once_share']:.1f}% settled on submission, not shown)")
    page.fig(fig, "Time from submission to settlement of the payments that had to wait.")
    fig, ax = figure(7, 3.2)
    labels = ["clear", "HELD (review)", "REJECTED (RR04)"]
    rr04 = s["screening_rejected"]
    vals = [s["payments"] - len(s["hits"]), s["holds"], rr04]
    ax.barh(labels, vals, color=["#2a9d8f", "#e9c46a", "#e76f51"])
    ax.set_xscale("log")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v}", va="center")
    ax.set_title("Screening outcomes")
    page.fig(fig, "Screening decisions on every payment's parties (log scale).")
    page.h2("Screening hits")
    page.table(["payment", "decision", "status", "party", "score", "listed entity", "planted"],
               [[h["id"], h["decision"], h["status"], h["name"], h["score"], h["entity"], h["planted"]]
                for h in s["hits"]])
    page.p("Next: `setara holds list` to review the holds, `setara export payments` for every payment, "
           "`setara verify` to replay the log and check every invariant.", "note")
    return page.html()


def _summary_rows(s: dict[str, Any]) -> list[list[str]]:
    st = s["statuses"]
    return [
        ["payments submitted", f"{s['payments']:,}"],
        ["settled", f"{s['settled']:,} ({money_usd(s['settled_value_usd'])})"],
        ["queued at end / held / rejected", f"{st.get('QUEUED', 0)} / {st.get('HELD', 0)} / {st.get('REJECTED', 0)}"],
        ["delay p50 / p95 / p99 / max", f"{s['delay_p50_s']:.0f} s / {s['delay_p95_s']:.0f} s / "
                                        f"{s['delay_p99_s']:.0f} s / {s['delay_max_s']:.0f} s"],
        ["settled on submission", f"{100 * s['settled_at_once_share']:.1f}%"],
        ["liquidity used", money_usd(s["liquidity_used_usd"])],
        ["gross RTGS without saving would need", money_usd(s["gross_rtgs_need_usd"])],
        ["liquidity saved against gross RTGS", f"{100 * s['saving_vs_gross']:.1f}%"],
        ["netting efficiency (1 - used / gross settled)", f"{100 * s['netting_efficiency']:.1f}%"],
        ["bilateral offsets on entry", f"{s['offsets']:,}"],
        ["gridlocks resolved (periodic optimise)", f"{s['gridlocks_resolved']:,}"],
        ["screening: held for review / rejected RR04", f"{s['holds']} / {s['screening_rejected']}"],
        *([["member nodes' final checkpoint", s["member_nodes"]]] if "member_nodes" in s else []),
    ]
