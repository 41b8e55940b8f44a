"""One seeded run of the whole network: a writer (the sequencer), four member nodes, a client.

What runs is the real code: `Node` (engine, store, submit path, use cases), `Replicator`, the
follower (`_Follower`: catch up, verify, replay, sign through the SigningGuard, gather, check
for equivocation) and the checkpoint code, each over its own SQLite store in a temp directory.
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

from setara.core import HELD, QUEUED, SETTLED, Hold
from setara.core.network import Network, load_network
from setara.node import usecases
from setara.node.follow import FollowError, FollowSettings, _Follower, _open_replica
from setara.node.node import Node, SetaraError
from setara.node.replicate import ReplicationSettings, Replicator, registry_of
from setara.replication.checkpoint import Checkpoint, SignedCheckpoint, is_final, merge, sign_checkpoint
from setara.replication.header import BlockMessage as BlockMessageT
from setara.replication.header import build_block_message
from setara.replication.jetstream import ReplicationError
from setara.replication.keys import public_key_b64, write_private_key
from setara.simtest.stream import SimCluster, SimLog
from setara.store import StoreError

__all__ = ["FAULTS", "LIVENESS_STEPS", "Result", "run_seed"]

FAULTS = ("crash", "lost-write", "partition", "replica", "loss", "dup", "delay", "reorder", "corrupt",
          "byzantine-sequencer", "lying-follower")
FAULT_STEPS = 40  # steps with faults drawn
LIVENESS_STEPS = 4  # quiet steps within which everything submitted must be answered and final
PARTITION_STEPS_MAX = 6  # a partition, or a replica down, heals within this many steps
STEP_MS_MAX = 2_000  # simulated time per step: 1 ms .. this
MEMBERS = ("BANK_ID1", "BANK_MY1", "BANK_TH1", "FX_MERDEKA")
NODE_OF = {m: f"node-{m.lower().replace('_', '-')}" for m in MEMBERS}
SEQUENCER = "seq-1"
STREAM = "sim"

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

    def __init__(self, world: World, who: str) -> None:
        self.world = world
        self.who = who
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
        path = self.world.dir / f"{self.who}.db"

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
            "byzantine_blocks", "lies", "proofs", "final_seq", "forged_rejected", "dedup")}
        self.cluster = SimCluster(self.rng, lambda: self.now_ms)
        self.lost_images: dict[str, tuple[Path, sqlite3.Connection]] = {}
        self.payments: dict[str, _Payment] = {}
        self.writer_hashes: dict[tuple[int, str], str] = {}  # (seq, block hash) -> state hash
        self.follower_hashes: dict[tuple[int, str], tuple[str, str]] = {}  # -> (state hash, member)
        self.finals: dict[int, Checkpoint] = {}
        self.equivocations: list[tuple[str, int]] = []  # (kind, seq) injected
        self.forged: set[tuple[int, str]] = set()  # (seq, block hash) of blocks no sequencer signed
        keys = {SEQUENCER: self._key(), **{NODE_OF[m]: self._key() for m in MEMBERS}}
        tables = [f'[[node]]\nname = "{SEQUENCER}"\npublic_key = "{public_key_b64(keys[SEQUENCER])}"\n'
                  "sequencer = true\n"]
        tables += [f'[[node]]\nname = "{NODE_OF[m]}"\npublic_key = "{public_key_b64(keys[NODE_OF[m]])}"\n'
                   f'member = "{m}"\n' for m in MEMBERS]
        self.network: Network = load_network(NETWORK_TOML + "\n" + "\n".join(tables))
        self.registry = registry_of(self.network)
        self.seq_key = keys[SEQUENCER]
        for name, key in keys.items():
            write_private_key(key, self.dir / f"{name}.key")
        self.rogue_key = self._key()  # registered nowhere: what a forger signs with
        self.writer_disk = _Disk(self, "writer")
        self.writer: Node | None = None
        self.members = [_Member(m, NODE_OF[m], self.dir / f"{NODE_OF[m]}.key", self.dir / f"{NODE_OF[m]}.db",
                                _Disk(self, NODE_OF[m])) for m in MEMBERS]
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

    def start_writer(self) -> None:
        path = str(self.dir / "writer.db")
        if not (self.dir / "writer.db").exists():
            # The party key from the seed too: fingerprints of named payments, and so the state
            # hashes a run prints, depend on it.
            node = Node.create(path, self.network, self.clock(), self.party_key)
        else:
            node = Node.open(path, write=True)
        self.writer_disk.wrap(node)
        settings = ReplicationSettings([], str(self.dir / f"{SEQUENCER}.key"), STREAM)
        try:
            node.replicator = Replicator.open(settings, node.network, node.store,
                                              log=self._log("writer", self.writer_disk))
        except SetaraError:
            self._drop(node, "writer")
            return
        except SimCrash:
            self._drop(node, "writer")
            return
        self.writer = node
        self._record_writer_hashes()
        self._check_acked_kept()

    def crash_writer(self) -> None:
        self._drop(self.writer, "writer")
        self.writer = None

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

    def writer_action(self) -> None:
        node = self.writer
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
            self.crash_writer()
            return
        except (SetaraError, StoreError) as e:
            msg = str(e)
            if msg.startswith("invariant violated"):
                self.fail("engine invariants", msg)
            if not msg.startswith(("replication failure", "storage failure")):
                return  # the engine refused the command: an answer, nothing changed
            # The writer process exits on a replication failure (nothing acknowledged).
            self.crash_writer()
            return
        self._record_writer_hashes()

    def _submit(self, node: Node, lines: list[bytes]) -> None:
        for acks in node.submit_lines(lines, source="sim", batch_lines=10_000, clock=self.clock):
            for a in acks:
                p = self.payments.get(a.id or "")
                if p is None:
                    continue
                if p.ack is None:
                    p.ack = a.status
                    self.stats["acks"] += 1
                if a.status == SETTLED:
                    p.settled = True

    def _record_writer_hashes(self) -> None:
        node = self.writer
        if node is None or node.block_seq == 0:
            return
        key = (node.block_seq, node.block_hash.hex())
        self.writer_hashes.setdefault(key, node.engine.state_hash())
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
        seq, bh = f.node.block_seq, f.node.block_hash.hex()
        state = f.node.engine.state_hash()
        if m.deceived_from is not None and seq >= m.deceived_from:
            return
        w = self.writer_hashes.get((seq, bh))
        if w is not None and w != state:
            self.fail("followers at equal seq have equal state hashes",
                      f"{m.name} at block {seq} has state {state[:12]}, the writer had {w[:12]}")
        other = self.follower_hashes.setdefault((seq, bh), (state, m.name))
        if other[0] != state:
            self.fail("followers at equal seq have equal state hashes",
                      f"{m.name} and {other[1]} at block {seq}: {state[:12]} vs {other[0][:12]}")
        if (seq, bh) in self.forged:
            self.fail("only blocks signed by a registered sequencer are applied",
                      f"{m.name} applied block {seq}, which no registered sequencer signed")

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
            if self.writer is not None and rng.random() < 0.12:
                self.writer_disk.crash_in = rng.randint(1, 4)
                self.writer_disk.lost = "lost-write" in fs and rng.random() < 0.5
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
            who = rng.choice(["writer", *NODE_OF.values()])
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
        alt = self._other_block(h, self.seq_key)
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
        alt = self._other_block(h, self.rogue_key)
        self.cluster.split_view.setdefault(victim.name, {})[h.seq] = alt
        self.forged.add((h.seq, alt.header.hash))

    def _other_block(self, h: Any, key: Ed25519PrivateKey) -> BlockMessageT:
        """A block for h's seq that replays cleanly but differs: one FX quote instead of h's log."""
        body = {"provider": "FX_MERDEKA", "base": "MYR", "quote": "IDR",
                "rate": f"{self.rng.randint(4000, 4999)}.00", "expires_ms": h.time_ms + 600_000,
                "time_ms": h.time_ms, "quote_id": None}
        log = orjson.dumps([["rate", body]])
        return build_block_message(key, signer=SEQUENCER, network=h.network, epoch=h.epoch, seq=h.seq,
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
        self.writer_disk.crash_in = None
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

    def _check_acked_kept(self) -> None:
        node = self.writer
        if node is None:
            return
        for pid, p in self.payments.items():
            if p.ack is None:
                continue
            status = node.engine.status(pid)
            if status is None:
                self.fail("no acknowledged payment is lost", f"{pid} was acknowledged {p.ack}; the writer "
                          f"(restarted at block {node.block_seq}) does not know it")
            if p.settled and status != SETTLED:
                self.fail("no acknowledged payment is lost", f"{pid} was acknowledged SETTLED, is now {status}")

    def check(self) -> None:
        self._check_acked_kept()
        nodes: list[tuple[str, Node]] = []
        if self.writer is not None:
            nodes.append(("writer", self.writer))
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
        writer's block at that seq."""
        groups: dict[Checkpoint, SignedCheckpoint] = {}
        for _s, scp in self._all_checkpoints():
            groups[scp.checkpoint] = merge(groups[scp.checkpoint], scp) if scp.checkpoint in groups else scp
        for scp in groups.values():
            if is_final(scp, self.registry):
                self._note_final(scp)
        node = self.writer
        if node is not None:
            for seq, cp in self.finals.items():
                at = node.store.block_hash_at(seq)
                if at is not None and at[0].hex() != cp.block_hash:
                    self.fail("honest nodes agree on every quorum-final checkpoint",
                              f"final checkpoint at seq {seq} is not the writer's block {seq}")

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
        node = self.writer
        if node is None:
            self.fail("liveness", f"the writer did not restart within {LIVENESS_STEPS} quiet steps")
        unanswered = sorted((pid for pid, p in self.payments.items() if p.ack is None), key=lambda s: int(s[1:]))
        if unanswered:
            self.fail("liveness", f"{len(unanswered)} payment(s) unanswered {LIVENESS_STEPS} steps after the "
                      f"faults stopped, first {unanswered[0]}")
        head = node.block_seq
        proven = bool(self.equivocations) or any(m.stopped is not None and "proof" in m.stopped for m in self.members)
        for m in self.members:
            if m.stopped is not None or m.liar or m.deceived_from is not None:
                continue  # stopped by design, lying, or fed another history (stops at the break)
            f = m.follower
            if f is None:
                self.fail("liveness", f"{m.name} is not running after the quiet phase")
            if f.node.block_seq != head:
                self.fail("liveness", f"{m.name} at block {f.node.block_seq}, the writer at {head}, "
                          f"{LIVENESS_STEPS} steps after the faults stopped")
            proofs = f.node.store.proofs()
            for kind, seq in self.equivocations:
                if not any(p.get("kind") == kind and p.get("seq") == seq for p in proofs):
                    self.fail("every equivocation is detected and proved",
                              f"{m.name} holds no {kind} proof for seq {seq}")
        if not proven and self.finals.get(head) is None and max(self.finals, default=0) < head:
            self.fail("liveness", f"block {head} (the head) is not final {LIVENESS_STEPS} steps after the "
                      f"faults stopped (last final: {max(self.finals, default=0)})")
        for kind, seq in self.equivocations:
            if not any(m.stopped is not None and "proof" in m.stopped for m in self.members) and not any(
                    m.follower is not None and any(p.get("seq") == seq and p.get("kind") == kind
                                                   for p in m.follower.node.store.proofs()) for m in self.members):
                self.fail("every equivocation is detected and proved", f"no node proved the {kind} at seq {seq}")

    # ------------------------------------------------------------------ the run

    def one_step(self, active: bool) -> None:
        self.step += 1
        self.now_ms += self.rng.randint(1, STEP_MS_MAX)
        self.cluster.deliver_delayed(self.step)
        if active:
            self.draw_faults()
        if self.writer is None and (not active or self.rng.random() < 0.5):
            self.start_writer()
        if self.writer is not None and active:
            before = len(self.cluster.blocks())
            self.writer_action()
            if len(self.cluster.blocks()) > before and self.pending_byzantine is not None:
                self._byzantine_split()
        if not active and self.writer is not None and any(p.ack is None for p in self.payments.values()):
            self._submit_pending()
        for m in self.members:
            if m.stopped is not None:
                continue
            if m.follower is None and (not active or self.rng.random() < 0.5):
                self.start_member(m)
            if m.follower is not None and (not active or self.rng.random() < 0.8):
                self.member_round(m)
        self.check()
        self.check_final()

    def _submit_pending(self) -> None:
        node = self.writer
        assert node is not None
        try:
            self._submit(node, [p.line for p in self.payments.values() if p.ack is None])
        except SimCrash:
            self.crash_writer()
        except SetaraError:
            self.crash_writer()
        else:
            self._record_writer_hashes()

    def run(self) -> Result:
        try:
            self.start_writer()
            for _ in range(self.fault_steps):
                self.one_step(active=True)
            self.heal()
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
        self.crash_writer()
        for m in self.members:
            self.crash_member(m)
        for _path, keep in self.lost_images.values():
            keep.close()
        self.lost_images.clear()



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
