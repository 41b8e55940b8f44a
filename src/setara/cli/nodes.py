"""Member nodes: `setara node keygen`, `setara follow`, `setara checkpoint show|snapshot|verify|conflicts`
(GUIDE §3 "Member nodes"; docs/nodes.md)."""

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import orjson
import typer

__all__ = ["register"]

DEFAULT_DB = "./setara.db"
DbOpt = Annotated[str, typer.Option("--db", help="SQLite path or postgresql://… URL.")]
ReplicateOpt = Annotated[str | None, typer.Option(
    "--replicate", help="NATS servers, nats://H:P[,nats://H:P…] (or SETARA_REPLICATE).")]
KeyOpt = Annotated[str | None, typer.Option("--key", help="This node's Ed25519 key file (or SETARA_NODE_KEY).")]
StreamOpt = Annotated[str | None, typer.Option("--stream", help="JetStream stream (default setara, or SETARA_STREAM).")]


def _fail(message: str, code: int = 1) -> NoReturn:
    from setara.cli.common import one_line

    sys.stderr.write(f"error: {one_line(message)}\n")
    raise typer.Exit(code)


def _exit_of(e: Exception) -> int:
    """A missing database is the user's mistake (exit 2); any other failure the system's (1)."""
    from setara.cli.common import store_exit

    return store_exit(e)


