"""The `setara` command. A thin shell: parse arguments, call the service, print data to stdout.

stdout carries only the command's data; progress, warnings and summaries go to stderr. Exit 0
when the command did its job (even if some input lines were REJECTED), 1 for a failure of the
system or of verification, 2 for a usage error or unreadable input.
"""


import csv
import io
import operator
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import orjson
import typer
from rich.console import Console

from setara.core import Cancel as CancelCmd
from setara.core import (
    DayClose,
    DayOpen,
    EngineError,
    Fund,
    PostRate,
    SetSuspended,
)
from setara.core.money import AmountError, format_amount, parse_amount
from setara.core.network import NetworkError, example_toml, load_network
from setara.node import Ack, Node, SetaraError, tune_gc
from setara.node.intake import UTF8_BOM, intake_workers
from setara.ports import now_ms
from setara.store import StoreError, open_store

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Setara: open settlement network for cross-border trade in local currencies.")
network_app = typer.Typer(no_args_is_help=True, help="Show or change the network configuration.")
member_app = typer.Typer(no_args_is_help=True, help="Suspend or resume a member.")
day_app = typer.Typer(no_args_is_help=True, help="Close or open the business day.")
export_app = typer.Typer(no_args_is_help=True, help="Export payments, balances or the journal to stdout.")
fx_app = typer.Typer(no_args_is_help=True, help="FX providers' rates and quotes.")
app.add_typer(network_app, name="network")
app.add_typer(member_app, name="member")
app.add_typer(day_app, name="day")
app.add_typer(export_app, name="export")
app.add_typer(fx_app, name="fx")

err = Console(stderr=True, soft_wrap=True)

DbOpt = Annotated[str, typer.Option("--db", help="SQLite path or postgresql://… URL.")]
DEFAULT_DB = "./setara.db"


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _open(db: str, *, write: bool) -> Node:
    try:
        node = Node.open(db, write=write)
    except StoreError as e:
        _fail(str(e))
    from setara.node.screening import PaymentScreening

    # Cheap without lists: the matcher (ICU, rapidfuzz, numpy) loads only when a name is screened.
    screening = PaymentScreening.from_store(node.store)
    if not screening.loaded:
        err.print("[yellow]warning:[/yellow] no sanctions list is loaded: screening finds no hit "
                  "(load one with `setara lists import`); country measures still apply", highlight=False)
    if write:
        node.screening = screening
        _replicate(node)
    return node


def _replicate(node: Node) -> None:
    """With --replicate (or SETARA_REPLICATE), every block goes to the stream before its ack."""
    from setara.node.replicate import NotASequencer, Replicator, settings_from

    try:
        settings = settings_from(None, None, None)
        if settings is not None:
            node.replicator = Replicator.open(settings, node.network, node.store)
    except NotASequencer as e:
        node.close()
        _fail(str(e), 2)
    except SetaraError as e:
        node.close()
        _fail(str(e))


def _run(node: Node, cmd: object) -> list[object]:
    try:
        return node.run(cmd)  # type: ignore[arg-type]
    except SetaraError as e:
        node.close()
        _fail(str(e))


def _amount(node: Node, currency: str, text: str, field: str = "--amount") -> int:
    units = node.network.minor_units(currency)
    if units is None:
        node.close()
        _fail(f"--currency: {currency} is not in the network", 2)
    try:
        value = parse_amount(text, units)
    except AmountError as e:
        node.close()
        _fail(f"{field}: {e}", 2)
    if value <= 0:
        node.close()
        _fail(f"{field}: must be greater than zero", 2)
    return value


# ====================================================================== network


@network_app.command("example")
def network_example() -> None:
    """Print a commented example network TOML."""
    sys.stdout.write(example_toml())


