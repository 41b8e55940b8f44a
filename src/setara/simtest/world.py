"""One seeded run of the whole network: a writer (the sequencer), with `failover` a standby
sequencer, four member nodes, a client.

What runs is the real code: `Node` (engine, store, submit path, use cases), `Replicator` (its
lease renewed on the simulated clock), the standby (`Standby`: replicate, watch the lease, take
over), the follower (`_Follower`: catch up, verify, replay, sign through the SigningGuard,
gather, check for equivocation) and the checkpoint code, each over its own SQLite store in a
temp directory.
What is simulated: the stream (`SimCluster`/`SimLog`), the clock (a counter that only the run
moves), the network between processes, process crashes and the disk's behaviour on a crash.
Everything random comes from one `random.Random(seed)`, so a seed replays exactly.

A step: the client and the operator act on the writer (a payment batch that also resubmits
everything unanswered, an FX quote, a hold or a review, a cycle close, a day close, a
suspension, a network change), faults are drawn, each member node may run one round, and every
invariant is checked. After the fault phase comes a quiet phase (faults healed, crashed
processes restarted); liveness is checked against a stated bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from setara.core import HELD, QUEUED, SETTLED, EpochStart, Hold
from setara.core.network import Network, load_network
from setara.node import usecases
from setara.node.follow import FollowError, FollowSettings, _Follower, _open_replica
from setara.node.node import Node, SetaraError
from setara.node.replicate import ReplicationSettings, Replicator, registry_of
from setara.node.standby import Standby
from setara.replication.checkpoint import Checkpoint, SignedCheckpoint, is_final, merge, sign_checkpoint
from setara.replication.header import BlockMessage as BlockMessageT
from setara.replication.header import build_block_message
from setara.replication.jetstream import ReplicationError
from setara.replication.keys import public_key_b64, write_private_key
from setara.simtest.stream import SimCluster, SimLog
from setara.store import StoreError

__all__ = ["FAULTS", "LIVENESS_STEPS", "Result", "liveness_bound", "run_seed"]

FAULTS = ("crash", "lost-write", "partition", "replica", "loss", "dup", "delay", "reorder", "corrupt",
          "byzantine-sequencer", "lying-follower", "failover")
FAULT_STEPS = 40  # steps with faults drawn
LIVENESS_STEPS = 4  # quiet steps within which everything submitted must be answered and final
# The simulated sequencers' lease: renewed every third of it on the simulated clock. With a
# standby, the quiet phase first lets this much simulated time pass (a lease held by a stopped
# sequencer lapses), then LIVENESS_STEPS steps.
LEASE_TTL_MS = 4_000
QUIET_STEPS_MAX = 50  # bounds the wait for LEASE_TTL_MS (steps move the clock by 1 ms at least)
STOP_STEPS = (2, 8)  # a sequencer stopped on purpose (`failover`) stays down this many steps
PARTITION_STEPS_MAX = 6  # a partition, or a replica down, heals within this many steps
STEP_MS_MAX = 2_000  # simulated time per step: 1 ms .. this
MEMBERS = ("BANK_ID1", "BANK_MY1", "BANK_TH1", "FX_MERDEKA")
NODE_OF = {m: f"node-{m.lower().replace('_', '-')}" for m in MEMBERS}
SEQUENCER = "seq-1"  # the first active sequencer
STANDBY = "seq-2"  # the standby sequencer (with `failover`)
STREAM = "sim"
# What the writer's refusals say when another sequencer holds the lease or has written (fenced).
FENCED = ("holds the lease", "took the lease first", "another writer has written", "another history",
          "did not publish", "holds another block", "the stream ends at block", "lost the sequencer lease")

NETWORK_TOML = """
name = "simtest"
operator_bic = "SETASGSG"

[[currencies]]
code = "IDR"
minor_units = 2
agent = "CB_ID"
agent_bic = "CBIDIDJA"
settlement = "rtgs"

[[currencies]]
code = "MYR"
minor_units = 2
agent = "CB_MY"
agent_bic = "CBMYMYKL"
settlement = "rtgs"

[[currencies]]
code = "THB"
minor_units = 2
agent = "CB_TH"
agent_bic = "CBTHTHBK"
settlement = "cycles"

[[members]]
id = "BANK_ID1"
name = "Bank Nusantara Niaga"
bic = "NUSAIDJA"
country = "ID"
opening = { IDR = "50000.00", MYR = "500.00", THB = "2000.00" }
credit_lines = { IDR = "10000.00" }
net_debit_caps = { THB = "3000.00" }

[[members]]
id = "BANK_MY1"
name = "Selat Commercial Bank Berhad"
bic = "SELAMYKL"
country = "MY"
opening = { IDR = "20000.00", MYR = "800.00", THB = "2000.00" }
credit_lines = { MYR = "200.00" }

[[members]]
id = "BANK_TH1"
name = "Chao Phraya Commercial Bank"
bic = "CHAOTHBK"
country = "TH"
opening = { IDR = "20000.00", MYR = "300.00", THB = "5000.00" }

