"""`setara day close|open`, `setara cycle close`, `setara lsm run`, `setara queue`, `setara settle`."""

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import orjson
import typer

from setara.cli.common import (
    DEFAULT_DB,
    DbOpt,
    FormatOpt,
    check_format,
    emit,
    err,
    fail,
    open_node,
    out,
    out_json,
    refusals,
    say,
    warn,
)

day_app = typer.Typer(no_args_is_help=True, help="Close or open the business day.")
cycle_app = typer.Typer(no_args_is_help=True, help="Deferred-net settlement cycles.")
lsm_app = typer.Typer(no_args_is_help=True, help="Liquidity-saving algorithms on the live queue.")


@day_app.command("close")
def day_close(db: DbOpt = DEFAULT_DB) -> None:
    """End the business day: queued payments past their cut-off are rejected (TM01)."""
    from setara.node.usecases import close_day

    with open_node(db, write=True) as node, refusals():
        day, rejected = close_day(node)
        say(f"business day {day} closed; {rejected} queued payment(s) rejected at cut-off")


@day_app.command("open")
def day_open(db: DbOpt = DEFAULT_DB) -> None:
    """Start the next business day; warehoused payments are settled or queued."""
    from setara.node.usecases import open_day

    with open_node(db, write=True) as node, refusals():
        say(f"business day {open_day(node)} open")


@cycle_app.command("close")
def cycle_close(currency: Annotated[str, typer.Option("--currency", help="A cycled currency, or * for all of "
                                                     "them in one netting.")] = "*",
                db: DbOpt = DEFAULT_DB) -> None:
    """Close deferred-net cycles: net, unwind members who cannot cover, settle."""
    from setara.node.usecases import close_cycle

    with open_node(db, write=True) as node, refusals({"currency": "--currency"}):
        for notice in close_cycle(node, currency):
            out_json(notice)


@lsm_app.command("run")
def lsm_run(algorithm: Annotated[str, typer.Option("--algorithm")] = "optimise",
            priority: Annotated[bool, typer.Option("--priority")] = False,
            fifo: Annotated[bool, typer.Option("--fifo")] = False, db: DbOpt = DEFAULT_DB) -> None:
    """Resolve gridlock now: settle the set the algorithm selects from the queue, atomically."""
    from setara.liquidity import ALGORITHMS

    if algorithm not in ALGORITHMS:
        fail(f"--algorithm must be one of {', '.join(ALGORITHMS)}", 2)
    with open_node(db, write=True) as node, refusals():
        out_json(node.resolve_gridlock(algorithm, respect_priority=priority, fifo=fifo))


def queue_cmd(db: DbOpt = DEFAULT_DB, fmt: FormatOpt = "csv") -> None:
    """The payments waiting now (RTGS queues and open cycles), in settlement order."""
    from setara.core.money import format_amount
    from setara.node.views import queue

    check_format(fmt)
    with open_node(db, write=False) as node, refusals():
        net = node.network
        count, waiting = queue(node.engine)
        if count > len(waiting):
            warn(f"{count} payments wait; showing the first {len(waiting)} in settlement order")

        def rows() -> Iterator[dict[str, object]]:
            for p in waiting:
                yield {"id": p.id, "debtor": p.debtor, "creditor": p.creditor, "currency": p.currency,
                       "amount": format_amount(p.amount_minor, net.minor_units(p.currency) or 0),
                       "priority": "URGENT" if p.priority == 0 else "NORMAL", "submitted_at": p.order,
                       "to_currency": p.to_currency, "provider": p.provider,
                       "waiting_for": f"cycle {p.cycle}" if p.cycle else "liquidity"}

        emit(rows(), fmt, ["id", "debtor", "creditor", "currency", "amount", "priority", "submitted_at",
                           "to_currency", "provider", "waiting_for"])


def settle(balances: Annotated[Path, typer.Option("--balances", help="CSV member,currency,balance")],
           queue: Annotated[Path, typer.Option("--queue", help="CSV id,debtor,creditor,currency,amount,priority,"
                                                             "submitted_at")],
           algorithm: Annotated[str, typer.Option("--algorithm")] = "optimise",
           out_path: Annotated[Path | None, typer.Option("--out", help="Write settled ids here (else stdout).")]
           = None,
           priority: Annotated[bool, typer.Option("--priority", help="Never settle a NORMAL payment of a "
                                                  "debtor while one of its URGENT ones stays queued.")] = False,
           fifo: Annotated[bool, typer.Option("--fifo", help="Settle a prefix of each debtor's queue.")] = False,
           time_limit: Annotated[float, typer.Option("--time-limit", help="Seconds.")] = 20.0) -> None:
    """Stateless solver: which queued payments settle without any balance going below zero."""
    from setara.liquidity import ALGORITHMS
    from setara.liquidity.csvio import run_settle

    if algorithm not in ALGORITHMS:
        fail(f"--algorithm must be one of {', '.join(ALGORITHMS)}", 2)
    for path in (balances, queue):
        if not path.is_file():
            fail(f"cannot read {path}", 2)
    try:
        summary = run_settle(balances, queue, algorithm, out_path, respect_priority=priority, fifo=fifo,
                             time_limit_s=time_limit)
    except ValueError as e:
        fail(str(e), 2)
    ids = summary.pop("settled_ids", None)
    if out_path is None and isinstance(ids, list):
        out("id\n" + "".join(f"{i}\n" for i in ids))
        err.print(orjson.dumps(summary).decode())
    else:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(day_app, name="day")
    app.add_typer(cycle_app, name="cycle")
    app.add_typer(lsm_app, name="lsm")
    app.command("queue")(queue_cmd)
    app.command("settle")(settle)
