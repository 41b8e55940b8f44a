"""`setara verify`, `setara db upgrade|copy`."""

import time
from typing import Annotated

import typer

from setara.cli.common import DEFAULT_DB, DbOpt, check_db, fail, out, say, store_at, store_exit
from setara.node import NoDatabaseError, SetaraError, StoreError, open_store

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")


def verify(db: DbOpt = DEFAULT_DB) -> None:
    """Replay the log from scratch, check the hash chain and every invariant, print the state hash."""
    from setara.node.verify import VerificationError, verify_store

    started = time.perf_counter()
    store = store_at(db)
    try:
        report = verify_store(store)
    except StoreError as e:
        fail(str(e), store_exit(e))
    except VerificationError as e:
        fail(f"verification failed: {e}")
    finally:
        store.close()
    out(report.state_hash + "\n")
    say(f"verified {report.blocks} blocks, {report.commands} commands, {report.postings} postings, "
        f"{report.payments} payments in {time.perf_counter() - started:.2f} s: hash chains intact, "
        "money conserved, floors held, every payment settled at most once")


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = DEFAULT_DB) -> None:
    """Migrate the database schema to this version of setara."""
    from setara.node import LOCK_TIMEOUT_S

    store = store_at(db, schema=False)  # an older schema is what upgrade is for
    try:
        with store.writer(LOCK_TIMEOUT_S):  # no writer may run while the schema changes
            done = store.upgrade()
    except StoreError as e:
        fail(str(e), store_exit(e))
    finally:
        store.close()
    say("\n".join(done) if done else "schema already current")


@db_app.command("copy")
def db_copy(source: Annotated[str, typer.Option("--from", help="The store to copy (path or URL).")],
            target: Annotated[str, typer.Option("--to", help="An empty store (path or URL).")]) -> None:
    """Copy a network's block log into an empty store and rebuild it by replay (backup restore, or a
    move between SQLite and PostgreSQL); prints the verified state hash."""
    from setara.node.usecases import copy_network
    from setara.node.verify import VerificationError

    check_db(source)
    check_db(target)
    store_at(source).close()  # a missing source is refused (exit 2) before the target is touched
    try:
        existing = open_store(target)
    except NoDatabaseError:
        pass  # the usual case: the copy brings it into being
    except StoreError as e:
        fail(str(e), store_exit(e))
    else:
        try:
            if existing.exists():
                fail(f"--to: {target} already holds a network", 2)
        finally:
            existing.close()
    try:
        n, state_hash = copy_network(source, target)
    except (StoreError, SetaraError, VerificationError) as e:
        fail(str(e), store_exit(e))
    out(state_hash + "\n")
    say(f"copied {n} blocks to {target}; replayed and verified")


@db_app.command("party-key")
def db_party_key(out: Annotated[str, typer.Option("--out", help="A new file for the key (mode 0600).")],
                 db: DbOpt = DEFAULT_DB) -> None:
    """Export the operator's party-data key, for a standby sequencer (`serve --standby
    --party-key FILE`): it keeps the content fingerprints and party digests the primary's."""
    from setara.node.standby import export_party_key

    check_db(db)
    store_at(db).close()  # a missing database is refused (exit 2)
    try:
        export_party_key(db, out)
    except OSError as e:
        fail(f"--out {out}: {e.strerror or e}", 2)
    except SetaraError as e:
        fail(str(e), 2)
    say(f"party-data key written to {out}; keep it as the operator's secret")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.add_typer(db_app, name="db")
