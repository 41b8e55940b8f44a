"""What every command group shares: opening the node, failing with one line and the right exit
code, argument checks, and output helpers.

Exit codes (docs/usage.md): 2 when the input is refused (a usage error, or a use case's
`Refused`), 1 when the system fails (SetaraError, StoreError). Messages never go through Rich
markup: user data such as `[bold]x[/bold]` or `[[add_member]]` is printed as written.
"""

import contextlib
import contextvars
import csv
import functools
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, NoReturn
from urllib.parse import unquote, urlsplit

import orjson
import typer
from rich.console import Console
from rich.text import Text

from setara.core.money import AmountError, parse_amount
from setara.core.network import Network
from setara.node import NoDatabaseError, Node, SetaraError, Store, StoreError, open_store

# markup, emoji and highlighting off: a message is printed exactly as written.
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)

DbOpt = Annotated[str, typer.Option("--db", help="SQLite path or postgresql://… URL.")]
DEFAULT_DB = "./setara.db"
FormatOpt = Annotated[str, typer.Option("--format", help="csv or jsonl")]

# The store's own rule for `?schema=NAME` (setara.store.postgres), checked here so that a typo in
# the URL is a usage error (exit 2) rather than a failure of the system.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


# Control characters in user data (an id with a newline, an escape sequence) are shown escaped,
# so a refusal stays one line and cannot move the terminal's cursor or forge another line.
_CONTROLS = ({c: f"\\x{c:02x}" for c in (*range(32), *range(127, 160))} | {0x2028: "\\u2028", 0x2029: "\\u2029"}
             | {10: "\\n", 13: "\\r", 9: "\\t"})


def one_line(message: str) -> str:
    return message.translate(_CONTROLS)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(Text.assemble(("error:", "red"), " ", one_line(message)))
    raise typer.Exit(code)


def store_exit(e: Exception) -> int:
    """A missing database is the user's mistake (exit 2); any other store failure the system's (1)."""
    return 2 if isinstance(e, NoDatabaseError) else 1


def store_at(db: str, *, schema: bool = True) -> Store:
    """The store at `db`, for commands that read or maintain it below the node: a malformed URL or
    a missing database is a usage error (exit 2), a failure to open it the system's (exit 1); with
    `schema`, a store of another schema version is refused too."""
    check_db(db)
    try:
        store = open_store(db)
    except StoreError as e:
        fail(str(e), store_exit(e))
    if schema:
        try:
            store.check_schema()
        except StoreError as e:
            store.close()
            fail(str(e), store_exit(e))
    return store


def warn(message: str) -> None:
    err.print(Text.assemble(("warning:", "yellow"), " ", message))


def say(message: str) -> None:
    """A summary or progress line, to stderr."""
    err.print(Text(message))


def out(text: str) -> None:
    sys.stdout.write(text)


def out_json(obj: object, *, indent: bool = False) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 if indent else 0).decode() + "\n")


@contextlib.contextmanager
def refusals(options: Mapping[str, str] | None = None) -> Iterator[None]:
    """A use case's refusal exits 2 (naming the option when the field maps to one); a failure of
    the system exits 1."""
    from setara.node.usecases import Refused

    try:
        yield
    except Refused as e:
        option = (options or {}).get(e.field or "")
        fail(f"{option}: {e}" if option else str(e), 2)
    except (SetaraError, StoreError) as e:
        fail(str(e), store_exit(e))


def check_db(db: str) -> None:
    """Refuse a database URL whose form is wrong before anything connects."""
    if not db.startswith(("postgresql://", "postgres://")):
        return
    query = urlsplit(db).query
    for item in query.split("&") if query else []:
        key, _, value = item.partition("=")
        if unquote(key) == "schema" and not _SCHEMA_NAME.fullmatch(unquote(value)):
            fail(f"--db: invalid schema name {unquote(value)!r} in the database URL: use letters, digits and _ "
                 "(at most 63, not starting with a digit)", 2)


def open_node(db: str, *, write: bool, screens: bool = False) -> Node:
    """Open the network. Only commands that screen (`screens`) load the lists, and only they warn
    when none is loaded. A writer replicates its log when asked (`--replicate` or SETARA_REPLICATE)."""
    check_db(db)
    try:
        node = Node.open(db, write=write)
    except NoDatabaseError as e:
        fail(str(e), 2)
    except (StoreError, SetaraError) as e:
        fail(str(e), store_exit(e))
    if screens and not attach_screening(node):
        warn(NO_LIST_WARNING)
    if write:
        replicate(node)
    return node


# --replicate/--key/--stream of the command being run (see `replicating`); None: from the environment
_REPLICATION: contextvars.ContextVar[tuple[str | None, str | None, str | None]] = contextvars.ContextVar(
    "setara_replication", default=(None, None, None))