@network_app.command("show")
def network_show(db: DbOpt = DEFAULT_DB) -> None:
    """Print the network (currencies, members) as JSON."""
    node = _open(db, write=False)
    with node:
        sys.stdout.write(orjson.dumps(node.network.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")


@network_app.command("apply")
def network_apply(change: Annotated[Path, typer.Argument(help="Change TOML: [[add_member]], [[credit_line]].")],
                  db: DbOpt = DEFAULT_DB) -> None:
    """Apply a network change (add members, change credit lines) as a command in the log."""
    from setara.node.usecases import Refused, apply_network_change

    text = _read_text(change)
    node = _open(db, write=True)
    with node:
        try:
            report = apply_network_change(node, text)
        except Refused as e:
            _fail(str(e), 2)
        err.print(f"applied: {len(report['added'])} member(s) added, {report['credit_lines']} credit line(s) changed"
                  + (f"; screened the new members: {report['frozen']} frozen" if report["added"] else ""),
                  highlight=False)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        _fail(f"cannot read {path}: {e}", 2)


@app.command("init")
def init(network: Annotated[Path, typer.Option("--network", help="Network TOML (see `setara network example`).")],
         db: DbOpt = DEFAULT_DB) -> None:
    """Create a network: currencies, members, accounts, opening balances and credit lines."""
    try:
        net = load_network(_read_text(network))
    except NetworkError as e:
        _fail(str(e), 2)
    try:
        node = Node.create(db, net, now_ms())
    except (StoreError, SetaraError) as e:
        _fail(str(e))
    with node:
        err.print(f"initialised {db}: {len(net.currencies)} currencies, {len(net.members)} members, "
                  f"{len(net.accounts)} accounts")


@member_app.command("suspend")
def member_suspend(member: str, db: DbOpt = DEFAULT_DB) -> None:
    """Suspend a member: its new payments are rejected."""
    node = _open(db, write=True)
    with node:
        _run(node, SetSuspended(member, True, now_ms()))
        err.print(f"{member} suspended")


@member_app.command("resume")
def member_resume(member: str, db: DbOpt = DEFAULT_DB) -> None:
    """Resume a suspended member."""
    node = _open(db, write=True)
    with node:
        _run(node, SetSuspended(member, False, now_ms()))
        err.print(f"{member} resumed")


def _fund(member: str, currency: str, amount: str, db: str, withdraw: bool, fund_id: str | None) -> None:
    node = _open(db, write=True)
    with node:
        minor = _amount(node, currency, amount)
        fid = fund_id or f"{'withdraw' if withdraw else 'fund'}:{uuid.uuid4()}"
        _run(node, Fund(fid, member, currency, minor, withdraw, now_ms()))
        bal = node.engine.ledger.balance((member, currency))
        units = node.network.minor_units(currency) or 0
        sys.stdout.write(f"{fid} {member} {currency} {format_amount(bal, units)}\n")


@app.command("fund")
def fund(member: Annotated[str, typer.Option("--member")], currency: Annotated[str, typer.Option("--currency")],
         amount: Annotated[str, typer.Option("--amount")], db: DbOpt = DEFAULT_DB,
         fund_id: Annotated[str | None, typer.Option("--id", help="Idempotency id of the movement.")] = None
         ) -> None:
    """The settlement agent moves central bank money into a member's account."""
    _fund(member, currency, amount, db, False, fund_id)


@app.command("withdraw")
def withdraw(member: Annotated[str, typer.Option("--member")],
             currency: Annotated[str, typer.Option("--currency")],
             amount: Annotated[str, typer.Option("--amount")], db: DbOpt = DEFAULT_DB,
             fund_id: Annotated[str | None, typer.Option("--id", help="Idempotency id of the movement.")] = None
             ) -> None:
    """The settlement agent drains central bank money from a member's account."""
    _fund(member, currency, amount, db, True, fund_id)


# ====================================================================== payments


def _input_lines(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from sys.stdin.buffer
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        _fail(f"cannot read {path}: {e.strerror}", 2)
    with f:
        yield from f


_status_of = operator.attrgetter("status")


@app.command("submit")
def submit(file: Annotated[str, typer.Argument(help="JSON Lines or ISO 20022 XML file, or - for stdin.")],
           db: DbOpt = DEFAULT_DB,
           batch: Annotated[int, typer.Option("--batch", help="Lines per durable group commit.")] = 2000,
           replies: Annotated[Path | None, typer.Option("--replies", help="Directory for pacs.002 replies.")]
           = None,
           xsd_dir: Annotated[Path | None, typer.Option(
               "--xsd-dir", help="Validate ISO 20022 input against the official XSDs in this directory "
               "(or set SETARA_ISO20022_XSD_DIR).")] = None) -> None:
    """Submit instructions; prints `<id> <STATUS>` (and a reason) per instruction once it is durable."""
    try:
        intake_workers()  # a bad SETARA_INTAKE_WORKERS is a usage error, found before any work
    except ValueError as e:
        _fail(str(e), 2)
    lines = _input_lines(file)
    first = next(lines, b"")
    node = _open(db, write=True)
    tune_gc()
    out = sys.stdout
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    with node:
        try:
            if first.removeprefix(UTF8_BOM).lstrip().startswith(b"<"):
                from setara.node.messaging import submit_xml, write_replies

                data = first + b"".join(lines)
                result = submit_xml(node, data, source=file, xsd_dir=xsd_dir)
                out.write("".join(a.text() + "\n" for a in result.acks))
                counts.update(Counter(map(_status_of, result.acks)))
                if replies is not None:  # <sender BIC>.<MsgId>.<n>.<type>.xml, never overwritten
                    write_replies(replies, result.replies)
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
                        out.write("\n".join(map(Ack.text, acks)) + "\n")
                        out.flush()
                        counts.update(Counter(map(_status_of, acks)))
                        done += len(acks)
                        estimate = size // max(1, len(first)) if size else None
                        progress.update(task, completed=done,
                                        total=max(done, estimate) if estimate else None)
        except (SetaraError, StoreError) as e:
            _fail(str(e))
    secs = time.perf_counter() - started
    total = sum(counts.values())
    err.print(f"{total} instructions in {secs:.3f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)


@app.command("statement")
def statement(member: Annotated[str, typer.Option("--member")], currency: Annotated[str, typer.Option("--currency")],
              fmt: Annotated[str, typer.Option("--format", help="json or camt053")] = "json",
              db: DbOpt = DEFAULT_DB) -> None:
    """A statement of one account (all postings since the network started), to stdout."""
    from setara.node.messaging import statement_camt053, statement_json

    if fmt not in ("json", "camt053"):
        _fail("--format must be json or camt053", 2)
    node = _open(db, write=False)
    with node:
        try:
            if fmt == "camt053":
                sys.stdout.buffer.write(statement_camt053(node, member, currency))
            else:
                sys.stdout.write(orjson.dumps(statement_json(node, member, currency),
                                              option=orjson.OPT_INDENT_2).decode() + "\n")
        except ValueError as e:
            _fail(str(e), 2)


@app.command("notify")
def notify(out_dir: Annotated[Path, typer.Option("--out", help="Directory for camt.054 files.")],
           member: Annotated[str | None, typer.Option("--member")] = None, db: DbOpt = DEFAULT_DB) -> None:
    """Write a camt.054 notification per settled payment and side not yet written."""
    from setara.node.messaging import write_notifications

    node = _open(db, write=False)
    with node:
        n = write_notifications(node, out_dir, member)
    err.print(f"{n} camt.054 notification(s) written to {out_dir}")


@app.command("cancel")
def cancel(payment_id: Annotated[str, typer.Argument(metavar="ID")], db: DbOpt = DEFAULT_DB) -> None:
    """Cancel a queued or held payment."""
    node = _open(db, write=True)
    with node:
        _run(node, CancelCmd(payment_id, now_ms()))
        sys.stdout.write(f"{payment_id} CANCELLED\n")


@day_app.command("close")
def day_close(db: DbOpt = DEFAULT_DB) -> None:
    """End the business day: queued payments past their cut-off are rejected (TM01)."""
    node = _open(db, write=True)
    with node:
        events = _run(node, DayClose(now_ms()))
        n = sum(1 for e in events if getattr(e, "status", None) == "REJECTED")
        err.print(f"business day {node.engine.business_day} closed; {n} queued payment(s) rejected at cut-off")


@day_app.command("open")
def day_open(db: DbOpt = DEFAULT_DB) -> None:
    """Start the next business day; warehoused payments are settled or queued."""
    node = _open(db, write=True)
    with node:
        _run(node, DayOpen(now_ms()))
        err.print(f"business day {node.engine.business_day} open")


# ====================================================================== export


def _emit(rows: Iterator[dict[str, object]], fmt: str, columns: list[str]) -> None:
    out = sys.stdout
    if fmt == "jsonl":
        for r in rows:
            out.write(orjson.dumps(r).decode() + "\n")
        return
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r[c] is None else r[c] for c in columns])


FormatOpt = Annotated[str, typer.Option("--format", help="csv or jsonl")]


def _check_format(fmt: str) -> None:
    if fmt not in ("csv", "jsonl"):
        _fail("--format must be csv or jsonl", 2)


@export_app.command("payments")
def export_payments(db: DbOpt = DEFAULT_DB, fmt: FormatOpt = "csv") -> None:
    """id,debtor,creditor,currency,amount,status,reason (+ priority, FX and reference columns)."""
    _check_format(fmt)
    node = _open(db, write=False)
    with node:
        net = node.network
        node.catch_up()

        def rows() -> Iterator[dict[str, object]]:
            for p in node.store.iter_payments():
                units = net.minor_units(p.currency) or 0
                to_units = net.minor_units(p.to_currency) if p.to_currency else None
                yield {
                    "id": p.id, "debtor": p.debtor, "creditor": p.creditor, "currency": p.currency,
                    "amount": format_amount(p.amount_minor, units), "status": p.status,
                    "reason": f"{p.reason_code} {p.reason}" if p.reason_code else (p.reason or ""),
                    "priority": p.priority, "to_currency": p.to_currency,
                    "credit_amount": None if p.credit_minor is None or to_units is None
                    else format_amount(p.credit_minor, to_units),
                    "provider": p.provider, "rate": p.rate, "uetr": p.uetr, "end_to_end_id": p.end_to_end_id,
                    "accepted_ms": p.accepted_ms, "updated_ms": p.updated_ms,
                }

        _emit(rows(), fmt, ["id", "debtor", "creditor", "currency", "amount", "status", "reason", "priority",
                            "to_currency", "credit_amount", "provider", "rate", "uetr", "end_to_end_id",
                            "accepted_ms", "updated_ms"])


@export_app.command("balances")
def export_balances(db: DbOpt = DEFAULT_DB, fmt: FormatOpt = "csv") -> None:
    """member,currency,balance for members' settlement accounts (+ available)."""
    _check_format(fmt)
    node = _open(db, write=False)
    with node:
        net = node.network
        led = node.engine.ledger

        def rows() -> Iterator[dict[str, object]]:
            for (m, c), bal in led.balances.items():
                if m not in net.members:
                    continue
                units = net.minor_units(c) or 0
                yield {"member": m, "currency": c, "balance": format_amount(bal, units),
                       "available": format_amount(led.available((m, c)), units)}

        _emit(rows(), fmt, ["member", "currency", "balance", "available"])


@export_app.command("journal")
def export_journal(db: DbOpt = DEFAULT_DB, fmt: FormatOpt = "csv") -> None:
    """Final postings: seq,payment_id,currency,debit_member,credit_member,amount,rate,block,hash."""
    _check_format(fmt)
    node = _open(db, write=False)
    with node:
        net = node.network

        def rows() -> Iterator[dict[str, object]]:
            from setara.core.ledger import GENESIS, posting_hash

            head = GENESIS  # the posting chain is recomputed here; each block stores its head
            for b in node.store.iter_blocks():
                for seq, pid, ccy, dr, cr, amt, rate in orjson.loads(b.journal):
                    head = posting_hash(head, seq, pid, ccy, dr, cr, amt, rate)
                    yield {"seq": seq, "payment_id": pid, "currency": ccy, "debit_member": dr,
                           "credit_member": cr, "amount": format_amount(amt, net.minor_units(ccy) or 0),
                           "rate": rate, "block": b.seq, "hash": head.hex()}

        _emit(rows(), fmt, ["seq", "payment_id", "currency", "debit_member", "credit_member", "amount",
                            "rate", "block", "hash"])


# ====================================================================== verify


@app.command("verify")
def verify(db: DbOpt = DEFAULT_DB) -> None:
    """Replay the log from scratch, check the hash chain and every invariant, print the state hash."""
    from setara.node.verify import VerificationError, verify_store

    store = open_store(db)
    try:
        store.check_schema()
        started = time.perf_counter()
        report = verify_store(store)
    except StoreError as e:
        _fail(str(e))
    except VerificationError as e:
        _fail(f"verification failed: {e}")
    finally:
        store.close()
    sys.stdout.write(report.state_hash + "\n")
    err.print(f"verified {report.blocks} blocks, {report.commands} commands, {report.postings} postings, "
              f"{report.payments} payments in {time.perf_counter() - started:.2f} s: hash chains intact, "
              "money conserved, floors held, every payment settled at most once", highlight=False)


# ====================================================================== FX


def _post_rate(provider: str, pair: str, rate: str, seconds: int, option: str, db: str, *, quote: bool) -> str:
    base, _, quote_ccy = pair.partition("/")
    if not base or not quote_ccy:
        _fail("--pair must look like IDR/MYR", 2)
    if seconds <= 0:
        _fail(f"{option} must be positive", 2)
    node = _open(db, write=True)
    with node:
        t = now_ms()
        qid = f"Q-{uuid.uuid4()}" if quote else None
        _run(node, PostRate(provider, base, quote_ccy, rate, t + seconds * 1000, t, qid))
    return qid or f"{provider} {base}/{quote_ccy} {rate}"


@fx_app.command("rate")
def fx_rate(provider: Annotated[str, typer.Option("--provider")], pair: Annotated[str, typer.Option("--pair")],
            rate: Annotated[str, typer.Option("--rate")],
            expires_in: Annotated[int, typer.Option("--expires-in", help="Seconds (default 24 h).")] = 86400,
            db: DbOpt = DEFAULT_DB) -> None:
    """An FX provider posts a rate: units of the second currency per unit of the first."""
    sys.stdout.write(_post_rate(provider, pair, rate, expires_in, "--expires-in", db, quote=False) + "\n")


@fx_app.command("quote")
def fx_quote(provider: Annotated[str, typer.Option("--provider")], pair: Annotated[str, typer.Option("--pair")],
             rate: Annotated[str, typer.Option("--rate")],
             valid_for: Annotated[int, typer.Option("--valid-for", help="Seconds the quote is locked.")] = 60,
             db: DbOpt = DEFAULT_DB) -> None:
    """Lock a rate for N seconds; prints the quote id an instruction may carry (`quote_id`)."""
    sys.stdout.write(_post_rate(provider, pair, rate, valid_for, "--valid-for", db, quote=True) + "\n")


@fx_app.command("rates")
def fx_rates(db: DbOpt = DEFAULT_DB,
             all_: Annotated[bool, typer.Option("--all", help="Include expired rates.")] = False) -> None:
    """List posted rates as CSV, best first per pair, with the spread against the best."""
    node = _open(db, write=False)
    with node:
        t = now_ms()
        rates = [r for r in node.engine.rates.values() if all_ or r.expires_ms > t]
        best: dict[tuple[str, str], object] = {}
        for r in rates:
            k = (r.base, r.quote)
            if k not in best or r.value > best[k]:  # type: ignore[operator]
                best[k] = r.value
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["pair", "provider", "rate", "spread_vs_best_pct", "expires_ms", "valid"])
        for r in sorted(rates, key=lambda r: (r.base, r.quote, -r.value, r.provider)):
            b = best[(r.base, r.quote)]
            spread = float((b - r.value) / b * 100)  # type: ignore[operator]
            w.writerow([f"{r.base}/{r.quote}", r.provider, r.text, f"{spread:.4f}", r.expires_ms,
                        "yes" if r.expires_ms > t else "no"])


# ====================================================================== liquidity saving

cycle_app = typer.Typer(no_args_is_help=True, help="Deferred-net settlement cycles.")
lsm_app = typer.Typer(no_args_is_help=True, help="Liquidity-saving algorithms on the live queue.")
app.add_typer(cycle_app, name="cycle")
app.add_typer(lsm_app, name="lsm")


@app.command("settle")
def settle(balances: Annotated[Path, typer.Option("--balances", help="CSV member,currency,balance")],
           queue: Annotated[Path, typer.Option("--queue", help="CSV id,debtor,creditor,currency,amount,priority,"
                                                             "submitted_at")],
           algorithm: Annotated[str, typer.Option("--algorithm")] = "optimise",
           out: Annotated[Path | None, typer.Option("--out", help="Write settled ids here (else stdout).")] = None,
           priority: Annotated[bool, typer.Option("--priority", help="Never settle a NORMAL payment of a "
                                                  "debtor while one of its URGENT ones stays queued.")] = False,
           fifo: Annotated[bool, typer.Option("--fifo", help="Settle a prefix of each debtor's queue.")] = False,
           time_limit: Annotated[float, typer.Option("--time-limit", help="Seconds.")] = 20.0) -> None:
    """Stateless solver: which queued payments settle without any balance going below zero."""
    from setara.liquidity import ALGORITHMS
    from setara.liquidity.csvio import run_settle

    if algorithm not in ALGORITHMS:
        _fail(f"--algorithm must be one of {', '.join(ALGORITHMS)}", 2)
    for path in (balances, queue):
        if not path.is_file():
            _fail(f"cannot read {path}", 2)
    try:
        summary = run_settle(balances, queue, algorithm, out, respect_priority=priority, fifo=fifo,
                             time_limit_s=time_limit)
    except ValueError as e:
        _fail(str(e), 2)
    ids = summary.pop("settled_ids", None)
    if out is None and isinstance(ids, list):
        sys.stdout.write("id\n" + "".join(f"{i}\n" for i in ids))
        err.print(orjson.dumps(summary).decode(), highlight=False, markup=False)
    else:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")


@app.command("queue")
def queue_cmd(db: DbOpt = DEFAULT_DB, fmt: FormatOpt = "csv") -> None:
    """The payments waiting now (RTGS queues and open cycles), in settlement order."""
    _check_format(fmt)
    node = _open(db, write=False)
    with node:
        net = node.network

        def rows() -> Iterator[dict[str, object]]:
            for p in sorted(node.engine.queued(), key=lambda p: (p.debtor, p.currency, p.priority, p.order)):
                yield {"id": p.id, "debtor": p.debtor, "creditor": p.creditor, "currency": p.currency,
                       "amount": format_amount(p.amount_minor, net.minor_units(p.currency) or 0),
                       "priority": "URGENT" if p.priority == 0 else "NORMAL", "submitted_at": p.order,
                       "to_currency": p.to_currency, "provider": p.provider,
                       "waiting_for": f"cycle {p.cycle}" if p.cycle else "liquidity"}

        _emit(rows(), fmt, ["id", "debtor", "creditor", "currency", "amount", "priority", "submitted_at",
                            "to_currency", "provider", "waiting_for"])


@cycle_app.command("close")
def cycle_close(currency: Annotated[str, typer.Option("--currency", help="A cycled currency, or * for all of "
                                                     "them in one netting.")] = "*",
                db: DbOpt = DEFAULT_DB) -> None:
    """Close deferred-net cycles: net, unwind members who cannot cover, settle."""
    from setara.core import CloseCycle

    node = _open(db, write=True)
    with node:
        events = _run(node, CloseCycle(currency, now_ms()))
        for ev in events:
            if getattr(ev, "kind", None) in ("cycle_closed", "cycle_unwound"):
                sys.stdout.write(orjson.dumps({"event": ev.kind, **ev.data}).decode() + "\n")  # type: ignore[attr-defined]


@lsm_app.command("run")
def lsm_run(algorithm: Annotated[str, typer.Option("--algorithm")] = "optimise",
            priority: Annotated[bool, typer.Option("--priority")] = False,
            fifo: Annotated[bool, typer.Option("--fifo")] = False, db: DbOpt = DEFAULT_DB) -> None:
    """Resolve gridlock now: settle the set the algorithm selects from the queue, atomically."""
    from setara.liquidity import ALGORITHMS

    if algorithm not in ALGORITHMS:
        _fail(f"--algorithm must be one of {', '.join(ALGORITHMS)}", 2)
    node = _open(db, write=True)
    with node:
        try:
            summary = node.resolve_gridlock(algorithm, respect_priority=priority, fifo=fifo)
        except SetaraError as e:
            _fail(str(e))
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")


# ====================================================================== compliance

lists_app = typer.Typer(no_args_is_help=True, help="Sanctions lists: import, update, status.")
holds_app = typer.Typer(no_args_is_help=True, help="Compliance review of screening holds.")
app.add_typer(lists_app, name="lists")
app.add_typer(holds_app, name="holds")


def _store_lists(db: str, datas: list[object]) -> None:
    """Record list versions (no writer lock needed), then screen members and the queue again. If
    another process holds the writer lock (`setara serve`), it re-screens when it sees the new version."""
    from setara.node.screening import PaymentScreening, store_list
    from setara.node.usecases import rescreen

    store = open_store(db)
    try:
        store.check_schema()
        for data in datas:
            v = store_list(store, data)  # type: ignore[arg-type]
            sys.stdout.write(orjson.dumps({"version": v.version, "source": v.source, "list_date": v.list_date,
                                           "sha256": v.checksum, "entities": v.entities}).decode() + "\n")
    except StoreError as e:
        _fail(str(e))
    finally:
        store.close()
    try:
        node = Node.open(db, write=True, lock_timeout_s=2.0)
    except StoreError:
        err.print("another process holds the writer lock (setara serve?): it re-screens members and queued "
                  "payments when it picks up the new list version", highlight=False)
        return
    with node:
        node.screening = PaymentScreening.from_store(node.store)
        report = rescreen(node)
    err.print(f"re-screened {report['members']} members and {report['payments']} queued/held payments: "
              f"{report['frozen']} member(s) frozen, {report['held']} payment(s) put on hold", highlight=False)


@lists_app.command("import")
def lists_import(file: Annotated[Path, typer.Argument(help="The list file (OFAC CSV: sdn.csv, alt/add beside it).")],
                 source: Annotated[str, typer.Option("--source", help="un-xml, ofac-sdn-csv, ofac-sdn-xml, eu-xml, "
                                                     "uk-csv")],
                 db: DbOpt = DEFAULT_DB) -> None:
    """Load a list version from a file."""
    from setara.compliance import SOURCES, load_list_path

    if source not in SOURCES:
        _fail(f"--source must be one of {', '.join(SOURCES)}", 2)
    if not file.exists():
        _fail(f"cannot read {file}", 2)
    try:
        data = load_list_path(source, file)
    except (ValueError, OSError) as e:
        _fail(f"{file}: {e}", 2)
    _store_lists(db, [data])


@lists_app.command("update")
def lists_update(source: Annotated[list[str] | None, typer.Option("--source", help="Sources to fetch "
                                                                  "(default: every list the network uses).")] = None,
                 url: Annotated[str | None, typer.Option("--url", help="Fetch from here instead of the official URL "
                                                         "(one source only).")] = None,
                 db: DbOpt = DEFAULT_DB) -> None:
    """Fetch lists from their official URLs (or --url) and load new versions."""
    from setara.compliance import update_list

    node = _open(db, write=False)
    with node:
        sources = source or sorted({s for m in node.network.members.values() for s in m.lists})
    if url is not None and len(sources) != 1:
        _fail("--url needs exactly one --source", 2)
    datas: list[object] = []
    for src in sources:
        try:
            datas.append(update_list(src, url))
        except (ValueError, OSError) as e:
            _fail(f"{src}: {e}")
    _store_lists(db, datas)


@lists_app.command("status")
def lists_status(db: DbOpt = DEFAULT_DB) -> None:
    """The list versions in force, one JSON line each."""
    from setara.node.screening import list_status

    store = open_store(db)
    try:
        store.check_schema()
        versions = list_status(store)
    except StoreError as e:
        _fail(str(e))
    finally:
        store.close()
    if not versions:
        err.print("no sanctions list is loaded", highlight=False)
    for v in versions:
        sys.stdout.write(orjson.dumps({"version": v.version, "source": v.source, "list_date": v.list_date,
                                       "sha256": v.checksum, "imported_ms": v.imported_ms,
                                       "entities": v.entities}).decode() + "\n")


@app.command("screen")
def screen(file: Annotated[str, typer.Argument(help="Names, one per line (name<TAB>country<TAB>birth_year), "
                                               "or - for stdin.")],
           db: DbOpt = DEFAULT_DB,
           list_: Annotated[list[str] | None, typer.Option("--list", help="Only these sources.")] = None) -> None:
    """Screen names against the loaded lists; JSON Lines out."""
    from setara.compliance import Screener, run_screen
    from setara.node.screening import latest_lists

    store = open_store(db)
    try:
        store.check_schema()
        lists = latest_lists(store)
    except StoreError as e:
        _fail(str(e))
    finally:
        store.close()
    if list_:
        lists = {k: v for k, v in lists.items() if k in list_}
    if not lists:
        err.print("[yellow]warning:[/yellow] no sanctions list is loaded: screening finds no hit", highlight=False)
    screener = Screener([d for _, d in lists.values()])
    text = (io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace") if file == "-"
            else _open_text(file))
    out = sys.stdout
    buf: list[str] = []
    for rec in run_screen(text, screener):
        buf.append(orjson.dumps(rec).decode())
        if len(buf) >= 1000:
            out.write("\n".join(buf) + "\n")
            buf = []
    if buf:
        out.write("\n".join(buf) + "\n")


def _open_text(path: str) -> io.TextIOWrapper:
    try:
        return open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        _fail(f"cannot read {path}: {e.strerror}", 2)


@holds_app.command("list")
def holds_list(db: DbOpt = DEFAULT_DB) -> None:
    """Payments held for compliance review, with why (JSON Lines)."""
    node = _open(db, write=False)
    with node:
        node.catch_up()
        net = node.network
        for p in node.engine.held():
            row = node.store.get_payment(p.id)
            sys.stdout.write(orjson.dumps({
                "id": p.id, "debtor": p.debtor, "creditor": p.creditor, "currency": p.currency,
                "amount": format_amount(p.amount_minor, net.minor_units(p.currency) or 0),
                "reason": row.reason if row else None,
                "parties": orjson.loads(row.parties) if row and row.parties else {},
                "earmarked": node.engine.ledger.is_reserved(p.id),
            }).decode() + "\n")


def _review(payment_id: str, release: bool, officer: str, note: str, db: str) -> None:
    from setara.core import Review

    if not note.strip():
        _fail("--note is required: say why", 2)
    node = _open(db, write=True)
    with node:
        events = _run(node, Review(payment_id, release, officer, note, now_ms()))
        status = node.engine.status(payment_id)
        sys.stdout.write(f"{payment_id} {status}\n")
        _ = events


@holds_app.command("release")
def holds_release(payment_id: Annotated[str, typer.Argument(metavar="ID")],
                  officer: Annotated[str, typer.Option("--officer", help="Who decides.")] = os.environ.get(
                      "USER", "compliance"),
                  note: Annotated[str, typer.Option("--note", help="Why.")] = "released after review",
                  db: DbOpt = DEFAULT_DB) -> None:
    """Release a held payment: it settles or queues."""
    _review(payment_id, True, officer, note, db)


@holds_app.command("reject")
def holds_reject(payment_id: Annotated[str, typer.Argument(metavar="ID")],
                 officer: Annotated[str, typer.Option("--officer", help="Who decides.")] = os.environ.get(
                     "USER", "compliance"),
                 note: Annotated[str, typer.Option("--note", help="Why.")] = "rejected after review",
                 db: DbOpt = DEFAULT_DB) -> None:
    """Reject a held payment (RR04)."""
    _review(payment_id, False, officer, note, db)


# ====================================================================== operations

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = DEFAULT_DB) -> None:
    """Migrate the database schema to this version of setara."""
    from setara.node import LOCK_TIMEOUT_S

    store = open_store(db)
    try:
        with store.writer(LOCK_TIMEOUT_S):  # no writer may run while the schema changes
            done = store.upgrade()
    except StoreError as e:
        _fail(str(e))
    finally:
        store.close()
    err.print("\n".join(done) if done else "schema already current", highlight=False)