[[members]]
id = "FX_MERDEKA"
name = "Merdeka Global Markets"
bic = "MERDIDJA"
country = "ID"
roles = ["member", "fx_provider"]
opening = { IDR = "90000.00", MYR = "2000.00", THB = "9000.00" }
"""

NAMES = ("PT Sinar Jaya Abadi", "Maju Bersama Trading Sdn Bhd", "Siam Rice Export Co Ltd", "Mekong Logistics",
         "Nusantara Kopi Ekspor", "Selatan Timber Sdn Bhd")


class SimCrash(BaseException):
    """The simulated process dies here. A BaseException, so that no `except Exception` in the
    node code can swallow it: a real crash cannot be caught either."""


@dataclass
class Violation(Exception):
    step: int
    invariant: str
    detail: str


@dataclass
class Result:
    seed: int
    ok: bool
    steps: int
    violation: Violation | None = None
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class _Payment:
    line: bytes
    ack: str | None = None  # the status first acknowledged
    settled: bool = False


class _Disk:
    """Crash points on one process's store: `crash_in` operations from now the process dies; with
    `lost`, the store loses the write that was in flight (it never reached the platter)."""

    def __init__(self, world: World, who: str, path: Path) -> None:
        self.world = world
        self.who = who
        self.path = path  # the store's file (a sequencer's changes when its store is rebuilt)
        self.crash_in: int | None = None
        self.lost = False

    def tick(self) -> None:
        if self.crash_in is None:
            return
        self.crash_in -= 1
        if self.crash_in <= 0:
            self.crash_in = None
            self.world.stats["crashes"] += 1
            raise SimCrash(self.who)

    def wrap(self, node: Node) -> None:
        store = node.store
        real_append = store.append
        path = self.path

        def append(block: Any, balances: Any, snapshot: Any) -> None:
            if self.crash_in == 1 and self.lost:
                # Crash in the middle of this write: what was durable before it is all that survives.
                keep = sqlite3.connect(":memory:", check_same_thread=False)
                store._db.backup(keep)  # type: ignore[attr-defined]
                real_append(block, balances, snapshot)
                self.world.lost_images[self.who] = (path, keep)
                self.world.stats["lost_writes"] += 1
            else:
                self.tick()
                real_append(block, balances, snapshot)
                return
            self.crash_in = None
            self.lost = False
            raise SimCrash(self.who)

        store.append = append  # type: ignore[method-assign]


class _CrashingLog(SimLog):
    """The stream as seen by a process whose next operations may be its last."""

    def __init__(self, cluster: SimCluster, client: str, step: Callable[[], int], disk: _Disk) -> None:
        super().__init__(cluster, client, step)
        self.disk = disk

    def publish_block(self, msg: Any, *, timeout_s: float | None = None) -> int:
        self.disk.tick()
        seq = super().publish_block(msg, timeout_s=timeout_s)
        self.disk.tick()
        return seq

    def publish_checkpoint(self, scp: SignedCheckpoint) -> int:
        self.disk.tick()
        return super().publish_checkpoint(scp)

    def publish_header(self, node: str, header: Any, signature: bytes) -> int:
        self.disk.tick()
        return super().publish_header(node, header, signature)


@dataclass
class _Host:
    """A sequencer's machine: it runs the writer (`node`) or a standby (`standby`), or nothing."""

    name: str  # its registered node name, and its client name on the stream
    key_path: Path
    disk: _Disk
    role: str  # what its store is: "writer" or "standby" (a standby's replica)
    stores: int = 1  # a fenced sequencer's store is set aside and a new replica made: one more
    node: Node | None = None
    standby: Standby | None = None
    down_until: int = 0  # stopped on purpose until this step
    paused_until: int = 0  # frozen (a long pause: no renewal, no work) until this step
    next_renew_ms: int = 0  # the lease renewer's next tick, on the simulated clock
    epoch: int = 0  # the epoch its writer opened with

    @property
    def db(self) -> Path:
        return self.disk.path

    @property
    def running(self) -> bool:
        return self.node is not None or self.standby is not None


@dataclass
class _Member:
    member: str
    name: str
    key_path: Path
    db: Path
    disk: _Disk
    follower: _Follower | None = None
    stopped: str | None = None  # why the node stopped for good (by design), e.g. an equivocation proof
    deceived_from: int | None = None  # a Byzantine sequencer fed it another block at this seq
    liar: bool = False
    corrupt_pending: bool = False
    rounds: int = 0
    last_exit: str = ""


