"""`setara lists import|update|status`, `setara screen`, `setara holds list|release|reject`."""

import io
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from setara.cli.common import (
    DEFAULT_DB,
    DbOpt,
    fail,
    open_node,
    out,
    out_json,
    refusals,
    say,
    store_at,
    store_exit,
    warn,
)
from setara.node import Node, StoreError

lists_app = typer.Typer(no_args_is_help=True, help="Sanctions lists: import, update, status.")
holds_app = typer.Typer(no_args_is_help=True, help="Compliance review of screening holds.")


def _store_lists(db: str, datas: list[object], force: bool = False, officer: str | None = None) -> None:
    """Record list versions (no writer lock needed), then screen members and the queue again. If
    another process holds the writer lock (`setara serve`), it re-screens when it sees the new version.
    A downgrade (older, or dropping entities) is refused unless an officer forces it, which is logged."""
    from setara.cli.common import replicate
    from setara.node.screening import (
        PaymentScreening,
        latest_lists,
        list_change_refusal,
        persist_indexes,
        record_forced_list,
        store_list,
    )
    from setara.node.usecases import rescreen

    if force and not (officer and officer.strip()):
        fail("--force needs --officer NAME (who overrides the downgrade check)", 2)
    store = store_at(db)
    try:
        current = latest_lists(store)
        why = {id(d): list_change_refusal(current[d.source][1] if d.source in current else None, d)  # type: ignore[attr-defined]
               for d in datas}
        for data in datas:
            if why[id(data)] and not force:
                fail(f"{data.source}: refused: {why[id(data)]}; an officer may load it with --force --officer NAME",  # type: ignore[attr-defined]
                     2)
        for data in datas:
            v = store_list(store, data)  # type: ignore[arg-type]
            reason = why[id(data)]
            if reason and officer:
                record_forced_list(store, v, officer.strip(), reason)
                say(f"forced by {officer.strip()}: {reason}")
            out_json({"version": v.version, "source": v.source, "list_date": v.list_date,
                      "sha256": v.checksum, "entities": v.entities})
    except StoreError as e:
        fail(str(e), store_exit(e))
    finally:
        store.close()
    try:
        node = Node.open(db, write=True, lock_timeout_s=2.0)
    except StoreError:
        say("another process holds the writer lock (setara serve?): it re-screens members and queued "
            "payments when it picks up the new list version")
        return
    replicate(node)
    with node, refusals():
        persist_indexes(node.store, node.network)
        node.screening = PaymentScreening.from_store(node.store)
        report = rescreen(node)
    say(f"re-screened {report['members']} members and {report['payments']} queued/held payments: "
        f"{report['frozen']} member(s) frozen, {report['held']} payment(s) put on hold")


ForceOpt = Annotated[bool, typer.Option("--force", help="Load a list older than, or dropping over 5% of, the "
                                        "current version (needs --officer; logged).")]
ForcingOfficerOpt = Annotated[str | None, typer.Option("--officer", help="Who forces it.")]


@lists_app.command("import")
def lists_import(file: Annotated[Path, typer.Argument(help="The list file (OFAC CSV: sdn.csv, alt/add beside it).")],
                 source: Annotated[str, typer.Option("--source", help="un-xml, ofac-sdn-csv, ofac-sdn-xml, eu-xml, "
                                                     "uk-csv")],
                 force: ForceOpt = False, officer: ForcingOfficerOpt = None,
                 db: DbOpt = DEFAULT_DB) -> None:
    """Load a list version from a file."""
    from setara.compliance import SOURCES, load_list_path

    if source not in SOURCES:
        fail(f"--source must be one of {', '.join(SOURCES)}", 2)
    if not file.exists():
        fail(f"cannot read {file}", 2)
    try:
        data = load_list_path(source, file)
    except (ValueError, OSError) as e:
        fail(f"{file}: {e}", 2)
    _store_lists(db, [data], force, officer)


@lists_app.command("update")
def lists_update(source: Annotated[list[str] | None, typer.Option("--source", help="Sources to fetch "
                                                                  "(default: every list the network uses).")] = None,
                 url: Annotated[str | None, typer.Option("--url", help="Fetch from here instead of the official URL "
                                                         "(one source only).")] = None,
                 force: ForceOpt = False, officer: ForcingOfficerOpt = None,
                 db: DbOpt = DEFAULT_DB) -> None:
    """Fetch lists from their official URLs (or --url) and load new versions."""
    from setara.compliance import SOURCES, update_list

    with open_node(db, write=False) as node, refusals():
        sources = source or sorted({s for m in node.network.members.values() for s in m.lists})
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:  # refused before anything is fetched
        fail(f"--source: unknown list source {unknown[0]!r}; use one of {', '.join(SOURCES)}", 2)
    if url is not None and len(sources) != 1:
        fail("--url needs exactly one --source", 2)
    datas: list[object] = []
    for src in sources:
        try:
            datas.append(update_list(src, url))
        except (ValueError, OSError) as e:
            fail(f"{src}: {e}")
    _store_lists(db, datas, force, officer)