ReplicateOpt = Annotated[str | None, typer.Option(
    "--replicate", help="Replicate the log to these NATS servers, nats://H:P[,…] (or SETARA_REPLICATE).")]
KeyOpt = Annotated[str | None, typer.Option("--key", help="The sequencer's node key file (or SETARA_NODE_KEY).")]
StreamOpt = Annotated[str | None, typer.Option("--stream", help="JetStream stream (default setara, or SETARA_STREAM).")]


def replicating(fn: Callable[..., None]) -> Callable[..., None]:
    """Give a command that writes the options --replicate, --key and --stream (GUIDE §3)."""
    sig = inspect.signature(fn)
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann)
             for name, ann in (("replicate", ReplicateOpt), ("key", KeyOpt), ("stream", StreamOpt))]

    @functools.wraps(fn)
    def wrapper(*args: object, replicate: str | None = None, key: str | None = None, stream: str | None = None,
                **kwargs: object) -> None:
        _REPLICATION.set((replicate, key, stream))
        fn(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), *extra])  # type: ignore[attr-defined]
    return wrapper


def replicate(node: Node) -> None:
    """Replicate this writer's blocks from now on, when asked; a key that may not sign blocks is a
    usage error (exit 2), an unreachable or conflicting stream a failure (exit 1)."""
    replicate_opt = _REPLICATION.get()
    if replicate_opt[0] is None and not os.environ.get("SETARA_REPLICATE"):
        return  # not replicated: don't load the NATS client
    from setara.node.replicate import NotASequencer, settings_from
    from setara.node.usecases import start_replication

    try:
        settings = settings_from(*replicate_opt)
        if settings is not None:
            start_replication(node, settings)
    except NotASequencer as e:
        node.close()
        fail(str(e), 2)
    except (SetaraError, StoreError) as e:
        node.close()
        fail(str(e))


NO_LIST_WARNING = ("no sanctions list is loaded: screening finds no hit (load one with `setara lists import`); "
                   "country measures still apply")


def attach_screening(node: Node) -> bool:
    """Screen with the lists in the store (on a writable node); returns whether any is loaded."""
    from setara.node.screening import PaymentScreening

    # Cheap without lists: the matcher (ICU, rapidfuzz, numpy) loads only when a name is screened.
    screening = PaymentScreening.from_store(node.store)
    if node.writable:
        node.screening = screening
    return bool(screening.loaded)


def network_of(node: Node) -> Network:
    try:
        return node.network
    except SetaraError as e:
        fail(str(e))


def member_arg(net: Network, member: str, option: str = "--member", *, bic_ok: bool = False) -> str:
    """A member id (or, with `bic_ok`, its BIC); an unknown one is refused."""
    found = member if member in net.members else (net.member_by_bic(member) if bic_ok else None)
    if found is None:
        fail(f"{option}: unknown member {member}", 2)
    return found


def currency_arg(net: Network, currency: str, option: str = "--currency") -> int:
    """A currency of the network; returns its minor units."""
    units = net.minor_units(currency)
    if units is None:
        fail(f"{option}: currency {currency} is not in the network", 2)
    return units


def amount_arg(units: int, text: str, option: str = "--amount") -> int:
    """A positive decimal string in major units -> minor units."""
    try:
        value = parse_amount(text, units)
    except AmountError as e:
        fail(f"{option}: {e}", 2)
    if value <= 0:
        fail(f"{option}: must be greater than zero", 2)
    return value


def check_format(fmt: str) -> None:
    if fmt not in ("csv", "jsonl"):
        fail("--format must be csv or jsonl", 2)


def check_out_dir(path: Path, option: str) -> None:
    """An output directory must be one, or be creatable: checked before anything is done, so a
    bad path never loses what the command would have written."""
    if path.exists():
        if not path.is_dir():
            fail(f"{option}: {path} exists and is not a directory", 2)
        probe = path
    else:
        probe = next((p for p in path.parents if p.exists()), Path("."))
        if not probe.is_dir():
            fail(f"{option}: cannot create {path}: {probe} is not a directory", 2)
    import os

    if not os.access(probe, os.W_OK | os.X_OK):
        fail(f"{option}: {probe} is not writable", 2)


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {e}", 2)


def emit(rows: Iterable[Mapping[str, object]], fmt: str, columns: list[str]) -> None:
    """Rows to stdout as CSV (header first; None as empty) or JSON Lines."""
    stdout = sys.stdout
    if fmt == "jsonl":
        for r in rows:
            stdout.write(orjson.dumps(dict(r)).decode() + "\n")
        return
    w = csv.writer(stdout, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r[c] is None else r[c] for c in columns])
