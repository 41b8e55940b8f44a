"""The figures of the simulate and demo reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .report import Page, figure, money_usd

__all__ = ["simulate_report"]


def _hours(ts: Sequence[int]) -> list[float]:
    return [t / 3600 for t in ts]


def _band(ax: Any, xs: Sequence[float], ys: Sequence[Sequence[float]], label: str, scale: float = 1.0,
          top: float = math.inf) -> None:
    """Mean over seeds as a line, its 95% confidence interval as a band (none for a single seed),
    clipped to the quantity's range [0, top]: with few seeds the t-interval reaches past it."""
    from .scenario import mean_ci

    stats = [mean_ci([v * scale for v in y]) for y in ys]
    line = ax.plot(xs, [m for m, _, _ in stats], marker="o", label=label)[0]
    if any(len(y) > 1 for y in ys):
        ax.fill_between(xs, [max(0.0, lo) for _, lo, _ in stats], [min(top, hi) for _, _, hi in stats],
                        color=line.get_color(), alpha=0.18, linewidth=0)


def _mean_series(cs: Sequence[dict[str, Any]]) -> tuple[list[float], list[list[float]]]:
    ts = cs[0].get("series_t", [])
    cols = [[float(c["series_queue_usd"][i]) / 1e6 for c in cs if i < len(c.get("series_queue_usd", []))]
            for i in range(len(ts))]
    return _hours(ts), cols


