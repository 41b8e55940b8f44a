"""`setara fund|withdraw`: the settlement agent moves central bank money in or out."""

from typing import Annotated

import typer

from setara.cli.common import (
    DEFAULT_DB,
    DbOpt,
    amount_arg,
    currency_arg,
    fail,
    member_arg,
    network_of,
    open_node,
    out,
    refusals,
)

MemberOpt = Annotated[str, typer.Option("--member")]
CurrencyOpt = Annotated[str, typer.Option("--currency")]
AmountOpt = Annotated[str, typer.Option("--amount", help="Decimal string in major units, e.g. 1000.50.")]
IdOpt = Annotated[str | None, typer.Option("--id", help="Idempotency id of the movement.")]
# The amount is checked above; an engine refusal (e.g. a reused --id) names itself.
_OPTIONS = {"member": "--member", "currency": "--currency"}


def _move(member: str, currency: str, amount: str, db: str, *, withdraw: bool, fund_id: str | None) -> None:
    from setara.core.money import format_amount
    from setara.node.usecases import fund as fund_uc
    from setara.node.views import balances

    with open_node(db, write=True) as node:
        net = network_of(node)
        member_arg(net, member)
        units = currency_arg(net, currency)
        minor = amount_arg(units, amount)
        if withdraw:
            # Checked here so the refusal speaks in the currency's units, not minor units.
            available = next((b.available_minor for b in balances(node.engine, net)
                              if (b.member, b.currency) == (member, currency)), None)
            if available is not None and available < minor:
                fail(f"--amount: {member} has only {format_amount(available, units)} {currency} available "
                     "to withdraw", 2)
        with refusals(_OPTIONS):
            res = fund_uc(node, member, currency, minor, withdraw=withdraw, fund_id=fund_id)
        out(f"{res.id} {res.member} {res.currency} {format_amount(res.balance_minor, units)}\n")


def fund(member: MemberOpt, currency: CurrencyOpt, amount: AmountOpt, db: DbOpt = DEFAULT_DB,
         fund_id: IdOpt = None) -> None:
    """The settlement agent moves central bank money into a member's account."""
    _move(member, currency, amount, db, withdraw=False, fund_id=fund_id)


def withdraw(member: MemberOpt, currency: CurrencyOpt, amount: AmountOpt, db: DbOpt = DEFAULT_DB,
             fund_id: IdOpt = None) -> None:
    """The settlement agent drains central bank money from a member's account."""
    _move(member, currency, amount, db, withdraw=True, fund_id=fund_id)


def register(app: typer.Typer) -> None:
    app.command("fund")(fund)
    app.command("withdraw")(withdraw)
