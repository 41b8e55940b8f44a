"""`setara demo` and `setara simulate`. The lead wires `register(app)` into setara.cli."""


import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["register"]

err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Folder for setara.db and report.html.")] = Path("."),
    payments: Annotated[int, typer.Option("--payments", help="Payments in the generated day.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated day.")] = 1,
    un_list: Annotated[str | None, typer.Option("--un-list", help="UN consolidated list XML: a path or URL. "
                                                "Default: a small synthetic list, clearly labelled.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A small day (2,000 payments).")] = False,
) -> None:
    """Build a sample network, generate a trade day, screen, settle and net it; print a summary and
    write report.html. Prints the report's path on stdout."""
    from setara.node import SetaraError
    from setara.store import StoreError

    from .demo import DemoInputError, run_demo

    n = 2_000 if quick else payments
    if not 10 <= n <= 1_000_000:
        _fail("--payments must be in 10..1000000", 2)
    t0 = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("settling the day", total=n)

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "day":
                bar.advance(task, done)
            elif stage == "nodes":
                bar.update(task, description="member nodes replicate and co-sign")
            else:
                bar.update(task, description="writing the report")

        try:
            result = run_demo(folder, payments=n, seed=seed, un_list=un_list, progress=progress)
        except DemoInputError as e:
            _fail(str(e).splitlines()[0], 2)
        except (ValueError, OSError, SetaraError, StoreError) as e:
            _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    s = result.summary
    from .demo import _summary_rows

    table = Table(title=f"Setara demo: {result.payments:,} payments in {time.perf_counter() - t0:.1f} s",
                  show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in _summary_rows(s):
        table.add_row(k, v)
    err.print(table)
    if any(x.startswith("synthetic") for x in s["lists"]):
        err.print("screening used a small SYNTHETIC list (fictional names); pass --un-list PATH_OR_URL for the UN list",
                  highlight=False)
    err.print(f"database: {result.db}  (try: setara holds list --db {result.db}; setara verify --db {result.db})",
              highlight=False)
    sys.stdout.write(f"{result.report.resolve()}\n")


def simulate(
    scenario: Annotated[Path | None, typer.Argument(help="Scenario TOML (see --example).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder: results.json, CSVs, report.html; "
                                             "finished runs are cached in OUT/cache/.")] = None,
    example: Annotated[bool, typer.Option("--example", help="Print a commented example scenario and exit.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Local worker processes (default: CPUs, max 8).")] = 0,
    ray: Annotated[str | None, typer.Option("--ray", help="Run the tasks on Ray: 'local' starts a local instance, "
                                            "'auto' or ray://HOST:PORT joins a cluster; needs the ray extra.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run everything again; do not read or write "
                                           "OUT/cache/.")] = False,
) -> None:
    """Compare settlement designs on the same day: liquidity needed (with BoF-PSS2 bounds), delays,
    unsettled value, gridlocks, liquidity sweeps over seeds and stress scenarios."""
    from .scenario import EXAMPLE_SCENARIO, ScenarioError, default_workers, load_scenario
    from .scenario import simulate as run
    from .sweep import RunnerError

    if example:
        sys.stdout.write(EXAMPLE_SCENARIO)
        return
    if scenario is None or out is None:
        _fail("usage: setara simulate SCENARIO.toml --out DIR (or --example)", 2)
    try:
        text = scenario.read_text(encoding="utf-8")
    except OSError as e:
        _fail(f"{scenario}: {e.strerror or e}", 2)
    try:
        sc = load_scenario(text, scenario.parent)
    except ScenarioError as e:
        _fail(str(e), 2)
    n_workers = workers if workers > 0 else default_workers()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("simulating", total=None)

        def log(msg: str) -> None:
            bar.update(task, description=msg.split(":")[0])

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            results = run(sc, out, workers=n_workers, ray_address=ray, log=log, progress=progress,
                          cache=not no_cache)
        except (ScenarioError, RunnerError) as e:
            _fail(str(e), 2)
        except (ValueError, OSError) as e:
            _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    n_seeds = len(results["seeds"])
    timing = results["timing"]
    table = Table(title=f"{len(results['designs'])} designs, {results['day']['payments']:,} payments"
                        f"{f' x {n_seeds} seeds (means)' if n_seeds > 1 else ''}, {timing['seconds']} s "
                        "(USD equivalents)")
    for col in ("design", "liquidity needed", "level", "unsettled @ref", "mean delay s", "p95 delay s",
                "gridlocks resolved"):
        table.add_column(col, justify="left" if col == "design" else "right")
    for name, d in results["designs"].items():
        ref = d["reference"]
        table.add_row(name, d["liquidity_needed"], f"{d['liquidity_needed_level']:.3f}", ref["unsettled_value"],
                      f"{ref['delay_mean_s']:.0f}", f"{ref['delay_p95_s']:.0f}", f"{ref['gridlocks_resolved']:g}")
    err.print(table)
    for day in results["days"][:3]:
        err.print(f"seed {day['seed']}: bounds lower {day['lower_bound']}, upper {day['upper_bound']} (USD)",
                  highlight=False)
    err.print(f"reference level {results['reference_level']}; {timing['executed']} tasks run, "
              f"{timing['from_cache']} from {out / 'cache'}", highlight=False)
    for name, s in results["stress"].items():
        ps = s["seeds"][0]
        err.print(f"stress {name} (seed {ps['seed']}): unsettled {ps['unsettled_value_base']} -> "
                  f"{ps['unsettled_value_stress']} USD, mean delay {ps['mean_delay_s_base']} -> "
                  f"{ps['mean_delay_s_stress']} s", highlight=False)
    sys.stdout.write(f"{out / 'results.json'}\n")


def register(app: typer.Typer) -> None:
    """Add `demo` and `simulate` to the `setara` app."""
    app.command("demo")(demo)
    app.command("simulate")(simulate)