class World:
    def __init__(self, seed: int, faults: set[str], workdir: Path, steps: int = FAULT_STEPS) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.party_key = hashlib.sha256(b"setara simtest party key %d" % seed).digest()  # not drawn: rng unchanged
        self.faults = faults
        self.dir = workdir
        self.fault_steps = steps
        self.step = 0
        self.now_ms = 1_700_000_000_000
        self.stats: dict[str, int] = {k: 0 for k in (
            "blocks", "payments", "acks", "crashes", "lost_writes", "partitions", "corruptions_detected",
            "byzantine_blocks", "lies", "proofs", "final_seq", "forged_rejected", "dedup", "stops", "pauses",
            "failovers", "epochs", "fenced_writes", "set_aside")}
        self.cluster = SimCluster(self.rng, lambda: self.now_ms)
        self.lost_images: dict[str, tuple[Path, sqlite3.Connection]] = {}
        self.payments: dict[str, _Payment] = {}
        self.writer_hashes: dict[tuple[int, str], str] = {}  # (seq, block hash) -> state hash
        self.follower_hashes: dict[tuple[int, str], tuple[str, str]] = {}  # -> (state hash, member)
        self.finals: dict[int, Checkpoint] = {}
        self.equivocations: list[tuple[str, int]] = []  # (kind, seq) injected
        self.forged: set[tuple[int, str]] = set()  # (seq, block hash) of blocks no sequencer signed
        keys = {SEQUENCER: self._key(), STANDBY: self._key(), **{NODE_OF[m]: self._key() for m in MEMBERS}}
        # Both sequencers are registered (as a network file with a standby has them).
        tables = [f'[[node]]\nname = "{s}"\npublic_key = "{public_key_b64(keys[s])}"\nsequencer = true\n'
                  for s in (SEQUENCER, STANDBY)]
        tables += [f'[[node]]\nname = "{NODE_OF[m]}"\npublic_key = "{public_key_b64(keys[NODE_OF[m]])}"\n'
                   f'member = "{m}"\n' for m in MEMBERS]
        self.network: Network = load_network(NETWORK_TOML + "\n" + "\n".join(tables))
        self.registry = registry_of(self.network)
        self.seq_keys = {s: keys[s] for s in (SEQUENCER, STANDBY)}
        for name, key in keys.items():
            write_private_key(key, self.dir / f"{name}.key")
        self.rogue_key = self._key()  # registered nowhere: what a forger signs with
        self.hosts = [_Host(SEQUENCER, self.dir / f"{SEQUENCER}.key", _Disk(self, SEQUENCER, self.dir / "writer.db"),
                            "writer")]
        if "failover" in faults:
            self.hosts.append(_Host(STANDBY, self.dir / f"{STANDBY}.key",
                                    _Disk(self, STANDBY, self.dir / f"{STANDBY}-1.db"), "standby"))
        self.members = [_Member(m, NODE_OF[m], self.dir / f"{NODE_OF[m]}.key", self.dir / f"{NODE_OF[m]}.db",
                                _Disk(self, NODE_OF[m], self.dir / f"{NODE_OF[m]}.db")) for m in MEMBERS]
        self.epoch_checked = 0  # blocks on the stream whose epoch has been checked
        self.last_epoch = 0
        self.epoch_signer: dict[int, str] = {}  # epoch -> the sequencer whose blocks carry it
        self.epoch_started: list[tuple[int, int]] = []  # (block seq, epoch) of every EpochStart on the stream
        self.next_id = 0
        self.pending_byzantine: _Member | None = None
        self.changed_network = False
        self.partition_until: dict[str, int] = {}
        self.replica_until: dict[int, int] = {}

    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))

    def clock(self) -> int:
        return self.now_ms

    def fail(self, invariant: str, detail: str) -> NoReturn:
        raise Violation(self.step, invariant, detail)

    # ------------------------------------------------------------------ processes

    def _log(self, client: str, disk: _Disk) -> SimLog:
        return _CrashingLog(self.cluster, client, lambda: self.step, disk)

    def _drop(self, node: Node | None, who: str) -> None:
        """The process died: the kernel releases its lock and files; nothing is flushed or closed
        by the node itself."""
        if node is None:
            return
        if node.replicator is not None:
            node.replicator.log.close()  # its connection dies with it (no renewal thread here)
        if node._writer_cm is not None:
            with contextlib.suppress(Exception):
                node._writer_cm.__exit__(None, None, None)
            node._writer_cm = None
        with contextlib.suppress(Exception):
            node.store.close()
        image = self.lost_images.pop(who, None)
        if image is not None:
            path, keep = image
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(str(path) + suffix)
            dest = sqlite3.connect(path)
            keep.backup(dest)
            dest.close()
            keep.close()

    # ------------------------------------------------------------------ sequencers

    def _settings(self, h: _Host) -> ReplicationSettings:
        return ReplicationSettings([], str(h.key_path), STREAM)

    def _active(self) -> _Host | None:
        live = [h for h in self.hosts if self._current(h)]
        return max(live, key=lambda h: h.epoch) if live else None

    def _current(self, h: _Host) -> bool:
        """A running writer whose store holds the stream's whole history (a fenced one does not:
        the stream moved on without it)."""
        node = h.node
        if node is None:
            return False
        blocks = self.cluster.blocks()
        if not blocks:
            return True
        last = blocks[-1].data
        assert isinstance(last, BlockMessageT)
        if node.block_seq < last.header.seq:
            return False
        at = node.store.block_hash_at(last.header.seq)
        return at is not None and at[0].hex() == last.header.hash

    def start_host(self, h: _Host) -> None:
        if h.running or h.down_until > self.step:
            return
        if h.role == "standby":
            self._start_standby(h)
        else:
            self.start_writer(h)

    def start_writer(self, h: _Host) -> None:
        """`setara serve --replicate` on this machine's store: open it, take the lease (or renew
        its own), bring the stream up to the store's head, and, in a new epoch, log an EpochStart
        first (as `usecases.start_replication` does, with the simulated stream and clock)."""
        path = str(h.db)
        node: Node | None = None
        try:
            # The party key from the seed too: fingerprints of named payments, and so the state
            # hashes a run prints, depend on it.
            node = Node.create(path, self.network, self.clock(), self.party_key) if not h.db.exists() \
                else Node.open(path, write=True)
            h.disk.wrap(node)
            rep = Replicator.open(self._settings(h), node.network, node.store, log=self._log(h.name, h.disk),
                                  lease_ttl_s=LEASE_TTL_MS / 1000, renew_in_background=False)
            node.replicator = rep
            h.next_renew_ms = self.now_ms + LEASE_TTL_MS // 3
            if rep.new_epoch:
                node.execute([EpochStart(rep.epoch, rep.signer, self.clock())])
        except SimCrash:
            self._drop(node, h.name)
            return
        except (SetaraError, StoreError) as e:
            self._drop(node, h.name)  # the process exits with its one line
            self._set_aside_if_fenced(h, str(e))
            return
        h.node = node
        h.epoch = rep.epoch
        self._record_writer_hashes(h)
        self._check_acked_kept(h)

    def crash_writer(self, h: _Host) -> None:
        self._drop(h.node, h.name)
        h.node = None

    def _set_aside_if_fenced(self, h: _Host, refusal: str) -> None:
        """After a refused start: when another sequencer holds the lease, or the stream holds a
        block this store lacks or has another one, this store can never write again. No code path
        turns a writer's store back into a replica (`serve --standby` refuses a writer's store), so
        the operator sets it aside and the machine comes back as a standby with a new replica."""
        if len(self.hosts) == 1 or not any(w in refusal for w in FENCED):
            return  # the stream could not be reached: it starts again later
        self.stats["set_aside"] += 1
        for suffix in ("", "-wal", "-shm", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(h.db) + suffix)
        h.stores += 1
        h.disk.path = self.dir / f"{h.name}-{h.stores}.db"
        h.role = "standby"

    def _start_standby(self, h: _Host) -> None:
        """`setara serve --standby`: replicate the stream into this machine's store."""
        sb = Standby(str(h.db), self._settings(h), self.network, self._log(h.name, h.disk), self.party_key)
        h.disk.wrap(sb.node)
        h.standby = sb

    def standby_round(self, h: _Host) -> None:
        """One poll of `wait_to_take_over`; on a lapsed lease, the store becomes the writer's and
        the machine starts as the sequencer."""
        sb = h.standby
        assert sb is not None
        try:
            took = sb.poll()
        except SimCrash:
            self._drop(sb.node, h.name)
            h.standby = None
            return
        except FollowError as e:
            self.fail("an honest node accepts every genuine block", f"{h.name} (standby) stopped: {e}")
        except SetaraError:
            self._exit_standby(h)  # the stream could not be reached: the process exits
            return
        if not took:
            self._record_replica_hash(h.name, sb.node, sb._follower.tip.epoch)
            return
        self._exit_standby(h)
        h.role = "writer"
        self.stats["failovers"] += 1
        self.start_writer(h)

    def _exit_standby(self, h: _Host) -> None:
        """`wait_to_take_over` returned or raised: its `finally` closes the replica cleanly."""
        sb = h.standby
        h.standby = None
        if sb is None:
            return
        try:
            sb.close()
        except SimCrash:
            self._drop(sb.node, h.name)

    def _stop_sequencer(self) -> None:
        """A writing sequencer stops renewing its lease for a few steps: the operator stops it
        (cleanly, or by pulling the plug), or the process freezes (a long pause) and, when it
        wakes, first finishes the request it had in hand, with its stale idea of the lease and
        of the stream. The standby takes over once the lease lapses."""
        live = [h for h in self.hosts if h.node is not None and not self._paused(h)]
        if not live:
            return
        h = self.rng.choice(live)
        node = h.node
        assert node is not None
        r = self.rng.random()
        if r < 1 / 3:
            h.paused_until = self.step + self.rng.randint(*STOP_STEPS)
            self.stats["pauses"] += 1
            return
        h.node = None
        if r < 2 / 3:
            try:
                node.close()  # as `serve` does on SIGTERM: record finality, stop renewing, close
            except (SimCrash, SetaraError, StoreError, ReplicationError):
                self._drop(node, h.name)
        else:
            self._drop(node, h.name)
        h.down_until = self.step + self.rng.randint(*STOP_STEPS)
        self.stats["stops"] += 1

    def _advance_clock(self, dt_ms: int) -> None:
        """Time passes: each running writer's lease renewer ticks at its own times (every third
        of the TTL), through the network as it has been since the last step."""
        end = self.now_ms + dt_ms
        while True:
            # A frozen process's renewer does not run (until after its pending request: `one_step`).
            due = [h for h in self.hosts if h.node is not None and h.node.replicator is not None
                   and h.next_renew_ms <= end and not (h.paused_until and h.paused_until >= self.step)]
            if not due:
                break
            h = min(due, key=lambda x: (x.next_renew_ms, x.name))
            self.now_ms = max(self.now_ms, h.next_renew_ms)
            assert h.node is not None
            h.node.replicator.renew_lease_once()
            h.next_renew_ms += LEASE_TTL_MS // 3
        self.now_ms = end

    # ------------------------------------------------------------------ member nodes

    def start_member(self, m: _Member) -> None:
        if m.stopped is not None or m.follower is not None:
            return
        if m.corrupt_pending:
            m.corrupt_pending = False
            try:
                Node.open(str(m.db), write=False).close()
            except StoreError:
                self.stats["corruptions_detected"] += 1
                # The operator rebuilds the member's store from the stream (the log is the truth).
                for suffix in ("", "-wal", "-shm", ".lock"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(str(m.db) + suffix)
            else:
                self.fail("corruption detected", f"{m.name}: a corrupted stored block was not refused at open")
        node = _open_replica(str(m.db))
        m.disk.wrap(node)
        settings = FollowSettings(str(m.db), m.member, ReplicationSettings([], str(m.key_path), STREAM),
                                  self.network)
        m.follower = _Follower(settings, self.network, self._log(m.name, m.disk), node)

    def crash_member(self, m: _Member) -> None:
        if m.follower is not None:
            self._drop(m.follower.node, m.name)
        m.follower = None

    def exit_member(self, m: _Member) -> None:
        """The follow loop returned or raised: its `finally` closes the node cleanly."""
        if m.follower is None:
            return
        f = m.follower
        m.follower = None
        try:
            f.node.catch_up()
            f.node.close()
        except SimCrash:
            self._drop(f.node, m.name)

    # ------------------------------------------------------------------ the writer's work

    def _new_payment(self) -> bytes:
        rng = self.rng
        self.next_id += 1
        pid = f"p{self.next_id}"
        d, c = rng.sample(MEMBERS, 2)
        cur = rng.choice(("IDR", "IDR", "MYR", "THB"))
        amount = rng.choice((rng.randint(100, 200_000), rng.randint(100, 5_000_000)))
        rec: dict[str, Any] = {"id": pid, "debtor": d, "creditor": c, "currency": cur,
                               "amount": f"{amount // 100}.{amount % 100:02d}",
                               "debtor_name": rng.choice(NAMES), "creditor_name": rng.choice(NAMES)}
        if cur != "THB" and rng.random() < 0.25:
            rec["to_currency"] = "MYR" if cur == "IDR" else "IDR"
        if rng.random() < 0.2:
            rec["priority"] = "urgent"
        line = orjson.dumps(rec)
        self.payments[pid] = _Payment(line)
        self.stats["payments"] += 1
        return line

    def writer_action(self, h: _Host) -> None:
        node = h.node
        assert node is not None
        rng = self.rng
        r = rng.random()
        t = self.clock
        try:
            if r < 0.55:
                lines = [self._new_payment() for _ in range(rng.randint(1, 8))]
                lines += [p.line for p in self.payments.values() if p.ack is None]
                self._submit(node, lines)
            elif r < 0.65:
                rate = f"{rng.randint(2900, 3100)}.{rng.randint(0, 99):02d}"
                usecases.post_rate(node, "FX_MERDEKA", "MYR", "IDR", rate, valid_for_s=600, clock=t)
            elif r < 0.73:
                queued = [p.id for p in node.engine.queued() if p.status == QUEUED and p.cycle is None]
                if queued:
                    node.run(Hold(rng.choice(sorted(queued)), "simulated list update", t()))
            elif r < 0.81:
                held = sorted(pid for pid in self.payments if node.engine.status(pid) == HELD)
                if held:
                    usecases.review_hold(node, rng.choice(held), release=rng.random() < 0.7, officer="sim officer",
                                         note="simulated review", clock=t)
            elif r < 0.88:
                usecases.close_cycle(node, "THB", clock=t)
            elif r < 0.92:
                if node.engine.day_open:
                    usecases.close_day(node, clock=t)
                usecases.open_day(node, clock=t)
            elif r < 0.97:
                m = rng.choice(MEMBERS)
                usecases.set_suspended(node, m, not node.network.members[m].suspended, clock=t)
            elif not self.changed_network:
                change = '[[credit_line]]\nmember = "BANK_TH1"\ncurrency = "IDR"\ncredit_line = "5000.00"\n'
                usecases.apply_network_change(node, change, clock=t)
                self.changed_network = True
        except usecases.Refused:
            pass  # an answer to the operator; nothing changed
        except SimCrash:
            self.crash_writer(h)
            return
        except (SetaraError, StoreError) as e:
            msg = str(e)
            if msg.startswith("invariant violated"):
                self.fail("engine invariants", msg)
            if not msg.startswith(("replication failure", "storage failure")) and "lost the sequencer lease" not in msg:
                return  # the engine refused the command: an answer, nothing changed
            # The writer process exits on a replication failure or a lost lease (nothing acknowledged).
            self._note_refused(msg)
            self.crash_writer(h)
            return
        self._after_write(h)

    def _submit(self, node: Node, lines: list[bytes]) -> None:
        for acks in node.submit_lines(lines, source="sim", batch_lines=10_000, clock=self.clock):
            for a in acks:
                p = self.payments.get(a.id or "")
                if p is None:
                    continue
                if a.reason_code == "DUPL":
                    # The client only ever resends the same line: a retry must get the first one's answer.
                    self.fail("a retried instruction is answered as the first was",
                              f"{a.id} was refused as a different instruction under the same id")
                if p.ack is None:
                    p.ack = a.status
                    self.stats["acks"] += 1
                if a.status == SETTLED:
                    p.settled = True

    def _after_write(self, h: _Host) -> None:
        """A write returned, so its acks are out: its block must be on the stream."""
        node = h.node
        assert node is not None
        blocks = self.cluster.blocks()
        on_stream = node.block_seq <= len(blocks) and \
            blocks[node.block_seq - 1].data.header.hash == node.block_hash.hex()  # type: ignore[union-attr]
        if not on_stream:
            self.fail("nothing is acknowledged before its block is on the stream",
                      f"{h.name} returned from a write at block {node.block_seq}, which the stream does not hold")
        self._record_writer_hashes(h)

    def _record_writer_hashes(self, h: _Host) -> None:
        node = h.node
        if node is None or node.block_seq == 0:
            return
        key = (node.block_seq, node.block_hash.hex())
        state = node.engine.state_hash()
        known = self.writer_hashes.setdefault(key, state)
        if known != state:
            self.fail("followers at equal seq have equal state hashes",
                      f"{h.name} at block {key[0]} has state {state[:12]}, a writer there had {known[:12]}")
        self.stats["blocks"] = max(self.stats["blocks"], node.block_seq)

    # ------------------------------------------------------------------ a member node's round

    def member_round(self, m: _Member) -> None:
        """One pass of `follow`'s loop: catch up, sign, look for equivocation, gather."""
        f = m.follower
        if f is None:
            return
        m.rounds += 1
        try:
            f.catch_up()
            mine = f.sign()
            proofs = f.check_equivocation()
            if proofs:
                self.stats["proofs"] = max(self.stats["proofs"], len(f.node.store.proofs()))
                m.stopped = f"equivocation proof at seq {proofs[0].get('seq')}"
                self.exit_member(m)
                return
            if mine is not None:
                merged, final = f.gather(mine)
                if final:
                    self._note_final(merged)
        except SimCrash:
            self.crash_member(m)
            return
        except FollowError as e:
            self._follow_error(m, str(e))
            return
        except SetaraError as e:
            m.last_exit = str(e)
            self.exit_member(m)  # the stream could not be reached: the process exits; restarted later
            return
        self._record_member_hash(m)

    def _follow_error(self, m: _Member, msg: str) -> None:
        f = m.follower
        assert f is not None
        seq = f.node.block_seq + 1
        m.last_exit = msg
        if (f.node.block_seq, f.node.block_hash.hex()) in self.forged:
            self.fail("only blocks signed by a registered sequencer are applied",
                      f"{m.name} applied block {f.node.block_seq}, which no registered sequencer signed")
        if "refusing to sign" in msg:
            self.exit_member(m)  # behind its own last signature (a rebuilt store): it retries later
            return
        if m.deceived_from is not None and seq >= m.deceived_from:
            # It stops on the chain break, as it must; restarted, it stops there again (a human's job).
            self.exit_member(m)
            return
        stored = self.cluster.blocks()
        genuine = stored[seq - 1].data if seq <= len(stored) else None
        if any(s == seq for s, _ in self.forged) and genuine is not None:
            self.stats["forged_rejected"] += 1
            self.cluster.split_view.get(m.name, {}).pop(seq, None)
            self.exit_member(m)  # stops on the forged block; restarted, it reads the genuine one
            return
        self.fail("an honest node accepts every genuine block", f"{m.name} stopped on a genuine block: {msg}")

    def _record_member_hash(self, m: _Member) -> None:
        f = m.follower
        if f is None or f.node.block_seq == 0 or m.liar:
            return
        if m.deceived_from is not None and f.node.block_seq >= m.deceived_from:
            return
        self._record_replica_hash(m.name, f.node, f.tip.epoch)

    def _record_replica_hash(self, who: str, node: Node, tip_epoch: int) -> None:
        """A member node's or a standby's state against the writers' and the others' at its block;
        and the epoch it follows is never older than the last EpochStart it applied."""
        seq = node.block_seq
        if seq == 0:
            return
        bh = node.block_hash.hex()
        state = node.engine.state_hash()
        w = self.writer_hashes.get((seq, bh))
        if w is not None and w != state:
            self.fail("followers at equal seq have equal state hashes",
                      f"{who} at block {seq} has state {state[:12]}, the writer had {w[:12]}")
        other = self.follower_hashes.setdefault((seq, bh), (state, who))
        if other[0] != state:
            self.fail("followers at equal seq have equal state hashes",
                      f"{who} and {other[1]} at block {seq}: {state[:12]} vs {other[0][:12]}")
        if (seq, bh) in self.forged:
            self.fail("only blocks signed by a registered sequencer are applied",
                      f"{who} applied block {seq}, which no registered sequencer signed")
        self._check_stream_epochs()
        started = max((e for s, e in self.epoch_started if s <= seq), default=0)
        if tip_epoch < started:
            self.fail("no block of a void older epoch is applied after an EpochStart",
                      f"{who} at block {seq} follows epoch {tip_epoch}; epoch {started} had started")

    def _note_final(self, scp: SignedCheckpoint) -> None:
        cp = scp.checkpoint
        known = self.finals.setdefault(cp.seq, cp)
        if known != cp:
            self.fail("honest nodes agree on every quorum-final checkpoint",
                      f"two final checkpoints at seq {cp.seq}: {known.state_hash[:12]} vs {cp.state_hash[:12]}")
        self.stats["final_seq"] = max(self.stats["final_seq"], cp.seq)

    # ------------------------------------------------------------------ faults

    def draw_faults(self) -> None:
        rng, fs = self.rng, self.faults
        c = self.cluster
        if "crash" in fs or "lost-write" in fs:
            for h in self.hosts:
                if h.node is not None and rng.random() < 0.12:
                    h.disk.crash_in = rng.randint(1, 4)
                    h.disk.lost = "lost-write" in fs and rng.random() < 0.5
                elif h.standby is not None and rng.random() < 0.06:
                    h.disk.crash_in = rng.randint(1, 4)
                    h.disk.lost = False
            for m in self.members:
                if m.follower is not None and rng.random() < 0.06:
                    m.disk.crash_in = rng.randint(1, 4)
        for who, until in list(self.partition_until.items()):
            if until <= self.step:
                c.partitioned.discard(who)
                del self.partition_until[who]
        for i, until in list(self.replica_until.items()):
            if until <= self.step:
                c.up[i] = True
                del self.replica_until[i]
        if "partition" in fs and rng.random() < 0.15:
            who = rng.choice([*(h.name for h in self.hosts), *NODE_OF.values()])
            if who not in c.partitioned:
                c.partitioned.add(who)
                self.partition_until[who] = self.step + rng.randint(1, PARTITION_STEPS_MAX)
                self.stats["partitions"] += 1
        if "replica" in fs and rng.random() < 0.1:
            i = rng.randrange(len(c.up))
            if c.up[i]:
                c.up[i] = False
                self.replica_until[i] = self.step + rng.randint(1, PARTITION_STEPS_MAX)
        nf = c.faults
        nf.loss = 0.05 if "loss" in fs else 0.0
        nf.ack_loss = 0.05 if "loss" in fs else 0.0
        nf.dup = 0.1 if "dup" in fs else 0.0
        nf.delay = 0.05 if "delay" in fs else 0.0
        nf.short_fetch = 0.15 if "delay" in fs else 0.0
        nf.redeliver = 0.1 if "reorder" in fs or "dup" in fs else 0.0
        if "corrupt" in fs and rng.random() < 0.04:
            self._corrupt(rng.choice(self.members))
        if "byzantine-sequencer" in fs and rng.random() < 0.04 and self.pending_byzantine is None \
                and not self.equivocations:
            self.pending_byzantine = rng.choice(self.members)
        if "lying-follower" in fs and rng.random() < 0.03 and not any(m.liar for m in self.members):
            self._lie(rng.choice(self.members))
        if "byzantine-sequencer" in fs and rng.random() < 0.03:
            self._forge(rng.choice(self.members))
        if "failover" in fs and rng.random() < 0.05:
            self._stop_sequencer()

    def _corrupt(self, m: _Member) -> None:
        """Flip bytes of a stored block the node replays when it opens (after its latest snapshot)."""
        if m.stopped is not None or not m.db.exists():
            return
        self.crash_member(m)
        db = sqlite3.connect(m.db)
        try:
            snap = db.execute("SELECT COALESCE(MAX(block), 0) FROM snapshots").fetchone()[0]
            rows = db.execute("SELECT seq FROM log WHERE seq > ? ORDER BY seq", (snap,)).fetchall()
            if not rows:
                return
            seq = self.rng.choice(rows)[0]
            log = bytearray(db.execute("SELECT body FROM log WHERE seq = ?", (seq,)).fetchone()[0])
            i = self.rng.randrange(len(log))
            log[i] ^= 0x20
            db.execute("UPDATE log SET body = ? WHERE seq = ?", (bytes(log), seq))
            db.commit()
            m.corrupt_pending = True
        finally:
            db.close()

    def _byzantine_split(self) -> None:
        """The sequencer signs another block for the stream's last seq and sends it to one member
        node only (a split view); the others get the block the stream holds."""
        victim = self.pending_byzantine
        blocks = self.cluster.blocks()
        if victim is None or not blocks:
            return
        genuine = blocks[-1].data
        assert isinstance(genuine, BlockMessageT)
        h = genuine.header
        f = victim.follower
        if victim.stopped is not None or h.seq < 2 or (f is not None and f.node.block_seq >= h.seq):
            return
        if victim.deceived_from is None:
            at = self._member_seq(victim)
            if at >= h.seq:
                return
        alt = self._other_block(h, h.signer, self.seq_keys[h.signer])
        self.cluster.split_view.setdefault(victim.name, {})[h.seq] = alt
        victim.deceived_from = h.seq
        self.equivocations.append(("block_header", h.seq))
        self.pending_byzantine = None
        self.stats["byzantine_blocks"] += 1

    def _forge(self, victim: _Member) -> None:
        """Someone without a sequencer key puts a block of their own before one member node."""
        blocks = self.cluster.blocks()
        if not blocks or victim.stopped is not None or victim.deceived_from is not None:
            return
        genuine = blocks[-1].data
        assert isinstance(genuine, BlockMessageT)
        h = genuine.header
        if self._member_seq(victim) >= h.seq or h.seq < 2 or h.seq in self.cluster.split_view.get(victim.name, {}):
            return
        alt = self._other_block(h, SEQUENCER, self.rogue_key)
        self.cluster.split_view.setdefault(victim.name, {})[h.seq] = alt
        self.forged.add((h.seq, alt.header.hash))

    def _other_block(self, h: Any, signer: str, key: Ed25519PrivateKey) -> BlockMessageT:
        """A block for h's seq that replays cleanly but differs: one FX quote instead of h's log."""
        body = {"provider": "FX_MERDEKA", "base": "MYR", "quote": "IDR",
                "rate": f"{self.rng.randint(4000, 4999)}.00", "expires_ms": h.time_ms + 600_000,
                "time_ms": h.time_ms, "quote_id": None}
        log = orjson.dumps([["rate", body]])
        return build_block_message(key, signer=signer, network=h.network, epoch=h.epoch, seq=h.seq,
                                   first_cmd=h.first_cmd, n_cmds=1, time_ms=h.time_ms,
                                   prev_hash=bytes.fromhex(h.prev_hash), log=log)

    def _member_seq(self, m: _Member) -> int:
        if m.follower is not None:
            return m.follower.node.block_seq
        if not m.db.exists():
            return 0
        db = sqlite3.connect(m.db)
        try:
            row = db.execute("SELECT COALESCE(MAX(seq), 0) FROM log").fetchone()
            return int(row[0])
        except sqlite3.Error:
            return 0
        finally:
            db.close()

    def _lie(self, m: _Member) -> None:
        """A member node signs a checkpoint with a wrong state hash: either beside the one it
        signed for that seq (an equivocation, to be proved) or alone (never to become final)."""
        f = m.follower
        if f is None or m.stopped is not None or f.guard.last is None:
            return
        cp = f.guard.last
        wrong = Checkpoint(cp.network, cp.seq, cp.block_hash, "f" * 64 if cp.state_hash != "f" * 64 else "e" * 64)
        both = self.rng.random() < 0.5
        log = SimLog(self.cluster, m.name, lambda: self.step)
        try:
            if both:
                log.publish_checkpoint(sign_checkpoint(cp, f.key, m.name, m.member))
            log.publish_checkpoint(sign_checkpoint(wrong, f.key, m.name, m.member))
        except ReplicationError:
            return  # what reached the stream before the failure proves nothing by itself
        m.liar = True
        genuine = f"c:{m.name}:{cp.network}:{cp.seq}:{cp.block_hash}:{cp.state_hash}"
        if genuine in self.cluster.msg_ids:  # its true checkpoint is out there too: an equivocation
            self.equivocations.append(("checkpoint", cp.seq))
        self.stats["lies"] += 1

    def heal(self) -> None:
        c = self.cluster
        c.partitioned.clear()
        c.up = [True] * len(c.up)
        self.partition_until.clear()
        self.replica_until.clear()
        c.faults.quiet()
        for h in self.hosts:
            h.disk.crash_in = None
            h.down_until = h.paused_until = 0
        for m in self.members:
            m.disk.crash_in = None
        self.pending_byzantine = None
        # The forger and the Byzantine sequencer stop too: what they had not yet delivered is gone.
        for m in self.members:
            view = self.cluster.split_view.get(m.name, {})
            for seq in [s for s in view if (m.name, s) not in self.cluster.delivered]:
                del view[seq]
                if m.deceived_from == seq:
                    m.deceived_from = None
                    self.equivocations.remove(("block_header", seq))

    # ------------------------------------------------------------------ invariants

    def _check_acked_kept(self, h: _Host) -> None:
        node = h.node
        if node is None:
            return
        for pid, p in self.payments.items():
            if p.ack is None:
                continue
            status = node.engine.status(pid)
            if status is None:
                self.fail("no acknowledged payment is lost", f"{pid} was acknowledged {p.ack}; the writer "
                          f"{h.name} (at block {node.block_seq}) does not know it")
            if p.settled and status != SETTLED:
                self.fail("no acknowledged payment is lost", f"{pid} was acknowledged SETTLED, is now {status}")

    def _check_stream_epochs(self) -> None:
        """Along the stream: epochs never go back; each epoch's blocks are all signed by the one
        sequencer the lease of that epoch went to; an EpochStart is its signer's, of its block's
        epoch or an older one of the same signer (a block written just before a crash is published
        by the restarted writer under its new epoch, and an EpochStart in it names the old one)."""
        blocks = self.cluster.blocks()
        for m in blocks[self.epoch_checked:]:
            msg = m.data
            assert isinstance(msg, BlockMessageT)
            h = msg.header
            if h.epoch < self.last_epoch:
                self.fail("no block of a void older epoch is applied after an EpochStart",
                          f"the stream accepted block {h.seq} of epoch {h.epoch} after epoch {self.last_epoch}")
            signer = self.epoch_signer.setdefault(h.epoch, h.signer)
            holder = self.cluster.lease_holders.get(h.epoch)
            if signer != h.signer or holder != h.signer:
                self.fail("at most one sequencer's appends are accepted per epoch",
                          f"block {h.seq} of epoch {h.epoch} is signed by {h.signer}; the epoch's lease went to "
                          f"{holder}, its first block was {signer}'s")
            for kind, body in orjson.loads(msg.log):
                if kind != "epoch":
                    continue
                if body["epoch"] > h.epoch or body["sequencer"] != h.signer \
                        or self.cluster.lease_holders.get(body["epoch"]) != h.signer:
                    self.fail("at most one sequencer's appends are accepted per epoch",
                              f"block {h.seq} ({h.signer}, epoch {h.epoch}) starts epoch {body['epoch']} "
                              f"of {body['sequencer']}")
                self.epoch_started.append((h.seq, body["epoch"]))
            self.last_epoch = h.epoch
        self.epoch_checked = len(blocks)
        self.stats["epochs"] = len(self.epoch_signer)

    def check(self) -> None:
        self._check_stream_epochs()
        for h in self.hosts:
            if self._current(h):
                self._check_acked_kept(h)
        nodes: list[tuple[str, Node]] = [(h.name, h.node) for h in self.hosts if h.node is not None]
        nodes += [(h.name, h.standby.node) for h in self.hosts if h.standby is not None]
        nodes += [(m.name, m.follower.node) for m in self.members if m.follower is not None and not m.liar
                  and (m.deceived_from is None or m.follower.node.block_seq < m.deceived_from)]
        for who, node in nodes:
            if node.engine.network is None:
                continue
            led = node.engine.ledger
            sums: dict[str, int] = {}
            for (acct, cur), bal in led.balances.items():
                sums[cur] = sums.get(cur, 0) + bal
                if bal < led.floors.get((acct, cur), 0):
                    self.fail("floors hold", f"{who}: {acct}/{cur} at {bal}, below its floor "
                              f"{led.floors.get((acct, cur), 0)}")
            for cur, total in sums.items():
                if total != 0:
                    self.fail("money is conserved per currency", f"{who}: {cur} balances sum to {total}, not 0")
            self._check_settled_once(who, node)

    def _check_settled_once(self, who: str, node: Node) -> None:
        """No payment's settlement is posted twice: each (payment, currency, debit, credit) leg
        appears once in the store's journal."""
        seen: set[tuple[str, str, str, str]] = set()
        for b in node.store.iter_blocks(0):
            for _s, pid, cur, debit, credit, _amount, _rate in orjson.loads(b.journal):
                if not pid.startswith("p"):
                    continue
                k = (pid, cur, debit, credit)
                if k in seen:
                    self.fail("no payment settles twice", f"{who}: payment {pid} posted {debit}->{credit} {cur} twice")
                seen.add(k)

    def check_final(self) -> None:
        """Every quorum-final checkpoint anyone can assemble from the stream agrees, and is the
        writing sequencer's block at that seq."""
        groups: dict[Checkpoint, SignedCheckpoint] = {}
        for _s, scp in self._all_checkpoints():
            groups[scp.checkpoint] = merge(groups[scp.checkpoint], scp) if scp.checkpoint in groups else scp
        for scp in groups.values():
            if is_final(scp, self.registry):
                self._note_final(scp)
        for h in self.hosts:
            node = h.node
            if node is None or not self._current(h):
                continue
            for seq, cp in self.finals.items():
                at = node.store.block_hash_at(seq)
                if at is not None and at[0].hex() != cp.block_hash:
                    self.fail("honest nodes agree on every quorum-final checkpoint",
                              f"final checkpoint at seq {seq} is not the writer {h.name}'s block {seq}")

    def _all_checkpoints(self) -> Iterator[tuple[int, SignedCheckpoint]]:
        saved = set(self.cluster.partitioned)
        self.cluster.partitioned.clear()
        up = list(self.cluster.up)
        self.cluster.up = [True] * len(up)
        short = self.cluster.faults.short_fetch
        self.cluster.faults.short_fetch = 0.0
        try:
            yield from SimLog(self.cluster, "observer", lambda: self.step).iter_checkpoints(1)
        finally:
            self.cluster.partitioned = saved
            self.cluster.up = up
            self.cluster.faults.short_fetch = short

    def check_end(self) -> None:
        """Liveness and proofs, after the quiet phase."""
        bound = self.liveness_bound()
        h = self._active()
        if h is None or h.node is None:
            self.fail("liveness", f"no sequencer is writing the stream's history {bound}")
        lease = self.cluster.lease_value
        if h.node.replicator.lease_lost is not None or lease is None or lease[0] != h.name \
                or lease[3] <= self.now_ms:
            self.fail("liveness", f"{h.name} writes without holding the sequencer lease {bound}")
        node = h.node
        unanswered = sorted((pid for pid, p in self.payments.items() if p.ack is None), key=lambda s: int(s[1:]))
        if unanswered:
            self.fail("liveness", f"{len(unanswered)} payment(s) unanswered {bound}, first {unanswered[0]}")
        head = node.block_seq
        proven = bool(self.equivocations) or any(m.stopped is not None and "proof" in m.stopped for m in self.members)
        for m in self.members:
            if m.stopped is not None or m.liar or m.deceived_from is not None:
                continue  # stopped by design, lying, or fed another history (stops at the break)
            f = m.follower
            if f is None:
                self.fail("liveness", f"{m.name} is not running after the quiet phase")
            if f.node.block_seq != head:
                self.fail("liveness", f"{m.name} at block {f.node.block_seq}, the writer at {head}, {bound}")
            proofs = f.node.store.proofs()
            for kind, seq in self.equivocations:
                if not any(p.get("kind") == kind and p.get("seq") == seq for p in proofs):
                    self.fail("every equivocation is detected and proved",
                              f"{m.name} holds no {kind} proof for seq {seq}")
        if not proven and self.finals.get(head) is None and max(self.finals, default=0) < head:
            self.fail("liveness", f"block {head} (the head) is not final {bound} "
                      f"(last final: {max(self.finals, default=0)})")
        for kind, seq in self.equivocations:
            if not any(m.stopped is not None and "proof" in m.stopped for m in self.members) and not any(
                    m.follower is not None and any(p.get("seq") == seq and p.get("kind") == kind
                                                   for p in m.follower.node.store.proofs()) for m in self.members):
                self.fail("every equivocation is detected and proved", f"no node proved the {kind} at seq {seq}")

    def liveness_bound(self) -> str:
        return f"{liveness_bound(self.faults)} after the faults stopped"

    # ------------------------------------------------------------------ the run

    def one_step(self, active: bool) -> None:
        self.step += 1
        self._advance_clock(self.rng.randint(1, STEP_MS_MAX))
        self.cluster.deliver_delayed(self.step)
        if active:
            self.draw_faults()
        for h in self.hosts:
            if not h.running and (not active or self.rng.random() < 0.5):
                self.start_host(h)
        for h in self.hosts:
            if h.standby is not None:
                self.standby_round(h)
        target = self._client_target()
        if target is not None and active:
            before = len(self.cluster.blocks())
            self.writer_action(target)
            if len(self.cluster.blocks()) > before and self.pending_byzantine is not None:
                self._byzantine_split()
        if not active and target is not None and any(p.ack is None for p in self.payments.values()):
            self._submit_pending(target)
        for m in self.members:
            if m.stopped is not None:
                continue
            if m.follower is None and (not active or self.rng.random() < 0.5):
                self.start_member(m)
            if m.follower is not None and (not active or self.rng.random() < 0.8):
                self.member_round(m)
        self.check()
        self.check_final()

    def _paused(self, h: _Host) -> bool:
        return h.paused_until > self.step

    def _client_target(self) -> _Host | None:
        """The client and the operator reach a running writer; with two running (one of them
        fenced but not yet told), either: the fenced one's writes must be refused. A process
        waking from a pause first finishes the request it had in hand."""
        writers = [h for h in self.hosts if h.node is not None and not self._paused(h)]
        woken = [h for h in writers if h.paused_until == self.step]
        if woken:
            return woken[0]
        if len(writers) <= 1:
            return writers[0] if writers else None
        return self.rng.choice(writers)

    def _submit_pending(self, h: _Host) -> None:
        node = h.node
        assert node is not None
        try:
            self._submit(node, [p.line for p in self.payments.values() if p.ack is None])
        except SimCrash:
            self.crash_writer(h)
        except SetaraError as e:
            self._note_refused(str(e))
            self.crash_writer(h)
        else:
            self._after_write(h)

    def _note_refused(self, msg: str) -> None:
        """A write refused because this sequencer was fenced: its lease lost, or the stream holds
        a block it did not publish (the expected last sequence)."""
        if any(w in msg for w in FENCED):
            self.stats["fenced_writes"] += 1

    def run(self) -> Result:
        try:
            for h in self.hosts:  # the network is created and on the stream before any fault
                self.start_host(h)
            for _ in range(self.fault_steps):
                self.one_step(active=True)
            self.heal()
            if len(self.hosts) > 1:
                # A lease held by a sequencer that is gone lapses within its TTL: wait that long.
                quiet_from = self.now_ms
                for _ in range(QUIET_STEPS_MAX):
                    if self.now_ms >= quiet_from + LEASE_TTL_MS:
                        break
                    self.one_step(active=False)
            for _ in range(LIVENESS_STEPS):
                self.one_step(active=False)
            self.check_end()
        except Violation as v:
            return Result(self.seed, False, self.step, v, self._stats())
        finally:
            self.close()
        return Result(self.seed, True, self.step, None, self._stats())

    def _stats(self) -> dict[str, int]:
        self.stats["dedup"] = self.cluster.stored_twice
        return dict(self.stats)

    def close(self) -> None:
        for h in self.hosts:
            self.crash_writer(h)
            if h.standby is not None:
                self._drop(h.standby.node, h.name)
                h.standby = None
        for m in self.members:
            self.crash_member(m)
        for _path, keep in self.lost_images.values():
            keep.close()
        self.lost_images.clear()


def liveness_bound(faults: set[str]) -> str:
    """Once the faults stop, within this everything submitted is answered and final."""
    if "failover" in faults:
        return f"lease TTL {LEASE_TTL_MS // 1000} s + {LIVENESS_STEPS} quiet steps"
    return f"{LIVENESS_STEPS} quiet steps"


@contextlib.contextmanager
def _memo_verify() -> Iterator[None]:
    """Ed25519 verification is a pure function of (key, signature, data); remembering its answers
    keeps every check and only saves time. Each follower round re-verifies every gossiped header
    and checkpoint from the start of the stream (GOSSIP_READ_MAX), which would otherwise make a
    run quadratic in Ed25519 calls."""
    import setara.replication.checkpoint as checkpoint_mod
    import setara.replication.header as header_mod
    from setara.replication import keys

    real = keys.verify
    memo: dict[tuple[str, bytes, bytes], bool] = {}

    def verify(public_key: Any, signature: bytes, data: bytes) -> bool:
        if not isinstance(public_key, str):
            return real(public_key, signature, data)
        k = (public_key, signature, data)
        got = memo.get(k)
        if got is None:
            got = memo[k] = real(public_key, signature, data)
        return got

    for mod in (header_mod, checkpoint_mod):
        setattr(mod, "verify", verify)  # noqa: B010 - the modules do not re-export it for mypy
    try:
        yield
    finally:
        for mod in (header_mod, checkpoint_mod):
            setattr(mod, "verify", real)  # noqa: B010


def run_seed(seed: int, faults: set[str] | None = None, *, steps: int = FAULT_STEPS,
             tmp_root: str | None = None) -> Result:
    """One seeded run in a fresh temp directory (removed afterwards)."""
    root = tmp_root or ("/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None)
    work = Path(tempfile.mkdtemp(prefix=f"setara-simtest-{seed}-", dir=root))
    try:
        with _memo_verify():
            return World(seed, set(FAULTS) if faults is None else faults, work, steps).run()
    finally:
        shutil.rmtree(work, ignore_errors=True)
