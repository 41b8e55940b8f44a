"""`setara submit|cancel|statement|notify`: instructions in, statuses and statements out."""

import operator
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from setara.cli.common import (
    DEFAULT_DB,
    DbOpt,
    check_out_dir,
    currency_arg,
    err,
    fail,
    member_arg,
    network_of,
    open_node,
    out,
    out_json,
    refusals,
    say,
    store_exit,
)
from setara.node import Ack, SetaraError, StoreError, tune_gc
from setara.node.intake import CHUNK_LINES_MAX, InputEncodingError, intake_workers, sniff_input, xml_as_utf8

_status_of = operator.attrgetter("status")


def _input_lines(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from sys.stdin.buffer
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}", 2)
    with f:
        yield from f


def submit(file: Annotated[str, typer.Argument(help="JSON Lines or ISO 20022 XML file, or - for stdin.")],
           db: DbOpt = DEFAULT_DB,
           batch: Annotated[int, typer.Option("--batch", help=f"Lines per durable group commit (1 to "
                                              f"{CHUNK_LINES_MAX}).")] = 2000,
           replies: Annotated[Path | None, typer.Option("--replies", help="Directory for pacs.002 replies.")]
           = None,
           xsd_dir: Annotated[Path | None, typer.Option(
               "--xsd-dir", help="Validate ISO 20022 input against the official XSDs in this directory "
               "(or set SETARA_ISO20022_XSD_DIR).")] = None) -> None:
    """Submit instructions; prints `<id> <STATUS>` (and a reason) per instruction once it is durable."""
    if not 1 <= batch <= CHUNK_LINES_MAX:
        fail(f"--batch must be between 1 and {CHUNK_LINES_MAX}", 2)
    if replies is not None:
        check_out_dir(replies, "--replies")  # before anything is submitted: a reply is never lost
    try:
        intake_workers()  # a bad SETARA_INTAKE_WORKERS is a usage error, found before any work
    except ValueError as e:
        fail(str(e), 2)
    lines = _input_lines(file)
    first = next(lines, b"")
    try:
        kind = sniff_input(first)  # before the database opens: UTF-16 JSON Lines is refused at once
    except InputEncodingError as e:
        fail(f"{file}: {e}", 2)
    node = open_node(db, write=True, screens=True)
    tune_gc()
    stdout = sys.stdout
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    with node:
        try:
            if kind == "xml":
                from setara.node.messaging import submit_xml, write_replies

                data = xml_as_utf8(first + b"".join(lines))
                result = submit_xml(node, data, source=file, xsd_dir=xsd_dir)
                stdout.write("".join(a.text() + "\n" for a in result.acks))
                counts.update(Counter(map(_status_of, result.acks)))
                if replies is not None:
                    write_replies(replies, result.replies)  # named so that replies never overwrite
            else:
                size = os.path.getsize(file) if file != "-" and os.path.isfile(file) else None
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                with Progress(TextColumn("submitting"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("instructions"), TimeElapsedColumn(), console=err,
                              disable=not err.is_terminal) as progress:
                    # The total is estimated from the file size and refined as lines come back.
                    task = progress.add_task("submit", total=None)
                    done = 0
                    for acks in node.submit_file(None if file == "-" else file,
                                                 prefix=first if file == "-" else b"", source=file, batch_lines=batch):
                        stdout.write("\n".join(map(Ack.text, acks)) + "\n")
                        stdout.flush()
                        counts.update(Counter(map(_status_of, acks)))
                        done += len(acks)
                        estimate = size // max(1, len(first)) if size else None
                        progress.update(task, completed=done,
                                        total=max(done, estimate) if estimate else None)
        except (SetaraError, StoreError) as e:
            fail(str(e), store_exit(e))
        except OSError as e:  # writing the replies
            fail(f"--replies: cannot write to {replies}: {e.strerror or e}")
    secs = time.perf_counter() - started
    total = sum(counts.values())
    say(f"{total} instructions in {secs:.3f} s: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def statement(member: Annotated[str, typer.Option("--member")], currency: Annotated[str, typer.Option("--currency")],
              fmt: Annotated[str, typer.Option("--format", help="json or camt053")] = "json",
              db: DbOpt = DEFAULT_DB) -> None:
    """A statement of one account (all postings since the network started), to stdout."""
    from setara.node.messaging import statement_camt053, statement_json

    if fmt not in ("json", "camt053"):
        fail("--format must be json or camt053", 2)
    with open_node(db, write=False) as node:
        net = network_of(node)
        member_arg(net, member, bic_ok=True)
        currency_arg(net, currency)
        try:
            if fmt == "camt053":
                sys.stdout.buffer.write(statement_camt053(node, member, currency))
            else:
                out_json(statement_json(node, member, currency), indent=True)
        except ValueError as e:
            fail(str(e), 2)


def notify(out_dir: Annotated[Path, typer.Option("--out", help="Directory for camt.054 files.")],
           member: Annotated[str | None, typer.Option("--member")] = None, db: DbOpt = DEFAULT_DB) -> None:
    """Write a camt.054 notification per settled payment and side not yet written."""
    from setara.node.messaging import write_notifications

    check_out_dir(out_dir, "--out")
    with open_node(db, write=False) as node:
        if member is not None:
            member_arg(network_of(node), member)
        try:
            n = write_notifications(node, out_dir, member)
        except OSError as e:
            fail(f"--out: cannot write to {out_dir}: {e.strerror or e}")
    say(f"{n} camt.054 notification(s) written to {out_dir}")


def cancel(payment_id: Annotated[str, typer.Argument(metavar="ID")], db: DbOpt = DEFAULT_DB) -> None:
    """Cancel a queued or held payment."""
    from setara.node.usecases import cancel_payment

    with open_node(db, write=True) as node, refusals():
        status = cancel_payment(node, payment_id)
        out(f"{payment_id} {status}\n")


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.command("cancel")(cancel)
    app.command("statement")(statement)
    app.command("notify")(notify)
