"""`setara bench`: the benchmark suite."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from setara.cli.common import out_json


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

    res = (bench_mod.named(n, un_list, memory, out=sys.stderr) if named
           else bench_mod.run(n, memory, out=sys.stderr, un_list=un_list))
    if nodes:
        from setara.bench_nodes import run_nodes

        res.update(run_nodes(nodes, out=sys.stderr, un_list=un_list))
    out_json(res)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
