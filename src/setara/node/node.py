"""The use cases around the engine: open a network, apply commands durably, submit instructions.

`Node` is the imperative shell: it loads the engine from the store (latest snapshot plus the log's
tail), stamps commands with the wall clock, applies them to the engine, and group-commits the log
rows and everything derived from the events before anyone is told the outcome.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import orjson

from setara.core import (
    HELD,
    QUEUED,
    REJECTED,
    SETTLED,
    Command,
    Engine,
    EngineError,
    Init,
    Notice,
    SettleSet,
    StatusEvent,
    Submit,
    apply_logged,
    column,
    command_from_dict,
    command_kind,
    settle_batch,
    settle_run,
)
from setara.core.instructions import Instruction, fingerprint, same_instruction
from setara.core.ledger import GENESIS, InvariantViolation, Posting, journal_block_hash, net_effect
from setara.core.network import Network
from setara.node.intake import NAMES_CACHED_MAX, NameScreening, Segment, parallel_parse, parse_lines, prepare
from setara.node.projection import project
from setara.ports import NullScreening, Screening, now_ms
from setara.simtest import sabotage as _sabotage
from setara.store import Base, Block, Store, StoreError, block_hash, open_store

__all__ = ["Ack", "Node", "SetaraError",
           "queue_problem", "tune_gc"]

BATCH_LINES_DEFAULT = 2000
BATCH_LINES_MAX = 50_000
COMMITS_IN_FLIGHT = 2  # blocks applied in memory beyond the one being committed
SNAPSHOT_MIN_COMMANDS = 50_000
_SUBMIT_ARITY = len(dataclasses.fields(Submit))  # a logged submission row: Submit's fields by position
_ROW_RUN_MIN = 8  # shorter runs of logged rows are cheaper applied one by one
_ROW_RETRY_MAX = 64  # rows applied one by one, at most, before trying a run again
# How long a second writer waits for the lock before refusing (SETARA_LOCK_TIMEOUT_S overrides).
LOCK_TIMEOUT_S = float(os.environ.get("SETARA_LOCK_TIMEOUT_S", "30"))


def queue_problem(engine: Engine) -> tuple[list[int], list[Any]]:
    """The RTGS queue as a bank-clearing problem: each account's available liquidity, and each
    queued payment (a PvP pair as one item with four effects) with its effect on accounts."""
    from setara.liquidity import Item

    index: dict[tuple[str, str], int] = {}
    items = []
    for p in engine.queued():
        if p.cycle is not None:
            continue
        effects = {index.setdefault(acct, len(index)): delta for acct, delta in net_effect(p.legs()).items()}
        items.append(Item(p.id, tuple(effects.items()), p.amount_minor, p.priority, p.order))
    led = engine.ledger
    return [led.available(acct) for acct in index], items


class SetaraError(RuntimeError):
    """A failure to report to the user in one line."""


def tune_gc() -> None:
    """Keep the cyclic collector out of bulk work and request latency.

    Everything loaded so far (the engine, the libraries) is long-lived: freezing it takes it out of
    every later collection, and a larger first-generation threshold makes collections rarer (a
    submit allocates a few short-lived lists per instruction, and each default collection pass
    would cost more than the instruction). Objects are still freed by reference counting as usual;
    only cyclic garbage waits longer.
    """
    # No collection first: it would cost more (tens of ms after the imports) than the little
    # cyclic garbage it would keep out of the permanent generation.
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


@dataclass(slots=True)
class Ack:
    id: str | None  # None: the line could not be parsed far enough to find its id
    line_no: int
    status: str
    reason_code: str | None = None
    reason: str | None = None

    def text(self) -> str:
        head = self.id if self.id is not None else f"line:{self.line_no}"
        if self.reason_code:
            return f"{head} {self.status} {self.reason_code} {self.reason or ''}".rstrip()
        return f"{head} {self.status}"


# A sealed block, the balances it changed, and the engine's state after it (uncompressed) when a
# snapshot is due.
_Sealed = tuple[Block, list[tuple[str, str, int, int]], "tuple[int, bytes] | None"]


class _Builder:
    """What one block collects before its group commit."""

    __slots__ = ("cmds", "n_cmds", "notices", "payments_private", "postings", "rejections", "status", "time_ms")

    def __init__(self) -> None:
        self.cmds: list[list[Any]] = []  # log entries; a batch of submissions is one entry
        self.n_cmds = 0
        self.postings: list[list[Any]] = []
        self.status: list[list[Any]] = []
        self.notices: list[list[Any]] = []
        self.payments_private: dict[str, list[Any]] = {}
        self.rejections: list[list[Any]] = []
        self.time_ms = 0

    def __bool__(self) -> bool:
        return bool(self.cmds or self.rejections)


def _unpacked(state: bytes, state_hash: str) -> Engine:
    if hashlib.sha256(state).hexdigest() != state_hash:
        raise StoreError("the latest snapshot is damaged (hash mismatch); run `setara verify`")
    return Engine.from_state(orjson.loads(state if state[:1] == b"{" else zlib.decompress(state)))


def _replay_blocks(store: Store, engine: Engine, after: int, upto: int | None, prev_hash: bytes,
                   journal_head: bytes, cmds: int) -> tuple[int, bytes, bytes, int]:
    """Apply the stored blocks after `after` (up to `upto`, else all) to `engine`, checking their
    chain; returns (seq, block hash, journal head, commands) of the last one applied."""
    seq = after
    for b in store.iter_blocks(after):
        if upto is not None and b.seq > upto:
            break
        if b.seq != seq + 1 or b.first_cmd != cmds + 1 or \
                block_hash(prev_hash, b.seq, b.first_cmd, b.n_cmds, b.log) != b.hash or \
                journal_block_hash(journal_head, b.journal) != b.journal_head:
            raise StoreError(f"block {b.seq} breaks the hash chain; run `setara verify`")
        try:
            apply_logged(engine, orjson.loads(b.log))
        except (EngineError, TypeError, KeyError, ValueError) as e:
            raise StoreError(f"block {b.seq} does not replay: {e}") from None
        seq, prev_hash, journal_head, cmds = b.seq, b.hash, b.journal_head, cmds + b.n_cmds
    return seq, prev_hash, journal_head, cmds


_Start = tuple[Engine, int, bytes, bytes, int]  # engine, after block, its hash, journal head, commands


def _start(store: Store, upto: int | None = None) -> _Start:
    """Where replaying `store` begins: its latest snapshot at or before block `upto` (any, when
    None), else the snapshot it started from, else block 1 with an empty engine."""
    base = store.base()
    snap = store.latest_snapshot()
    if snap is not None and upto is not None and snap[0] > upto:
        snap = store.base_snapshot()  # kept for good; None for a store that holds block 1
    if snap is None:
        if base is not None:
            raise StoreError("the store starts from a snapshot it no longer holds; it is damaged")
        return Engine(), 0, GENESIS, GENESIS, 0
    after, state, state_hash = snap
    engine = _unpacked(state, state_hash)
    at = store.block_hash_at(after)
    if at is None:
        raise StoreError("the snapshot refers to a block that is missing")
    # Time never goes backwards: the snapshot's block carries its last command's time.
    engine.time_ms = base.time_ms if base is not None and base.seq == after else \
        next(iter(store.iter_blocks(after - 1))).time_ms
    return engine, after, at[0], at[1], engine.applied


def base_engine(store: Store) -> Engine | None:
    """The engine in the state this store started from (None: it starts at block 1)."""
    base = store.base()
    return None if base is None else _start(store, base.seq)[0]


def engine_at(store: Store, seq: int) -> Engine:
    """The engine's state after block `seq` of `store`, replayed from its latest snapshot at or
    before it, with every block's chain checked on the way."""
    engine, after, prev_hash, journal_head, cmds = _start(store, seq)
    if seq < after:
        raise StoreError(f"this store starts after block {after}: it has no state at block {seq}")
    at, _, _, _ = _replay_blocks(store, engine, after, seq, prev_hash, journal_head, cmds)
    if at != seq:
        raise StoreError(f"this store has no block {seq} (its last is {at})")
    return engine


