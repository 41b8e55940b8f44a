"""`setara export payments|balances|journal`: the read views, to stdout as CSV or JSON Lines."""

from collections.abc import Iterator

import typer

from setara.cli.common import DEFAULT_DB, DbOpt, FormatOpt, check_format, emit, open_node, refusals

export_app = typer.Typer(no_args_is_help=True, help="Export payments, balances or the journal to stdout.")


@export_app.command("payments")
def export_payments(db: DbOpt = DEFAULT_DB, fmt: FormatOpt = "csv") -> None:
    """id,debtor,creditor,currency,amount,status,reason (+ priority, FX and reference columns)."""
    from setara.core.money import format_amount
    from setara.node.views import finality, payments

    check_format(fmt)
    with open_node(db, write=False) as node, refusals():
        net = node.network
        node.catch_up()
        final = finality(node.store)  # the latest checkpoint a quorum of member nodes signed

        def rows() -> Iterator[dict[str, object]]:
            for p in payments(node.store):
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
                    "final": final is not None and final.covers(p),
                }

        emit(rows(), fmt, ["id", "debtor", "creditor", "currency", "amount", "status", "reason", "priority",
                           "to_currency", "credit_amount", "provider", "rate", "uetr", "end_to_end_id",
                           "accepted_ms", "updated_ms", "final"])


@export_app.command("balances")
def export_balances(db: DbOpt = DEFAULT_DB, fmt: FormatOpt = "csv") -> None:
    """member,currency,balance for members' settlement accounts (+ available)."""
    from setara.core.money import format_amount
    from setara.node.views import balances

    check_format(fmt)
    with open_node(db, write=False) as node, refusals():
        net = node.network
        rows = ({"member": b.member, "currency": b.currency,
                 "balance": format_amount(b.balance_minor, net.minor_units(b.currency) or 0),
                 "available": format_amount(b.available_minor, net.minor_units(b.currency) or 0)}
                for b in balances(node.engine, net))
        emit(rows, fmt, ["member", "currency", "balance", "available"])


@export_app.command("journal")
def export_journal(db: DbOpt = DEFAULT_DB, fmt: FormatOpt = "csv") -> None:
    """Final postings: seq,payment_id,currency,debit_member,credit_member,amount,rate,block,hash."""
    from setara.core.money import format_amount
    from setara.node.views import journal

    check_format(fmt)
    with open_node(db, write=False) as node, refusals():
        net = node.network
        rows = ({"seq": j.seq, "payment_id": j.payment_id, "currency": j.currency, "debit_member": j.debit,
                 "credit_member": j.credit, "amount": format_amount(j.amount_minor, net.minor_units(j.currency) or 0),
                 "rate": j.rate, "block": j.block, "hash": j.hash}
                for j in journal(node.store))
        emit(rows, fmt, ["seq", "payment_id", "currency", "debit_member", "credit_member", "amount",
                         "rate", "block", "hash"])


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