@lists_app.command("status")
def lists_status(db: DbOpt = DEFAULT_DB) -> None:
    """The list versions in force, one JSON line each."""
    from setara.node.screening import list_status

    store = store_at(db)
    try:
        versions = list_status(store)
    except StoreError as e:
        fail(str(e), store_exit(e))
    finally:
        store.close()
    if not versions:
        say("no sanctions list is loaded")
    for v in versions:
        out_json({"version": v.version, "source": v.source, "list_date": v.list_date, "sha256": v.checksum,
                  "imported_ms": v.imported_ms, "entities": v.entities})


def screen(file: Annotated[str, typer.Argument(help="Names, one per line (name<TAB>country<TAB>birth_year), "
                                               "or - for stdin.")],
           db: DbOpt = DEFAULT_DB,
           list_: Annotated[list[str] | None, typer.Option("--list", help="Only these sources.")] = None) -> None:
    """Screen names against the loaded lists; JSON Lines out."""
    from setara.compliance import SOURCES, run_screen
    from setara.node.screening import latest_lists, load_screener

    unknown = [s for s in list_ or [] if s not in SOURCES]
    if unknown:
        fail(f"--list: unknown list source {unknown[0]!r}; use one of {', '.join(SOURCES)}", 2)
    # Opened first, so an unreadable file is refused in one line, before any warning.
    text = (io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace") if file == "-"
            else _open_text(file))
    store = store_at(db)
    try:
        lists = latest_lists(store)
        if list_:
            lists = {k: v for k, v in lists.items() if k in list_}
        if not lists:
            warn("no sanctions list is loaded: screening finds no hit")
        screener = load_screener(store, lists)  # the index persisted with these list versions, if any
    except StoreError as e:
        fail(str(e), store_exit(e))
    finally:
        store.close()
    stdout = sys.stdout
    buf: list[str] = []
    for rec in run_screen(text, screener):
        buf.append(orjson.dumps(rec).decode())
        if len(buf) >= 1000:
            stdout.write("\n".join(buf) + "\n")
            buf = []
    if buf:
        stdout.write("\n".join(buf) + "\n")


def _open_text(path: str) -> io.TextIOWrapper:
    try:
        return open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}", 2)


@holds_app.command("list")
def holds_list(db: DbOpt = DEFAULT_DB) -> None:
    """Payments held for compliance review, with why (JSON Lines)."""
    from setara.core.money import format_amount
    from setara.node.views import holds

    with open_node(db, write=False) as node, refusals():
        node.catch_up()
        net = node.network
        for h in holds(node.engine)[1]:
            p = h.payment
            row = node.store.get_payment(p.id)
            out_json({
                "id": p.id, "debtor": p.debtor, "creditor": p.creditor, "currency": p.currency,
                "amount": format_amount(p.amount_minor, net.minor_units(p.currency) or 0),
                "reason": row.reason if row else None,
                "parties": orjson.loads(row.parties) if row and row.parties else {},
                "earmarked": h.earmarked,
            })


OfficerOpt = Annotated[str, typer.Option("--officer", help="Who decides (required).")]
NoteOpt = Annotated[str, typer.Option("--note", help="Why (required).")]


def _review(payment_id: str, release: bool, officer: str, note: str, db: str) -> None:
    from setara.node.usecases import review_hold

    # An anonymous decision is not a review: both are required and checked before the database opens.
    if not officer.strip():
        fail("--officer is required: say who decides", 2)
    if not note.strip():
        fail("--note is required: say why", 2)
    with open_node(db, write=True) as node, refusals({"officer": "--officer", "note": "--note"}):
        status = review_hold(node, payment_id, release=release, officer=officer, note=note)
        out(f"{payment_id} {status}\n")


@holds_app.command("release")
def holds_release(payment_id: Annotated[str, typer.Argument(metavar="ID")], officer: OfficerOpt, note: NoteOpt,
                  db: DbOpt = DEFAULT_DB) -> None:
    """Release a held payment: it settles or queues."""
    _review(payment_id, True, officer, note, db)


@holds_app.command("reject")
def holds_reject(payment_id: Annotated[str, typer.Argument(metavar="ID")], officer: OfficerOpt, note: NoteOpt,
                 db: DbOpt = DEFAULT_DB) -> None:
    """Reject a held payment (RR04)."""
    _review(payment_id, False, officer, note, db)


def register(app: typer.Typer) -> None:
    app.add_typer(lists_app, name="lists")
    app.add_typer(holds_app, name="holds")
    app.command("screen")(screen)
