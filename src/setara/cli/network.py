"""`setara network example|show|apply`, `setara init`, `setara member suspend|resume`."""

from pathlib import Path
from typing import Annotated

import typer

from setara.cli.common import (
    DEFAULT_DB,
    NO_LIST_WARNING,
    DbOpt,
    attach_screening,
    check_db,
    fail,
    open_node,
    out,
    out_json,
    read_text,
    refusals,
    say,
    store_exit,
    warn,
)

network_app = typer.Typer(no_args_is_help=True, help="Show or change the network configuration.")
member_app = typer.Typer(no_args_is_help=True, help="Suspend or resume a member.")


@network_app.command("example")
def network_example() -> None:
    """Print a commented example network TOML."""
    from setara.core.network import example_toml

    out(example_toml())


@network_app.command("show")
def network_show(db: DbOpt = DEFAULT_DB) -> None:
    """Print the network (currencies, members) as JSON."""
    with open_node(db, write=False) as node, refusals():
        out_json(node.network.to_json(), indent=True)


@network_app.command("apply")
def network_apply(change: Annotated[Path, typer.Argument(help="Change TOML: [[add_member]], [[credit_line]].")],
                  db: DbOpt = DEFAULT_DB) -> None:
    """Apply a network change (add members, change credit lines) as a command in the log."""
    from setara.node.usecases import apply_network_change

    text = read_text(change)
    with open_node(db, write=True) as node, refusals():
        loaded = attach_screening(node)
        report = apply_network_change(node, text)
        if report["added"] and not loaded:  # said once the change is valid, so a refusal stays one line
            warn(NO_LIST_WARNING)
        say(f"applied: {len(report['added'])} member(s) added, {report['credit_lines']} credit line(s) changed"
            + (f"; screened the new members: {report['frozen']} frozen" if report["added"] else ""))


def init(network: Annotated[Path, typer.Option("--network", help="Network TOML (see `setara network example`).")],
         db: DbOpt = DEFAULT_DB) -> None:
    """Create a network: currencies, members, accounts, opening balances and credit lines."""
    from setara.core.network import NetworkError, load_network
    from setara.node import NoDatabaseError, Node, SetaraError, StoreError, open_store
    from setara.ports import now_ms

    try:
        net = load_network(read_text(network))
    except NetworkError as e:
        fail(str(e), 2)
    check_db(db)
    try:
        store = open_store(db)
        try:
            exists = store.exists()
        finally:
            store.close()
    except NoDatabaseError:
        exists = False  # the usual case: init brings it into being
    except StoreError as e:
        fail(str(e), store_exit(e))
    if exists:  # refused before anything is written: the database keeps its network
        fail(f"--db: {db} already holds a network", 2)
    try:
        node = Node.create(db, net, now_ms())
    except (StoreError, SetaraError) as e:
        fail(str(e), store_exit(e))
    with node:
        from setara.cli.common import replicate

        replicate(node)  # with --replicate, block 1 goes to the stream at once
        say(f"initialised {db}: {len(net.currencies)} currencies, {len(net.members)} members, "
            f"{len(net.accounts)} accounts")


def _suspend(member: str, suspended: bool, db: str) -> None:
    from setara.node.usecases import set_suspended

    with open_node(db, write=True) as node, refusals():
        set_suspended(node, member, suspended)
        say(f"{member} {'suspended' if suspended else 'resumed'}")


@member_app.command("suspend")
def member_suspend(member: str, db: DbOpt = DEFAULT_DB) -> None:
    """Suspend a member: its new payments are rejected."""
    _suspend(member, True, db)


@member_app.command("resume")
def member_resume(member: str, db: DbOpt = DEFAULT_DB) -> None:
    """Resume a suspended member."""
    _suspend(member, False, db)


def register(app: typer.Typer) -> None:
    app.add_typer(network_app, name="network")
    app.add_typer(member_app, name="member")
    app.command("init")(init)