@db_app.command("copy")
def db_copy(source: Annotated[str, typer.Option("--from", help="The store to copy (path or URL).")],
            target: Annotated[str, typer.Option("--to", help="An empty store (path or URL).")]) -> None:
    """Copy a network's block log into an empty store and rebuild it by replay (backup restore, or a
    move between SQLite and PostgreSQL); prints the verified state hash."""
    from setara.node.verify import VerificationError, verify_store
    from setara.store import copy_log

    src, dst = open_store(source), open_store(target)
    try:
        src.check_schema()
        n = copy_log(src, dst)
    except StoreError as e:
        _fail(str(e))
    finally:
        src.close()
        dst.close()
    try:
        with Node.open(target, write=True) as node:
            node.snapshot()
            node.catch_up()
        store = open_store(target)
        try:
            report = verify_store(store)
        finally:
            store.close()
    except (StoreError, VerificationError) as e:
        _fail(str(e))
    sys.stdout.write(report.state_hash + "\n")
    err.print(f"copied {n} blocks to {target}; replayed and verified", highlight=False)


@app.command("bench")
def bench(n: Annotated[int, typer.Option("--n", help="Payments in the submit throughput run.")] = 200_000,
          memory: Annotated[int, typer.Option("--memory", help="Also stream this many, report peak RSS.")] = 0,
          un_list: Annotated[Path | None, typer.Option("--un-list", help="UN list XML: also measure screening "
                                                       "cost.")] = None,
          nodes: Annotated[int, typer.Option("--nodes", help="Also measure member nodes with this many payments "
                                             "(replicated vs not, finality, replay).")] = 0,
          ) -> None:
    """The benchmark suite: durable submit throughput against a hand-written SQLite loop, memory,
    and the cost of screening."""
    from setara import bench as bench_mod

    res = bench_mod.run(n, memory, out=sys.stderr, un_list=un_list)
    if nodes:
        from setara.bench_nodes import run_nodes

        res.update(run_nodes(nodes, out=sys.stderr))
    sys.stdout.write(orjson.dumps(res).decode() + "\n")


