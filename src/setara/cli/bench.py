"""`setara bench`: the benchmark suite."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from setara.cli.common import fail, out_json

BENCH_N_MIN = 1_000
BENCH_N_MAX = 100_000_000


def bench(n: Annotated[int, typer.Option("--n", help="Payments in the submit throughput run.")] = 200_000,
          memory: Annotated[int, typer.Option("--memory", help="Also stream this many, report peak RSS.")] = 0,
          un_list: Annotated[Path | None, typer.Option("--un-list", help="UN list XML: also measure screening "
                                                       "cost.")] = None,
          named: Annotated[bool, typer.Option("--named", help="Payments that name their parties (issue 17): "
                                              "300k from 20,000 companies against the loop; with --un-list, "
                                              "screened; with --memory, streamed.")] = False,
          nodes: Annotated[int, typer.Option("--nodes", help="Also measure member nodes with this many payments "
                                             "(named; with --un-list, screened): replicated vs not, "
                                             "finality, replay.")] = 0,
          ) -> None:
    """The benchmark suite: durable submit throughput against a hand-written SQLite loop, memory,
    and the cost of screening."""
    from setara import bench as bench_mod

    # Refused before anything runs: too few payments leave nothing to time (a rate of 0 s).
    for option, value, low in (("--n", n, BENCH_N_MIN), ("--memory", memory, 0), ("--nodes", nodes, 0)):
        if not (value == 0 and low == 0) and not BENCH_N_MIN <= value <= BENCH_N_MAX:
            fail(f"{option} must be {'0 or ' if low == 0 else ''}between {BENCH_N_MIN} and {BENCH_N_MAX}", 2)
    res = (bench_mod.named(n, un_list, memory, out=sys.stderr) if named
           else bench_mod.run(n, memory, out=sys.stderr, un_list=un_list))
    if nodes:
        from setara.bench_nodes import run_nodes

        res.update(run_nodes(nodes, out=sys.stderr, un_list=un_list))
    out_json(res)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