def register(app: typer.Typer) -> None:
    node_app = typer.Typer(no_args_is_help=True, help="Node keys.")
    checkpoint_app = typer.Typer(no_args_is_help=True, help="Signed checkpoints: show, snapshot, verify, conflicts.")
    app.add_typer(node_app, name="node")
    app.add_typer(checkpoint_app, name="checkpoint")

    @node_app.command("keygen")
    def keygen(out: Annotated[Path, typer.Option("--out", help="Where to write the private key (mode 0600).")]
               ) -> None:
        """A new Ed25519 node key: the private key to FILE, the public key (base64) on stdout."""
        from setara.replication.keys import KeyFileExists
        from setara.replication.keys import keygen as make_key

        try:
            public = make_key(out)
        except KeyFileExists:
            _fail(f"{out} exists; refusing to overwrite a key", 2)
        except OSError as e:
            _fail(f"cannot write {out}: {e.strerror or e}", 2)
        sys.stdout.write(public + "\n")

    @app.command("follow")
    def follow_cmd(member: Annotated[str, typer.Option("--member", help="The member this node belongs to.")],
                   network: Annotated[Path, typer.Option("--network", help="The network TOML block 1 must hold.")],
                   db: DbOpt = DEFAULT_DB, replicate: ReplicateOpt = None, key: KeyOpt = None,
                   stream: StreamOpt = None,
                   once: Annotated[bool, typer.Option("--once", help="Catch up, sign, wait up to 30 s for a quorum, "
                                                                    "print the checkpoint, exit.")] = False,
                   snapshot: Annotated[Path | None, typer.Option(
                       "--snapshot", help="A new node starts from this snapshot (`setara checkpoint snapshot`) "
                                          "instead of block 1; --network is then the network as it stands "
                                          "there. Ignored once the node holds a log.")] = None) -> None:
        """A member's node: check, replay and co-sign the replicated log into its own store."""
        from setara.core.network import NetworkError, load_network
        from setara.node import SetaraError, StoreError
        from setara.node.follow import FollowError, FollowSettings, follow
        from setara.node.replicate import NotASequencer, settings_from

        try:
            net = load_network(network.read_text(encoding="utf-8"))
        except OSError as e:
            _fail(f"cannot read {network}: {e.strerror or e}", 2)
        except NetworkError as e:
            _fail(f"{network}: {e}", 2)
        try:
            rep = settings_from(replicate, key, stream)
        except NotASequencer as e:
            _fail(str(e).replace("the sequencer's node key", "this node's key"), 2)
        if rep is None:
            _fail("--replicate nats://H:P[,…] is required (or SETARA_REPLICATE)", 2)
        if not Path(rep.key_path).is_file():
            _fail(f"--key {rep.key_path}: no such key file (make one with `setara node keygen`)", 2)
        snapshot_data = None
        if snapshot is not None:
            from setara.node.catchup import SNAPSHOT_BYTES_MAX

            try:
                if snapshot.stat().st_size > SNAPSHOT_BYTES_MAX:
                    _fail(f"--snapshot {snapshot}: larger than {SNAPSHOT_BYTES_MAX} bytes", 2)
                snapshot_data = snapshot.read_bytes()
            except OSError as e:
                _fail(f"--snapshot {snapshot}: {e.strerror or e}", 2)
        settings = FollowSettings(db, member, rep, net, snapshot_data)

        def progress(seq: int, applied: int) -> None:
            if applied:
                sys.stderr.write(f"block {seq}: {applied} block(s) applied, checkpoint signed\n")

        try:
            doc = follow(settings, once=once, on_round=progress)
        except FollowError as e:
            _fail(str(e))
        except (SetaraError, StoreError) as e:
            _fail(str(e))
        except KeyboardInterrupt:
            raise typer.Exit(0) from None
        if once:
            if doc is None:
                _fail("the stream holds no block yet")
            sys.stdout.write(orjson.dumps(doc).decode() + "\n")

    @checkpoint_app.command("show")
    def checkpoint_show(db: DbOpt = DEFAULT_DB) -> None:
        """The latest final checkpoint this node holds (else its latest signed one), as JSON."""
        from setara.node import SetaraError, StoreError
        from setara.node.follow import show_checkpoint

        try:
            doc = show_checkpoint(db)
        except (SetaraError, StoreError) as e:
            _fail(str(e), _exit_of(e))
        if doc is None:
            _fail(f"{db} holds no checkpoint (run `setara follow`)")
        sys.stdout.write(doc.decode() + "\n")

    @checkpoint_app.command("snapshot")
    def checkpoint_snapshot(out: Annotated[Path, typer.Option("--out", help="Where to write the snapshot.")],
                            db: DbOpt = DEFAULT_DB) -> None:
        """The engine's state at this node's latest final checkpoint, with that checkpoint's
        signatures: a new member's node starts from it (`setara follow --snapshot FILE`)."""
        from setara.node import SetaraError, StoreError
        from setara.node.catchup import export_snapshot

        if out.exists():
            _fail(f"--out {out} exists; refusing to overwrite it", 2)
        try:
            data, seq = export_snapshot(db)
        except (SetaraError, StoreError) as e:
            _fail(str(e), _exit_of(e))
        try:
            with out.open("xb") as f:
                f.write(data)
        except OSError as e:
            _fail(f"cannot write {out}: {e.strerror or e}", 2)
        sys.stdout.write(f"snapshot of block {seq} written to {out} ({len(data)} bytes)\n")

    @checkpoint_app.command("verify")
    def checkpoint_verify(file: Annotated[Path, typer.Argument(help="A checkpoint JSON (as `checkpoint show`).")],
                          db: DbOpt = DEFAULT_DB) -> None:
        """Offline: exit 0 when at least the quorum of valid signatures of the node keys
        registered in this store's log agree on it; exit 1 naming the first problem."""
        from setara.node import Node, SetaraError, StoreError
        from setara.node.replicate import registry_of
        from setara.replication.checkpoint import verify_offline

        try:
            doc = file.read_bytes()
        except OSError as e:
            _fail(f"cannot read {file}: {e.strerror or e}", 2)
        try:
            with Node.open(db, write=False) as node:
                registry = registry_of(node.network)
                name = node.network.name
                problem = verify_offline(doc, registry, name)
                if problem is None:
                    from setara.replication.checkpoint import parse_signed_checkpoint

                    cp = parse_signed_checkpoint(doc).checkpoint
                    at = node.store.block_hash_at(cp.seq)
                    if at is not None and at[0].hex() != cp.block_hash:
                        problem = f"seq {cp.seq}: block hash differs from this store's block {cp.seq}"
        except (SetaraError, StoreError) as e:
            _fail(str(e), _exit_of(e))
        if problem is not None:
            _fail(f"checkpoint does not verify: {problem}")
        sys.stderr.write("checkpoint verified: a quorum of registered member nodes signed it\n")

    @checkpoint_app.command("conflicts")
    def checkpoint_conflicts(db: DbOpt = DEFAULT_DB) -> None:
        """Equivocation proofs this node holds, as JSON; exit 1 when there are any."""
        from setara.node import Node, SetaraError, StoreError

        try:
            with Node.open(db, write=False) as node:
                proofs = node.store.proofs()
        except (SetaraError, StoreError) as e:
            _fail(str(e), _exit_of(e))
        sys.stdout.write(orjson.dumps(proofs).decode() + "\n")
        if proofs:
            raise typer.Exit(1)
