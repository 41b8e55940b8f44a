"""CLI commands of the API: `setara serve` and `setara keys issue|revoke|list`.

`register(app)` adds them to the main `setara` Typer app. stdout carries only data (the new key,
the key list); messages go to stderr as one line, without a traceback.
"""


import signal
import sys
from types import FrameType
from typing import Annotated, Any, NoReturn

import orjson
import typer

__all__ = ["register"]

DEFAULT_DB = "./setara.db"
SHUTDOWN_GRACE_S = 10  # on SIGTERM, requests still running after this long are cancelled
# uvicorn's levels, checked before the server starts (it would fail only once serving).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
DbOpt = Annotated[str, typer.Option("--db", help="SQLite path or postgresql://… URL.")]


def _fail(message: str, code: int = 1) -> NoReturn:
    from setara.cli.common import one_line

    sys.stderr.write(f"error: {one_line(message)}\n")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `serve` and the `keys` sub-app to `app`."""
    keys_app = typer.Typer(no_args_is_help=True, help="Issue, revoke and list API keys.")
    app.add_typer(keys_app, name="keys")

    @app.command("serve")
    def serve(db: DbOpt = DEFAULT_DB,
              host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
              port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
              log_level: Annotated[str, typer.Option("--log-level")] = "warning",
              replicate: Annotated[str | None, typer.Option(
                  "--replicate", help="NATS servers nats://H:P[,…] (or SETARA_REPLICATE).")] = None,
              key: Annotated[str | None, typer.Option("--key", help="Sequencer node key (or SETARA_NODE_KEY).")] = None,
              stream: Annotated[str | None, typer.Option("--stream", help="Stream (default setara).")] = None,
              standby: Annotated[bool, typer.Option("--standby", help="Replicate the stream and take over when "
                                                     "the active sequencer's lease lapses.")] = False,
              network: Annotated[str | None, typer.Option("--network", help="A standby's network TOML (block 1 "
                                                           "must hold it) when its store is new.")] = None,
              party_key: Annotated[str | None, typer.Option(
                  "--party-key", help="A standby's copy of the operator's party-data key (`setara db "
                                      "party-key`).")] = None) -> None:
        """Serve the HTTP API (/v1/…, OpenAPI at /docs) and the operator dashboard at /."""
        import uvicorn

        from setara.node.replicate import NotASequencer, settings_from

        try:
            replication = settings_from(replicate, key, stream)
        except NotASequencer as e:
            _fail(str(e), 2)
        if standby:
            if replication is None:
                _fail("--standby needs --replicate and --key (a registered sequencer's)", 2)
            if party_key is None:
                _fail("--standby needs --party-key FILE, the operator's party-data key (`setara db party-key` "
                      "on the primary's store): without it a retried payment would not be recognised", 2)
            _standby(db, replication, network, party_key)
        elif party_key is not None:
            _fail("--party-key is for a standby (--standby)", 2)

        # SIGTERM is how a service manager asks for a clean stop: exit 0. While serving, uvicorn
        # takes the signal, drains and closes the writer, then re-raises it to this handler.
        signal.signal(signal.SIGTERM, _terminated)
        from setara.api.app import create_app
        from setara.node import NoDatabaseError, SetaraError, StoreError

        if not 0 < port < 65536:
            _fail("--port must be between 1 and 65535", 2)
        if log_level not in LOG_LEVELS:
            _fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}", 2)
        _check_bind(host, port)
        try:
            api = create_app(db, replication=replication)
        except NotASequencer as e:
            _fail(str(e), 2)
        except (StoreError, SetaraError) as e:
            _fail(str(e), 2 if isinstance(e, NoDatabaseError) else 1)
        if not api.state.api.screening_loaded:
            sys.stderr.write("warning: no sanctions list is loaded: screening finds no hit "
                             "(load one with `setara lists import`; the server picks it up)\n")
        from setara.node import tune_gc

        tune_gc()
        # Hand the interpreter over every 1 ms (default 5 ms): a thread building a statement
        # then delays the event loop and the writer, which each hold it briefly, by at most that.
        sys.setswitchinterval(0.001)
        sys.stderr.write(f"setara: serving {db} on http://{host}:{port} (dashboard /, OpenAPI /docs)\n")
        config = uvicorn.Config(api, host=host, port=port, log_level=log_level, access_log=False,
                                timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
        try:
            uvicorn.Server(config).run()
        except OSError as e:
            _fail(f"cannot listen on {host}:{port}: {e}")
        sys.stderr.write("setara: stopped\n")

    @keys_app.command("issue")
    def keys_issue(member: Annotated[str | None, typer.Option("--member", help="Member id the key acts for.")] = None,
                   operator: Annotated[bool, typer.Option("--operator", help="An operator key.")] = False,
                   role: Annotated[str | None, typer.Option("--role", help="compliance or auditor.")] = None,
                   db: DbOpt = DEFAULT_DB) -> None:
        """Create an API key and print it alone on stdout (it is shown only this once)."""
        from setara.api.keys import KeyError_, issue_key

        chosen = [x for x in (member is not None, operator, role is not None) if x]
        if len(chosen) != 1:
            _fail("give exactly one of --member M, --operator or --role compliance|auditor", 2)
        if role is not None and role not in ("compliance", "auditor"):
            _fail("--role must be compliance or auditor", 2)
        the_role = "member" if member is not None else ("operator" if operator else str(role))
        store = _open_store(db)
        try:
            if member is not None:
                _check_member(db, member)
            key_id, key = issue_key(store, the_role, member)
        except KeyError_ as e:
            _fail(str(e), 2)
        finally:
            store.close()
        sys.stdout.write(key + "\n")
        sys.stderr.write(f"issued {the_role} key {key_id}{' for ' + member if member else ''}; "
                         "store it now: it cannot be shown again\n")

    @keys_app.command("revoke")
    def keys_revoke(key_id: Annotated[str, typer.Argument(metavar="KEY_ID")], db: DbOpt = DEFAULT_DB) -> None:
        """Revoke a key by its id (the part before the dot); it gets 401 from then on."""
        from setara.api.keys import KeyError_, revoke_key

        store = _open_store(db)
        try:
            changed = revoke_key(store, key_id.split(".", 1)[0])
        except KeyError_ as e:
            _fail(str(e), 2)
        finally:
            store.close()
        sys.stderr.write(f"key {key_id} {'revoked' if changed else 'was already revoked'}\n")

    @keys_app.command("list")
    def keys_list(db: DbOpt = DEFAULT_DB) -> None:
        """List keys as JSON Lines (ids, roles, members, times; never the keys)."""
        from setara.api.keys import list_keys

        store = _open_store(db)
        try:
            for k in list_keys(store):
                sys.stdout.write(orjson.dumps(k).decode() + "\n")
        finally:
            store.close()


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _check_bind(host: str, port: int) -> None:
    """Fail in one line, before opening the store, when the address cannot be listened on."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        _fail(f"--host {host}: {e}", 2)
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            _fail(f"cannot listen on {host}:{port}: {e.strerror or e}")