def _one_run(rows: list[list[Any]]) -> bool:
    """Whether logged submission rows may all go to settle_run as one run (the common case,
    checked a column at a time): well formed, cleared, one currency each, time never going back."""
    if set(map(len, rows)) != {_SUBMIT_ARITY}:
        return False
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    times = list(cols[10])
    # A time that is not a number fails sorted() as it fails the engine: the block does not replay.
    return cols[8].count("clear") == n and cols[11].count(None) == n and times == sorted(times)


def _packed_snapshot(block_seq: int, state: bytes) -> tuple[int, bytes, str]:
    # Compressed: a million final payments make ~27 MB of JSON; storing it whole would hold that
    # twice more (the driver copies what it binds) at the moment memory is highest.
    packed = zlib.compress(state, 1)
    return (block_seq, packed, hashlib.sha256(packed).hexdigest())


class Node:
    """One network's engine over its store."""

    def __init__(self, store: Store, engine: Engine, party_key: bytes, head: tuple[int, int, bytes, bytes],
                 snapshot_block: int, writable: bool) -> None:
        self.store = store
        self.engine = engine
        self.party_key = party_key
        self.block_seq, self.cmd_count, self.block_hash, self.journal_head = head
        self.snapshot_block = snapshot_block
        self.snapshot_cmds = engine.applied if snapshot_block else 0
        self.writable = writable
        self.screening: Screening = NullScreening()
        self._touched: set[tuple[str, str]] = set()
        self._writer_cm: Any = None
        self.replicator: Any = None  # setara.node.replicate.Replicator when the log is replicated
        self._sabotage_held: _Sealed | None = None  # only `setara simtest --sabotage` uses it

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, url: str, *, write: bool, lock_timeout_s: float = LOCK_TIMEOUT_S) -> Node:
        store = open_store(url)
        try:
            store.check_schema()
        except StoreError:
            store.close()
            raise
        cm = None
        if write:
            cm = store.writer(lock_timeout_s)
            cm.__enter__()
        try:
            node = cls._load(store, writable=write)
        except BaseException:
            if cm is not None:
                cm.__exit__(None, None, None)
            store.close()
            raise
        node._writer_cm = cm
        return node

    @classmethod
    def create(cls, url: str, network: Network, time_ms: int, party_key: bytes | None = None) -> Node:
        """A new network's store. Its party-data key is random unless given (a standby at the
        operator's second site shares the primary's; `setara simtest` draws it from its seed)."""
        node = cls._empty(url, os.urandom(32) if party_key is None else party_key, None)
        node.execute([Init(network.to_config(), time_ms)])
        return node

    @classmethod
    def create_replica(cls, url: str, party_key: bytes | None = None) -> Node:
        """A member's node's new store: empty until the first block of the replicated log arrives.
        It never holds party data, so its party key is random and unused; a standby sequencer's
        store is given the operator's, which it writes with once it takes over."""
        return cls._empty(url, os.urandom(32) if party_key is None else party_key, "follower")

    @classmethod
    def create_from_snapshot(cls, url: str, base: Base, state: bytes) -> Node:
        """A member's node's new store that begins in `state`, the engine's state after block
        `base.seq` (its hash checked by the caller against a quorum-signed checkpoint); the blocks
        after it then come from the stream."""
        node = cls._empty(url, os.urandom(32), "follower")
        try:
            engine = Engine.from_state(orjson.loads(state))
            if engine.applied != base.cmds:
                raise SetaraError(f"the snapshot holds {engine.applied} commands, block {base.seq} ends at "
                                  f"command {base.cmds}")
            engine.time_ms = max(engine.time_ms, base.time_ms)
            led = engine.ledger
            balances = [(m, c, b, led.available((m, c))) for (m, c), b in led.balances.items()]
            node.store.start_from(base, _packed_snapshot(base.seq, state), balances)
            node.store.set_epoch(base.epoch)
        except BaseException:
            node.close()
            raise
        node.engine = engine
        node.block_seq, node.cmd_count, node.block_hash, node.journal_head = base.seq, base.cmds, base.hash, \
            base.journal_head
        node.snapshot_block, node.snapshot_cmds = base.seq, base.cmds
        return node

    @classmethod
    def _empty(cls, url: str, key: bytes, role: str | None) -> Node:
        """A new store, its schema created, held by this writer; no block yet."""
        if len(key) != 32:
            raise SetaraError("a party-data key is 32 bytes")
        store = open_store(url, create=True)
        if store.exists():
            store.close()
            raise StoreError(f"{url} already holds a network")
        cm = store.writer(LOCK_TIMEOUT_S)
        cm.__enter__()
        try:
            store.create(key)
            if role is not None:
                store.set_node_role(role)
        except BaseException:
            cm.__exit__(None, None, None)
            store.close()
            raise
        node = cls(store, Engine(), key if role is None else b"", (0, 0, GENESIS, GENESIS), 0, True)
        node._writer_cm = cm
        return node

    @classmethod
    def _load(cls, store: Store, *, writable: bool) -> Node:
        key_hex = store.meta("party_key")
        if key_hex is None:
            raise StoreError("the store has no party key; it is damaged")
        engine, after, prev_hash, journal_head, cmds = _start(store)
        seq, prev_hash, journal_head, cmds = _replay_blocks(store, engine, after, None, prev_hash, journal_head, cmds)
        return cls(store, engine, bytes.fromhex(key_hex), (seq, cmds, prev_hash, journal_head), after, writable)

    def close(self) -> None:
        try:
            # A tail shorter than half the log replays quickly on the next open; a larger one, or
            # any worth a snapshot in a small store, is snapshotted now.
            if self.writable and self.cmd_count - self.snapshot_cmds >= max(1000, self.cmd_count // 2):
                self.snapshot()
        finally:
            if self.replicator is not None:
                try:
                    if self.engine.network is not None:
                        self.replicator.record_finality(self.store, self.engine.network)
                finally:
                    self.replicator.close()
                    self.replicator = None
            if self._writer_cm is not None:
                self._writer_cm.__exit__(None, None, None)
                self._writer_cm = None
            self.store.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def network(self) -> Network:
        if self.engine.network is None:
            raise SetaraError("the network is not initialised")
        return self.engine.network

    # ------------------------------------------------------------------ applying commands
    def begin(self) -> _Builder:
        if not self.writable:
            raise SetaraError("this node was opened read-only")
        return _Builder()

    def stage(self, b: _Builder, cmd: Command, private: list[Any] | None = None,
              row: list[Any] | None = None, *, replaying: bool = False) -> list[Any]:
        """Apply `cmd` to the engine and add it, and what it produced, to the block.

        Raises EngineError (and changes nothing) when the engine refuses the command.
        """
        if cmd.time_ms < self.engine.time_ms and not replaying:
            # The engine refuses time that goes backwards; the node stamps acceptance time, which a
            # clock stepped back (or a caller's stale stamp) must not move back.
            cmd = dataclasses.replace(cmd, time_ms=self.engine.time_ms)
            if row is not None:
                row = cmd.as_row()  # type: ignore[union-attr]
        events = self.engine.apply(cmd)
        is_submit = type(cmd) is Submit
        # Submissions are logged as positional rows: half the bytes, twice as fast to write.
        if is_submit:
            b.cmds.append(["submit", row if row is not None else cmd.as_row()])  # type: ignore[union-attr]
        else:
            b.cmds.append([command_kind(cmd), cmd])
        b.n_cmds += 1
        b.time_ms = cmd.time_ms
        touched = self._touched
        postings, status = b.postings, b.status
        fx_id = cmd.id if is_submit and cmd.to_currency else None  # type: ignore[union-attr]
        for ev in events:
            if type(ev) is Posting:
                # Per-posting hashes are not stored: the block keeps the chain's head, and export
                # and verify recompute the chain from the postings themselves.
                postings.append([ev.seq, ev.payment_id, ev.currency, ev.debit, ev.credit, ev.amount_minor,
                                 ev.rate])
                touched.add((ev.debit, ev.currency))
                touched.add((ev.credit, ev.currency))
            elif type(ev) is StatusEvent:
                pid = ev.payment_id
                if pid == fx_id:
                    status.append([pid, ev.status, ev.reason_code, ev.reason, ev.time_ms, *self._fx_of(pid, events)])
                else:
                    status.append([pid, ev.status, ev.reason_code, ev.reason, ev.time_ms, None, None, None])
                if ev.status != SETTLED:
                    self._touch_payment(pid)
            elif type(ev) is Notice:
                b.notices.append([len(b.cmds) - 1, ev.kind, ev.data])
        if not is_submit:
            # Rare commands (funding, network changes, reviews, cycles) may move any balance,
            # floor or reservation: refresh every account's stored figures.
            touched.update(self.engine.ledger.balances)
        elif private is not None:
            b.payments_private[cmd.id] = private  # type: ignore[union-attr]
        return events

    def _fx_of(self, pid: str, events: list[Any]) -> tuple[Any, ...]:
        p = self.engine.live.get(pid)
        if p is not None and p.provider is not None:
            return (p.credit_minor, p.provider, p.rate)
        legs = [e for e in events if type(e) is Posting and e.payment_id == pid]
        if len(legs) == 2:
            return (legs[1].amount_minor, legs[0].credit, legs[0].rate)
        return (None, None, None)

    def _touch_payment(self, pid: str) -> None:
        p = self.engine.live.get(pid)
        if p is not None:
            self._touched.add((p.debtor, p.currency))

    def flush(self, b: _Builder, *, check: bool = True) -> None:
        """Durably commit the block (fsync). Only after this may its outcome be acknowledged."""
        sealed = self._seal(b, check=check)
        if sealed is not None:
            self._write(sealed)

    def _seal(self, b: _Builder, *, check: bool = True, log: bytes | None = None,
              log_hash: bytes | None = None) -> _Sealed | None:
        """Serialise the block and chain it; the node's head moves now, the store's on _write.
        `log_hash`: the block hash of `log` at this place in the chain, already checked (replay)."""
        if not b:
            return None
        if check:
            try:
                self.engine.check()
            except InvariantViolation as e:
                raise SetaraError(f"invariant violated, nothing committed: {e}") from None
        seq = self.block_seq + 1
        first = self.cmd_count + 1
        if log is None:
            log = orjson.dumps(b.cmds)
        h = log_hash if log_hash is not None else block_hash(self.block_hash, seq, first, b.n_cmds, log)
        journal = orjson.dumps(b.postings)
        jhead = journal_block_hash(self.journal_head, journal)
        block = Block(
            seq=seq, first_cmd=first, n_cmds=b.n_cmds, time_ms=b.time_ms, log=log, hash=h,
            journal=journal, journal_head=jhead,
            events=orjson.dumps({"status": b.status, "notices": b.notices}),
            intake=orjson.dumps({"payments": b.payments_private, "rejections": b.rejections}),
        )
        led = self.engine.ledger
        balances = [(m, c, led.balances[(m, c)], led.available((m, c))) for m, c in self._touched]
        self._touched = set()
        cmds_after = self.cmd_count + b.n_cmds
        snapshot = None
        # Each snapshot writes the whole state, so they come at doubling intervals: O(n) in all.
        if cmds_after - self.snapshot_cmds >= max(SNAPSHOT_MIN_COMMANDS, self.snapshot_cmds):
            snapshot = (seq, self.engine.state_bytes())
            self.snapshot_block, self.snapshot_cmds = seq, cmds_after
        self.block_seq, self.cmd_count, self.block_hash, self.journal_head = seq, cmds_after, h, jhead
        return (block, balances, snapshot)

    def _write(self, sealed: _Sealed) -> None:
        if _sabotage.ACTIVE == "ack-before-commit" and self.replicator is not None:
            # SIMTEST SABOTAGE (off by default): write-behind, so a block's acks go out before it
            # is durable or replicated; it is written together with the next block.
            held, self._sabotage_held = self._sabotage_held, sealed
            if held is None:
                return
            self._write_now(held)
            self._sabotage_held = None
        self._write_now(sealed)

    def _write_now(self, sealed: _Sealed) -> None:
        block, balances, state = sealed
        try:
            # Compressed here, on the commit thread, off the engine's path.
            self.store.append(block, balances, None if state is None else _packed_snapshot(*state))
        except StoreError:
            raise
        except Exception as e:  # the engine is now ahead of the store: this process must stop
            raise SetaraError(f"storage failure, nothing acknowledged: {e}") from e
        if self.replicator is not None:
            # Durable here first, then on a majority of the stream's replicas; only then may the
            # block's instructions be acknowledged (the caller waits for this to return). A block
            # stored here but not on the stream is published when a writer next starts.
            self.replicator.publish(block)

    def replay_block(self, seq: int, first_cmd: int, n_cmds: int, time_ms: int, log: bytes, hash_: bytes) -> None:
        """A member's node: apply a block of the replicated log (already checked against its
        signed header) through the engine and store it with what it derives (journal, events,
        balances; no party data, which never leaves the operator). Raises SetaraError naming the
        block when it does not extend this store or does not replay."""
        if seq != self.block_seq + 1 or first_cmd != self.cmd_count + 1:
            raise SetaraError(f"block {seq}: does not follow block {self.block_seq} (command {self.cmd_count})")
        if block_hash(self.block_hash, seq, first_cmd, n_cmds, log) != hash_:
            raise SetaraError(f"block {seq}: its hash does not cover its log and the previous block")
        try:
            entries = orjson.loads(log)
            b = self.begin()
            rows: list[list[Any]] = []  # consecutive submissions logged one by one, replayed together
            for kind, body in entries:
                if kind == "submit" and type(body) is list:
                    rows.append(body)
                    continue
                if rows:
                    self._replay_rows(b, rows)
                    rows = []
                if kind == "submits":
                    n = len(body["id"])
                    self._stage_batch(b, body, list(range(1, n + 1)), "replica", None)
                else:
                    self.stage(b, command_from_dict(kind, body), replaying=True)
            if rows:
                self._replay_rows(b, rows)
        except (EngineError, InvariantViolation, TypeError, KeyError, ValueError, IndexError) as e:
            raise SetaraError(f"block {seq}: does not replay: {e}") from None
        if b.n_cmds != n_cmds:
            raise SetaraError(f"block {seq}: holds {b.n_cmds} commands, its header says {n_cmds}")
        b.time_ms = time_ms
        sealed = self._seal(b, log=log, log_hash=hash_) if b else None
        if sealed is None:  # a block of refused lines only: nothing to replay, but it is in the chain
            sealed = self._seal_empty(seq, first_cmd, time_ms, log)
        self._write(sealed)

    def _replay_rows(self, b: _Builder, rows: list[list[Any]]) -> None:
        """Replay submissions logged one by one (as the API's writer logs them). Runs of them that
        may settle at once (cleared, one currency, time never going back) go through the engine's
        settle_run, as a logged batch does, and leave in the block what applying them one by one
        leaves: a posting and a SETTLED status each. Any other row is applied on its own."""
        i, n = 0, len(rows)
        if n >= _ROW_RUN_MIN and _one_run(rows):
            self._replay_run(b, rows)
            return
        while i < n:
            j = i
            while j < n and len(rows[j]) == _SUBMIT_ARITY and rows[j][8] == "clear" and rows[j][11] is None \
                    and (j == i or rows[j][10] >= rows[j - 1][10]):
                j += 1
            if j - i < _ROW_RUN_MIN:
                for row in rows[i:max(j, i + 1)]:
                    self.stage(b, Submit(*row), row=row, replaying=True)
                i = max(j, i + 1)
                continue
            self._replay_run(b, rows[i:j])
            i = j

    def _replay_run(self, b: _Builder, run: list[list[Any]]) -> None:
        cols = list(zip(*run, strict=True))
        ids, debtors, creditors, currencies, amounts, fps, times = (
            list(cols[f]) for f in (0, 1, 2, 3, 4, 6, 10))
        batch = {"id": ids, "debtor": debtors, "creditor": creditors, "currency": currencies,
                 "amount_minor": amounts, "fingerprint": fps, "screening": "clear", "to_currency": None,
                 "time_ms": times}
        engine, touched = self.engine, self._touched
        i, n = 0, len(run)
        # Where rows keep failing to start a run (queues in the way), try less often: a row
        # applied on its own comes to the same either way, only the cost differs.
        retry_at, backoff = 0, 1
        while i < n:
            k = settle_run(engine, batch, i, row_times=True) if i >= retry_at else 0
            if not k:
                if i >= retry_at:
                    retry_at, backoff = i + backoff, min(backoff * 2, _ROW_RETRY_MAX)
                self.stage(b, Submit(*run[i]), row=run[i], replaying=True)
                i += 1
                continue
            j = i + k
            if k < _ROW_RUN_MIN:  # a short run saves nothing over the rows one by one
                retry_at, backoff = j + backoff, min(backoff * 2, _ROW_RETRY_MAX)
            else:
                backoff = 1
            first_seq = engine.ledger.seq - k + 1
            b.cmds.extend([["submit", r] for r in run[i:j]])
            b.n_cmds += k
            b.postings.extend(map(list, zip(range(first_seq, first_seq + k), ids[i:j], currencies[i:j],
                                            debtors[i:j], creditors[i:j], amounts[i:j], repeat("", k), strict=True)))
            b.status.extend([[p, SETTLED, None, None, t, None, None, None]
                             for p, t in zip(ids[i:j], times[i:j], strict=True)])
            touched.update(zip(debtors[i:j], currencies[i:j], strict=True))
            touched.update(zip(creditors[i:j], currencies[i:j], strict=True))
            i = j

    def _seal_empty(self, seq: int, first: int, time_ms: int, log: bytes) -> _Sealed:
        h = block_hash(self.block_hash, seq, first, 0, log)
        journal = orjson.dumps([])
        jhead = journal_block_hash(self.journal_head, journal)
        block = Block(seq=seq, first_cmd=first, n_cmds=0, time_ms=time_ms, log=log, hash=h, journal=journal,
                      journal_head=jhead, events=orjson.dumps({"status": [], "notices": []}),
                      intake=orjson.dumps({"payments": {}, "rejections": []}))
        self.block_seq, self.block_hash, self.journal_head = seq, h, jhead
        return (block, [], None)

    def snapshot(self) -> None:
        if self.block_seq == 0:
            return
        led = self.engine.ledger
        balances = [(m, c, b, led.available((m, c))) for (m, c), b in led.balances.items()]
        self.store.write_snapshot(_packed_snapshot(self.block_seq, self.engine.state_bytes()), balances)
        self.snapshot_block, self.snapshot_cmds = self.block_seq, self.cmd_count

    def execute(self, cmds: Iterable[Command]) -> list[list[Any]]:
        """Apply commands and commit them together. A refused command raises EngineError; the
        engine refuses before changing anything, so the commands before it are still committed."""
        b = self.begin()
        out = []
        try:
            for cmd in cmds:
                out.append(self.stage(b, cmd))
        finally:
            self.flush(b)
        return out

    def catch_up(self) -> int:
        """Bring the read models (payments table) up to the last block; returns its number."""
        return project(self.store)

    # ------------------------------------------------------------------ submission
    def submit_instruction(self, b: _Builder, ins: Instruction, line_no: int, source: str,
                           time_ms: int) -> Ack:
        """Stage one validated instruction in block `b`; its ack is final once `b` is flushed."""
        known = self.engine.fingerprint(ins.id)
        if known is not None:  # answer duplicates before screening anything
            return self._duplicate(b, ins.id, known, same_instruction(ins, self.party_key, known), line_no, source,
                                   time_ms)
        fp = fingerprint(ins, self.party_key)
        row, private, audits = prepare(ins, self.network, self.party_key, self.screening, time_ms, fp)
        return self.submit_row(b, row, private, audits, line_no, source)

    def _duplicate(self, b: _Builder, pid: str, known: int, same: bool, line_no: int, source: str,
                   time_ms: int) -> Ack:
        if not same:
            b.rejections.append([time_ms, source, line_no, pid, "DUPL", "id already used for a different instruction"])
            return Ack(pid, line_no, REJECTED, "DUPL", "id already used for a different instruction")
        status = self.engine.status(pid)
        assert status is not None
        return self._current_ack(pid, line_no, status)

    def submit_row(self, b: _Builder, row: list[Any], private: list[Any] | None,
                   audits: list[dict[str, Any]] | None, line_no: int, source: str) -> Ack:
        """Stage a prepared Submit row (see setara.node.intake.prepare)."""
        pid = row[0]
        known = self.engine.fingerprint(pid)
        if known is not None:
            return self._duplicate(b, pid, known, known == row[6], line_no, source, row[10])
        events = self.stage(b, Submit(*row), private, row)
        if audits:
            n = len(b.cmds) - 1
            b.notices.extend([n, "screening", {**a, "payment_id": pid}] for a in audits)
        first = events[0] if events else None
        if type(first) is StatusEvent and first.payment_id == pid:
            return Ack(pid, line_no, first.status, first.reason_code, first.reason)
        for ev in events:
            if type(ev) is StatusEvent and ev.payment_id == pid:
                return Ack(pid, line_no, ev.status, ev.reason_code, ev.reason)
        raise AssertionError("submission produced no status")  # pragma: no cover

    def _current_ack(self, pid: str, line_no: int, status: str) -> Ack:
        if status in (SETTLED, QUEUED, HELD):
            return Ack(pid, line_no, status)
        reason = self.engine.reasons.get(pid)
        if reason is None:
            return Ack(pid, line_no, status)
        return Ack(pid, line_no, status, reason[0], reason[1])

    def submit_lines(self, lines: Iterable[bytes], *, source: str = "-",
                     batch_lines: int = BATCH_LINES_DEFAULT,
                     clock: Callable[[], int] = now_ms) -> Iterator[list[Ack]]:
        """JSON Lines in, one list of acks per durable group commit out (parsed in this process)."""
        batch_lines = max(1, min(batch_lines, BATCH_LINES_MAX))
        chunks = parse_lines(iter(lines), self.network, self.party_key, batch_lines, self.screening, clock,
                             names=self.name_screening())
        return self.submit_parsed(chunks, source=source, clock=clock)

    def submit_file(self, path: str | None, *, prefix: bytes = b"", source: str = "-",
                    batch_lines: int = BATCH_LINES_DEFAULT,
                    clock: Callable[[], int] = now_ms) -> Iterator[list[Ack]]:
        """Like submit_lines for a file (None: stdin after `prefix`), parsed in worker processes."""
        batch_lines = max(1, min(batch_lines, BATCH_LINES_MAX))
        chunks = parallel_parse(path, prefix, self.network, self.party_key, batch_lines, self.screening, clock,
                                names=self.name_screening())
        return self.submit_parsed(chunks, source=source, clock=clock)

    def name_screening(self) -> NameScreening:
        """Screening of named payments for the intake, seeded with the names this store's earlier
        runs screened under the list versions now in force."""
        names = NameScreening(self.screening, self.network)
        refs = names.cache_refs()
        if refs:
            names.names.update(self.store.screened(refs, NAMES_CACHED_MAX))
        return names

    def _store_screened(self, rows: list[tuple[str, str, str, bool]]) -> None:
        by_refs: dict[str, list[tuple[str, str, bool]]] = {}
        for refs, name, country, ok in rows:
            by_refs.setdefault(refs, []).append((name, country, ok))
        for refs, entries in by_refs.items():
            self.store.add_screened(refs, entries)

    def submit_parsed(self, chunks: Iterable[list[Segment]], *, source: str = "-",
                      clock: Callable[[], int] = now_ms) -> Iterator[list[Ack]]:
        """Parsed lines in, one list of acks per chunk once its block is durable.

        Commits are pipelined: while blocks are written and fsynced on a writer thread (SQLite
        and psycopg release the GIL for that), the next chunks are applied in memory, up to
        COMMITS_IN_FLIGHT blocks ahead. A block's acks are released only once its own commit has
        returned, and blocks are written strictly in order (a block whose predecessor failed is
        refused by the store), so nothing is acknowledged before it is durable.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="setara-commit") as writer:
            inflight: deque[tuple[Future[None] | None, list[Ack]]] = deque()
            for chunk in chunks:
                b = self.begin()
                screened: list[tuple[str, str, str, bool]] = []
                acks = self._stage_chunk(b, chunk, source, clock, screened)
                sealed = self._seal(b)
                inflight.append((None if sealed is None else writer.submit(self._write, sealed), acks))
                if screened and self.writable:
                    # After the block, on the same thread: the cache only saves work, so it may lag.
                    writer.submit(self._store_screened, screened)
                while inflight and (len(inflight) > COMMITS_IN_FLIGHT or inflight[0][0] is None
                                    or inflight[0][0].done()):
                    yield from self._released(inflight.popleft())
            while inflight:
                yield from self._released(inflight.popleft())

    @staticmethod
    def _released(item: tuple[Future[None] | None, list[Ack]]) -> Iterator[list[Ack]]:
        future, acks = item
        if future is not None:
            future.result()  # durable, or raise: then neither these acks nor later ones go out
        if acks:
            yield acks

    def _stage_chunk(self, b: _Builder, chunk: list[Segment], source: str,
                     clock: Callable[[], int], screened: list[Any] | None = None) -> list[Ack]:
        """Stage a chunk of parsed input in block `b`, in input order. Its instructions are
        accepted now: they are stamped with this process's clock (intake workers parse chunks
        side by side, so their own stamps need not follow input order)."""
        acks: list[Ack] = []
        ack = acks.append
        now = max(clock(), self.engine.time_ms)
        for seg in chunk:
            if seg[0] == "batch":
                seg[1]["time_ms"] = now
                self._stage_batch(b, seg[1], seg[2], source, acks, seg[3] if len(seg) > 3 else None)
                continue
            if seg[0] == "screened":  # names the intake screened for the first time
                if screened is not None:
                    screened.extend(seg[1])
                continue
            for line_no, row, private, audits, rej in seg[1]:
                if row is None:
                    assert rej is not None
                    b.rejections.append([now, source, line_no, rej[2], rej[0], rej[1]])
                    ack(Ack(rej[2], line_no, REJECTED, rej[0], rej[1]))
                else:
                    row[10] = now
                    ack(self.submit_row(b, row, private, audits, line_no, source))
        return acks

    def _stage_batch(self, b: _Builder, batch: dict[str, Any], line_nos: list[int], source: str,
                     acks: list[Ack] | None, parties: list[Any] | None = None) -> None:
        """Stage a batch of submissions. Runs of payments that settle at once go through the
        engine's `settle_run` and are logged as one entry; any other row is staged on its own.
        `parties` holds each payment's party data (None: none), which goes to the block's
        operator-private intake record, never to the log. `acks` None: nobody is answered (a
        replayed block), so no ack is made."""
        n = len(line_nos)
        private = b.payments_private
        for i, k, row in settle_batch(self.engine, batch):
            if row is not None:
                p = None if parties is None or parties[i] is None else [None, None, parties[i]]
                ack = self.submit_row(b, row, p, None, line_nos[i], source)
                if acks is not None:
                    acks.append(ack)
                continue
            j = i + k
            first_seq = self.engine.ledger.seq - k + 1
            run = batch if k == n else {f: (v[i:j] if isinstance(v, list) else v) for f, v in batch.items()}
            b.cmds.append(["submits", run])
            b.n_cmds += k
            ids, debtors, creditors = run["id"], run["debtor"], run["creditor"]
            currencies = column(run["currency"], 0, k)
            seqs = range(first_seq, first_seq + k)
            b.postings.extend([[s, p, c, d, cr, a, ""] for s, p, c, d, cr, a in zip(
                seqs, ids, currencies, debtors, creditors, run["amount_minor"], strict=True)])
            # No status events: a logged run is, by construction, payments that settled on arrival.
            touched = self._touched
            touched.update(zip(debtors, currencies, strict=True))
            touched.update(zip(creditors, currencies, strict=True))
            if acks is not None:
                acks.extend([Ack(p, ln, SETTLED) for p, ln in zip(ids, line_nos[i:j], strict=True)])
            if parties is not None:
                private.update([(p, [None, None, q]) for p, q in zip(ids, parties[i:j], strict=True)
                                if q is not None])
            b.time_ms = column(run["time_ms"], k - 1, k)[0]

    def submit_instructions(self, items: Iterable[Instruction], *, source: str = "api",
                            clock: Callable[[], int] = now_ms) -> list[Ack]:
        """Validated instructions in, acks out after one durable group commit."""
        b = self.begin()
        acks = [self.submit_instruction(b, ins, n, source, clock()) for n, ins in enumerate(items, start=1)]
        self.flush(b)
        return acks

    # ------------------------------------------------------------------ liquidity saving
    def resolve_gridlock(self, algorithm: str = "optimise", *, respect_priority: bool = False,
                         fifo: bool = False, time_limit_s: float = 20.0, compute_lp_bound: bool = True,
                         clock: Callable[[], int] = now_ms) -> dict[str, Any]:
        """Run a liquidity-saving algorithm over the RTGS queue and settle what it selects, in one
        atomic engine step. The solver runs here in the shell; the engine re-checks feasibility in
        integers, and the log records the chosen set, so replay never depends on the solver."""
        from setara.liquidity import solve

        available, items = queue_problem(self.engine)
        summary: dict[str, Any] = {"algorithm": algorithm, "queued": len(items), "settled": 0, "value_minor": 0}
        if not items:
            return summary
        sol = solve(available, items, algorithm, respect_priority=respect_priority, fifo=fifo,
                    time_limit_s=time_limit_s, compute_lp_bound=compute_lp_bound)
        summary.update(seconds=round(sol.seconds, 4), lp_bound=sol.lp_bound)
        if sol.selected:
            self.run(SettleSet(tuple(sol.selected), algorithm, clock()))
            summary.update(settled=len(sol.selected), value_minor=sol.settled_value)
        return summary

    # ------------------------------------------------------------------ simple use cases
    def run(self, cmd: Command) -> list[Any]:
        """Apply one command durably; EngineError -> SetaraError with the engine's words."""
        try:
            return self.execute([cmd])[0]
        except EngineError as e:
            raise SetaraError(str(e)) from None
