"""The figures of the simulate and demo reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .report import Page, figure, money_usd
from .runner import RunResult, Stress

__all__ = ["simulate_report"]


def _hours(ts: Sequence[int]) -> list[float]:
    return [t / 3600 for t in ts]


def simulate_report(results: dict[str, Any], by_design: dict[str, list[RunResult]], refs: dict[str, RunResult],
                    stress_runs: Sequence[tuple[Stress, RunResult, RunResult]]) -> str:
    page = Page("Setara simulation: settlement designs compared")
    day = results["day"]
    page.p(f"Day: {day['payments']} payments ({day['source']}), gross value USD {day['gross_value']}; "
           f"liquidity bounds (BoF-PSS2): lower USD {results['lower_bound']}, upper USD {results['upper_bound']}. "
           f"Reference liquidity level {results['reference_level']} (0 = lower bound, 1 = upper bound). "
           "Amounts are USD equivalents at the scenario's reference rates.", "note")
    page.h2("Designs")
    rows = []
    for name, d in results["designs"].items():
        rows.append([name, d["liquidity_needed"], f"{d['liquidity_needed_level']:.3f}", d["unsettled_value"],
                     d["delay"]["mean_s"], d["delay"]["p95_s"], d["gridlock_events"], d["gridlocks_resolved"],
                     d["offsets"], d["unwinds"]])
    page.table(["design", "liquidity needed (USD)", "level", "unsettled at ref (USD)", "mean delay s", "p95 delay s",
                "gridlock events", "gridlocks resolved", "offsets", "unwinds"], rows)

    names = list(results["designs"])
    need = [float(results["designs"][n]["liquidity_needed"]) / 1e6 for n in names]
    fig, ax = figure(9, 4)
    bars = ax.bar(range(len(names)), need, color="#4c78a8")
    for bar, n in zip(bars, names, strict=True):
        if not results["designs"][n].get("settles_whole_day", True):
            bar.set_hatch("//")
            bar.set_facecolor("#b0b8c8")
            ax.annotate("does not settle\nthe whole day", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    ax.axhline(float(results["lower_bound"]) / 1e6, color="#2a9d8f", ls="--", label="lower bound (net end-of-day)")
    ax.axhline(float(results["upper_bound"]) / 1e6, color="#e76f51", ls="--", label="upper bound (gross, no delay)")
    ax.set_xticks(range(len(names)), names, rotation=25, ha="right")
    ax.set_ylabel("USD m")
    ax.set_title("Least liquidity that settles the whole day by cut-off")
    ax.legend(fontsize=8)
    page.fig(fig, "liquidity_needed per design, between the BoF-PSS2 bounds. Designs at the lower bound "
                  "settle everything with only their end-of-day net positions funded; a hatched bar is a design "
                  "that leaves payments unsettled even at the upper bound.")

    fig, ax = figure(9, 4)
    for n in names:
        rs = sorted(by_design[n], key=lambda r: r.level or 0.0)
        ax.plot([r.level for r in rs], [100.0 * (1 - r.unsettled / max(1, r.unsettled + r.settled)) for r in rs],
                marker="o", label=n)
    ax.set_xlabel("liquidity level (0 = lower bound, 1 = upper bound)")
    ax.set_ylabel("% of payments settled by cut-off")
    ax.set_title("Liquidity sweep: settlement")
    ax.legend(fontsize=7, ncol=2)
    page.fig(fig, "Share of the day's payments settled by cut-off at each liquidity level.")

    fig, ax = figure(9, 4)
    for n in names:
        rs = sorted(by_design[n], key=lambda r: r.level or 0.0)
        ax.plot([r.level for r in rs], [r.delay_stats()["mean_s"] / 60 for r in rs], marker="o", label=n)
    ax.set_xlabel("liquidity level")
    ax.set_ylabel("mean settlement delay (min)")
    ax.set_title("Liquidity sweep: delay of settled payments")
    ax.legend(fontsize=7, ncol=2)
    page.fig(fig, "The liquidity-delay trade-off: more liquidity, less queuing. Delays are those of the payments "
                  "that settled: where a design leaves much unsettled (gross RTGS at low levels) its mean looks "
                  "better than it is - read it with the settlement figure above.")

    fig, ax = figure(9, 4)
    for n in names:
        r = refs[n]
        if r.series_t:
            ax.plot(_hours(r.series_t), [v / 1e6 for v in r.series_queue_usd], label=n)
    ax.set_xlabel("hour of day")
    ax.set_ylabel("queued value (USD m)")
    ax.set_title(f"Queue value over the day at level {results['reference_level']}")
    ax.legend(fontsize=7, ncol=2)
    page.fig(fig, "Value waiting in queues (RTGS queues and open net cycles) over the day.")

    if stress_runs:
        page.h2("Stress scenarios")
        rows = []
        for s, base, r in stress_runs:
            st = results["stress"][s.name]
            rows.append([s.name, s.kind, s.member, r.design, st["baseline"]["unsettled_value"],
                         st["stressed"]["unsettled_value"], st["baseline"]["delay"]["mean_s"],
                         st["stressed"]["delay"]["mean_s"], r.rejected - base.rejected])
        page.table(["stress", "kind", "member", "design", "unsettled base (USD)", "unsettled stressed (USD)",
                    "mean delay base s", "mean delay stressed s", "extra rejections"], rows)
        for s, base, r in stress_runs:
            fig, (ax1, ax2) = _two(9, 3.6)
            ax1.plot(_hours(base.series_t), [v / 1e6 for v in base.series_queue_usd], label="baseline")
            ax1.plot(_hours(r.series_t), [v / 1e6 for v in r.series_queue_usd], label=s.name)
            ax1.set_xlabel("hour of day")
            ax1.set_ylabel("queued value (USD m)")
            ax1.legend(fontsize=8)
            members = sorted(set(base.member_settled) | set(r.member_settled))
            delta = [(r.member_delay_s.get(m, 0) / max(1, r.member_settled.get(m, 0))
                      - base.member_delay_s.get(m, 0) / max(1, base.member_settled.get(m, 0))) / 60 for m in members]
            ax2.bar(range(len(members)), delta, color=["#e76f51" if m == s.member else "#4c78a8" for m in members])
            ax2.set_xticks(range(len(members)), members, rotation=45, ha="right", fontsize=7)
            ax2.set_ylabel("extra mean delay (min)")
            page.fig(fig, f"{s.name}: queue over the day against the baseline, and the knock-on change in each "
                          f"member's mean payment delay ({s.member} in red).")
    page.p(f"Run time {results['seconds']} s on {results['workers']} worker(s).", "note")
    return page.html()


def _two(w: float, h: float) -> tuple[Any, tuple[Any, Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(w, h), dpi=96)
    return fig, (axes[0], axes[1])


def fmt_usd(x: float) -> str:
    return money_usd(x)