def simulate_report(results: dict[str, Any], series: dict[tuple[str, int], dict[str, Any]],
                    stress_series: dict[tuple[str, int], dict[str, Any]]) -> str:
    """The report of `setara simulate`: `series` holds each (design, seed)'s reference-level run and
    `stress_series` each (stress, seed)'s run, compact results with their queue series."""
    page = Page("Setara simulation: settlement designs compared")
    day = results["day"]
    seeds = results["seeds"]
    n = len(seeds)
    days = results["days"]
    lower = sum(float(d["lower_bound"]) for d in days) / len(days)
    upper = sum(float(d["upper_bound"]) for d in days) / len(days)
    over = f"mean over {n} seeds ({seeds[0]}..{seeds[-1]}); bands are 95% confidence intervals of the mean" \
        if n > 1 else f"seed {seeds[0]}"
    page.p(f"Day: {day['payments']} payments ({day['source']}), {over}. Liquidity bounds (BoF-PSS2): lower USD "
           f"{lower:,.2f}, upper USD {upper:,.2f}{' (means over seeds)' if n > 1 else ''}. Reference liquidity level "
           f"{results['reference_level']} (0 = lower bound, 1 = upper bound). Amounts are USD equivalents at the "
           "scenario's reference rates.", "note")
    page.h2("Designs")
    rows = []
    for name, d in results["designs"].items():
        ref = d["reference"]
        ci = d["liquidity_needed_ci95"]
        rows.append([name, d["liquidity_needed"] + (f" [{ci[0]}, {ci[1]}]" if n > 1 else ""),
                     f"{d['liquidity_needed_level']:.3f}", ref["unsettled_value"], ref["delay_mean_s"],
                     ref["delay_p95_s"], ref["gridlock_events"], ref["gridlocks_resolved"],
                     "yes" if d["settles_whole_day"] else "no"])
    page.table(["design", "liquidity needed (USD)" + (", 95% CI" if n > 1 else ""), "level",
                "unsettled at ref (USD)", "mean delay s", "p95 delay s", "gridlock events", "gridlocks resolved",
                "settles whole day"], rows)

    names = list(results["designs"])
    need_by = {nm: [float(r["liquidity_needed"]) / 1e6 for r in results["liquidity_needed"] if r["design"] == nm]
               for nm in names}
    fig, ax = figure(9, 4)
    from .scenario import mean_ci

    stats = [mean_ci(need_by[nm]) for nm in names]
    bars = ax.bar(range(len(names)), [m for m, _, _ in stats], color="#4c78a8",
                  yerr=[[m - max(0.0, lo) for m, lo, _ in stats], [hi - m for m, _, hi in stats]] if n > 1 else None,
                  capsize=4)
    if n > 1:
        for i, nm in enumerate(names):
            ax.scatter([i] * len(need_by[nm]), need_by[nm], color="#1d2430", s=8, zorder=3)
    for bar, nm in zip(bars, names, strict=True):
        if not results["designs"][nm]["settles_whole_day"]:
            bar.set_hatch("//")
            bar.set_facecolor("#b0b8c8")
            ax.annotate("does not settle\nthe whole day", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    ax.axhline(lower / 1e6, color="#2a9d8f", ls="--", label="lower bound (net end-of-day)")
    ax.axhline(upper / 1e6, color="#e76f51", ls="--", label="upper bound (gross, no delay)")
    ax.set_xticks(range(len(names)), names, rotation=25, ha="right")
    ax.set_ylabel("USD m")
    ax.set_title("Least liquidity that settles the whole day by cut-off" + (f" ({n} seeds)" if n > 1 else ""))
    ax.legend(fontsize=8)
    page.fig(fig, "liquidity_needed per design, between the BoF-PSS2 bounds" + (
        ": the bar is the mean over seeds, the whisker its 95% confidence interval, the dots the seeds. "
        if n > 1 else ". ") + "Designs at the lower bound settle everything with only their end-of-day net positions "
        "funded; a hatched bar is a design that leaves payments unsettled even at the upper bound.")

    fig, ax = figure(9, 4)
    for nm in names:
        if n > 1:
            # liquidity needed as a level, against the seed: how much it moves from day to day
            lv = [r["liquidity_needed_level"] for r in results["liquidity_needed"] if r["design"] == nm]
            ax.plot(seeds, lv, marker="o", label=nm)
    if n > 1:
        ax.set_xlabel("seed (generated day)")
        ax.set_ylabel("liquidity needed (level)")
        ax.set_title("Liquidity needed per seed")
        ax.legend(fontsize=7, ncol=2)
        page.fig(fig, "The level (0 = lower bound, 1 = upper bound) each design needs to settle the whole day, "
                      "seed by seed: the spread behind the confidence intervals above.")
    else:
        import matplotlib.pyplot as plt

        plt.close(fig)

    levels = results["levels"]
    runs = [r for r in results["runs"] if r["stress"] is None]
    fig, ax = figure(9, 4)
    for nm in names:
        ys = [[100.0 * r["settled_payments"] / max(1, r["settled_payments"] + r["unsettled_payments"])
               for r in runs if r["design"] == nm and r["level"] == lv] for lv in levels]
        _band(ax, levels, ys, nm, top=100.0)
    ax.set_xlabel("liquidity level (0 = lower bound, 1 = upper bound)")
    ax.set_ylabel("% of payments settled by cut-off")
    ax.set_title("Liquidity sweep: settlement")
    ax.legend(fontsize=7, ncol=2)
    page.fig(fig, "Share of the day's payments settled by cut-off at each liquidity level"
             + (" (mean over seeds, band: 95% confidence interval)." if n > 1 else "."))

    fig, ax = figure(9, 4)
    for nm in names:
        ys = [[r["delay"]["mean_s"] for r in runs if r["design"] == nm and r["level"] == lv] for lv in levels]
        _band(ax, levels, ys, nm, 1 / 60)
    ax.set_xlabel("liquidity level")
    ax.set_ylabel("mean settlement delay (min)")
    ax.set_title("Liquidity sweep: delay of settled payments")
    ax.legend(fontsize=7, ncol=2)
    page.fig(fig, "The liquidity-delay trade-off: more liquidity, less queuing"
             + (" (mean over seeds, band: 95% confidence interval)" if n > 1 else "") + ". Delays are those of "
             "the payments that settled: where a design leaves much unsettled (gross RTGS at low levels) its mean "
             "looks better than it is - read it with the settlement figure above.")

    fig, ax = figure(9, 4)
    for nm in names:
        hours, cols = _mean_series([series[(nm, s)] for s in seeds])
        if hours:
            _band(ax, hours, cols, nm)
    for line in ax.get_lines():
        line.set_marker("")
    ax.set_xlabel("hour of day")
    ax.set_ylabel("queued value (USD m)")
    ax.set_title(f"Queue value over the day at level {results['reference_level']}")
    ax.legend(fontsize=7, ncol=2)
    page.fig(fig, "Value waiting in queues (RTGS queues and open net cycles) over the day"
             + (", mean over seeds." if n > 1 else "."))

    if results["stress"]:
        page.h2("Stress scenarios")
        rows = []
        for name, st in results["stress"].items():
            ps = st["seeds"]
            rows.append([name, st["kind"], st["member"], st["design"],
                         f"{sum(float(p['unsettled_value_base']) for p in ps) / len(ps):,.2f}",
                         f"{sum(float(p['unsettled_value_stress']) for p in ps) / len(ps):,.2f}",
                         round(sum(p["mean_delay_s_base"] for p in ps) / len(ps), 1),
                         round(sum(p["mean_delay_s_stress"] for p in ps) / len(ps), 1),
                         round(sum(p["extra_rejections"] for p in ps) / len(ps), 2)])
        page.table(["stress", "kind", "member", "design", "unsettled base (USD)", "unsettled stressed (USD)",
                    "mean delay base s", "mean delay stressed s", "extra rejections"], rows)
        for name, st in results["stress"].items():
            fig, (ax1, ax2) = _two(9, 3.6)
            hours, base_cols = _mean_series([series[(st["design"], s)] for s in seeds])
            _band(ax1, hours, base_cols, "baseline")
            hours, cols = _mean_series([stress_series[(name, s)] for s in seeds])
            _band(ax1, hours, cols, name)
            for line in ax1.get_lines():
                line.set_marker("")
            ax1.set_xlabel("hour of day")
            ax1.set_ylabel("queued value (USD m)")
            ax1.legend(fontsize=8)
            members = sorted({m for p in st["seeds"] for m in p["by_member"]})
            delta = [sum((p["by_member"][m]["mean_delay_s_stress"] - p["by_member"][m]["mean_delay_s_base"]) / 60
                         for p in st["seeds"] if m in p["by_member"]) / len(st["seeds"]) for m in members]
            ax2.bar(range(len(members)), delta, color=["#e76f51" if m == st["member"] else "#4c78a8" for m in members])
            ax2.set_xticks(range(len(members)), members, rotation=45, ha="right", fontsize=7)
            ax2.set_ylabel("extra mean delay (min)")
            page.fig(fig, f"{name}: queue over the day against the baseline, and the knock-on change in each "
                          f"member's mean payment delay ({st['member']} in red)" + (", means over seeds." if n > 1
                                                                                   else "."))
    t = results.get("timing", {})
    page.p(f"Run time {t.get('seconds')} s on {t.get('workers')} worker(s); {t.get('executed')} tasks run, "
           f"{t.get('from_cache')} from the cache.", "note")
    return page.html()


def _two(w: float, h: float) -> tuple[Any, tuple[Any, Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(w, h), dpi=96)
    return fig, (axes[0], axes[1])


def fmt_usd(x: float) -> str:
    return money_usd(x)