# ====================================================================== service, demo, simulator

def _register_extensions() -> None:
    """The HTTP service (`serve`, `keys`) and the demo/simulator (`demo`, `simulate`) register
    their own commands; their heavy imports happen only when they run."""
    import importlib

    for name in ("setara.api.commands", "setara.sim.commands", "setara.cli.nodes", "setara.simtest.commands"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(app)


_register_extensions()


@fx_app.command("positions")
def fx_positions(db: DbOpt = DEFAULT_DB, fmt: FormatOpt = "csv") -> None:
    """Each FX provider's position per currency and its exposure to queued cross-currency payments."""
    _check_format(fmt)
    node = _open(db, write=False)
    with node:
        net = node.network
        led = node.engine.ledger
        owed: dict[tuple[str, str], int] = {}
        due: dict[tuple[str, str], int] = {}
        count: dict[str, int] = {}
        for p in node.engine.live.values():
            if p.provider is None or p.to_currency is None:
                continue
            owed[(p.provider, p.to_currency)] = owed.get((p.provider, p.to_currency), 0) + p.credit_minor
            due[(p.provider, p.currency)] = due.get((p.provider, p.currency), 0) + p.amount_minor
            count[p.provider] = count.get(p.provider, 0) + 1

        def rows() -> Iterator[dict[str, object]]:
            for m in net.members.values():
                if not m.is_fx_provider:
                    continue
                for (holder, ccy), bal in led.balances.items():
                    if holder != m.id:
                        continue
                    units = net.minor_units(ccy) or 0
                    out = owed.get((m.id, ccy), 0)
                    yield {"provider": m.id, "currency": ccy, "balance": format_amount(bal, units),
                           "available": format_amount(led.available((m.id, ccy)), units),
                           "queued_to_pay": format_amount(out, units),
                           "queued_to_receive": format_amount(due.get((m.id, ccy), 0), units),
                           "shortfall": format_amount(max(0, out - led.available((m.id, ccy))), units),
                           "queued_payments": count.get(m.id, 0)}

        _emit(rows(), fmt, ["provider", "currency", "balance", "available", "queued_to_pay", "queued_to_receive",
                            "shortfall", "queued_payments"])


def main() -> None:
    try:
        app()
    except (EngineError, SetaraError, StoreError) as e:
        err.print(f"error: {e}", highlight=False, markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("SETARA_DEBUG"):
            raise
        err.print(f"internal error: {type(e).__name__}: {e} (set SETARA_DEBUG=1 for a traceback)",
                  highlight=False, markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
