"""`setara fund|withdraw`: the settlement agent moves central bank money in or out."""

from typing import Annotated

import typer

from setara.cli.common import (
    DEFAULT_DB,
    DbOpt,
    amount_arg,
    currency_arg,
    member_arg,
    network_of,
    open_node,
    out,
    refusals,
)

MemberOpt = Annotated[str, typer.Option("--member")]
CurrencyOpt = Annotated[str, typer.Option("--currency")]
AmountOpt = Annotated[str, typer.Option("--amount", help="Decimal string in major units, e.g. 1000.50.")]
IdOpt = Annotated[str | None, typer.Option(
    "--id", help="Idempotency id of the movement: a retry with the same content prints the first answer again.")]
_OPTIONS = {"member": "--member", "currency": "--currency", "amount": "--amount", "id": "--id"}


def _move(member: str, currency: str, amount: str, db: str, *, withdraw: bool, fund_id: str | None) -> None:
    from setara.core.money import format_amount
    from setara.node.usecases import fund as fund_uc

    with open_node(db, write=True) as node:
        net = network_of(node)
        member_arg(net, member)
        units = currency_arg(net, currency)
        minor = amount_arg(units, amount)
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
