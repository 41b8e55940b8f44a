"""The `setara` command: the Typer app, its command groups (one module each, thin shells over the
node's use cases and views), `--version`, and `main()`, which turns every failure into one line.

stdout carries only the command's data; progress, warnings and summaries go to stderr. Exit 0
when the command did its job (even if some input lines were REJECTED), 1 for a failure of the
system or of verification, 2 for a usage error or refused input.
"""

import os
import sys
from typing import Annotated

import typer

from setara.cli import bench, compliance, day, export, fx, money, network, payments, verify
from setara.cli.common import err, fail, out
from setara.node import SetaraError, StoreError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Setara: open settlement network for cross-border trade in local currencies.")


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            out(f"setara {version('setara')}\n")
        except PackageNotFoundError:
            fail("the setara package is not installed (no version metadata)")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                               callback=_show_version)] = False) -> None:
    """Setara: open settlement network for cross-border trade in local currencies."""


for _group in (network, money, payments, day, export, verify, fx, compliance, bench):
    _group.register(app)


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

# Every command that writes takes --replicate/--key/--stream (GUIDE §3, docs/nodes.md).
WRITERS = frozenset({"init", "network_apply", "member_suspend", "member_resume", "fund", "withdraw", "submit",
                     "cancel", "day_close", "day_open", "cycle_close", "lsm_run", "fx_rate", "fx_quote",
                     "lists_import", "lists_update", "holds_release", "holds_reject"})


def _give_writers_replication(t: typer.Typer) -> None:
    from setara.cli.common import replicating

    for info in t.registered_commands:
        if info.callback is not None and info.callback.__name__ in WRITERS:
            info.callback = replicating(info.callback)
    for group in t.registered_groups:
        if group.typer_instance is not None:
            _give_writers_replication(group.typer_instance)


_give_writers_replication(app)


def _one_line(message: str) -> str:
    from setara.cli.common import one_line

    return one_line(" ".join(message.split()))


def main() -> None:
    # standalone_mode=False: usage errors come back here, to be said in one line like every other
    # refusal (Click would print a usage block and a boxed message).
    try:
        rc = app(standalone_mode=False, prog_name="setara")
    except typer.TyperException as e:  # Typer's (vendored Click's) usage errors
        code = int(getattr(e, "exit_code", 2))
        if type(e).__name__ != "NoArgsIsHelpError":  # otherwise the help is already printed
            ctx = getattr(e, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            err.print(f"error: {_one_line(e.format_message())}{where}")
        sys.exit(code)
    except typer.Abort:
        err.print("interrupted")
        sys.exit(130)
    except (SetaraError, StoreError) as e:
        err.print(f"error: {_one_line(str(e))}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("SETARA_DEBUG"):
            raise
        err.print(f"internal error: {type(e).__name__}: {_one_line(str(e))} (set SETARA_DEBUG=1 for a traceback)")
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