def _store_exit(e: Exception) -> int:
    """A missing database is the user's mistake (exit 2); any other store failure the system's (1)."""
    from setara.node import NoDatabaseError

    return 2 if isinstance(e, NoDatabaseError) else 1


def _open_store(db: str):  # type: ignore[no-untyped-def]
    from setara.node import StoreError, open_store

    try:
        store = open_store(db)
        store.check_schema()
    except StoreError as e:
        _fail(str(e), _store_exit(e))
    return store


def _check_member(db: str, member: str) -> None:
    from setara.node import Node, StoreError

    try:
        node = Node.open(db, write=False)
    except StoreError as e:
        _fail(str(e), _store_exit(e))
    with node:
        if member not in node.network.members:
            _fail(f"--member: {member} is not a member of the network", 2)


def _standby(db: str, replication: Any, network_path: str | None, party_key_path: str) -> None:
    """Wait as a standby sequencer until the active one's lease lapses; then the store is ours."""
    from pathlib import Path

    from setara.core.network import NetworkError, load_network
    from setara.node import NoDatabaseError, Node, SetaraError, StoreError
    from setara.node.standby import read_party_key, wait_to_take_over

    try:
        party_key = read_party_key(party_key_path)
    except OSError as e:
        _fail(f"--party-key {party_key_path}: {e.strerror or e}", 2)
    except ValueError as e:
        _fail(f"--party-key {party_key_path}: {e}", 2)

    try:
        with Node.open(db, write=False) as node:
            net = node.network
    except NoDatabaseError:
        if network_path is None:
            _fail(f"no store at {db}: a new standby needs --network NET.toml", 2)
        try:
            net = load_network(Path(network_path).read_text(encoding="utf-8"))
        except (OSError, NetworkError) as e:
            _fail(f"--network {network_path}: {e}", 2)
    except (StoreError, SetaraError) as e:
        _fail(str(e))
    sys.stderr.write(f"setara: standby on stream {replication.stream}, replicating into {db}\n")
    try:
        wait_to_take_over(db, replication, net, party_key=party_key)
    except (StoreError, SetaraError) as e:
        _fail(str(e))
    sys.stderr.write("setara: the sequencer's lease lapsed: taking over\n")
