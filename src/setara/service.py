"""The use cases around the engine: open a network, apply commands durably, submit instructions.

`Node` is the imperative shell: it loads the engine from the store (latest snapshot plus the log's
tail), stamps commands with the wall clock, applies them to the engine, and group-commits the log
rows and everything derived from the events before anyone is told the outcome.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from setara.engine import (
    HELD,
    QUEUED,
    REJECTED,
    SETTLED,
    Command,
    Engine,
    EngineError,
    Init,
    Notice,
    StatusEvent,
    Submit,
    command_from_json,
    command_kind,
    command_to_json,
)
from setara.instructions import (
    Instruction,
    Rejection,
    fingerprint,
    parse_json_instruction,
    parse_json_line,
    parties_digest,
)
from setara.ledger import InvariantViolation, Posting
from setara.network import Network
from setara.store import PaymentRow, Store, StoreError, WriteBatch, log_hash, open_store

__all__ = ["Ack", "Node", "NullScreening", "Screening", "ScreeningDecision", "SetaraError", "now_ms"]

BATCH_LINES_DEFAULT = 2000
BATCH_LINES_MAX = 50_000
SNAPSHOT_MIN_COMMANDS = 50_000
LOCK_TIMEOUT_S = 30.0


class SetaraError(RuntimeError):
    """A failure to report to the user in one line."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ScreeningDecision:
    decision: str  # clear | review | block
    ref: str  # audit reference: list version, score, matched entity
    audits: tuple[dict[str, Any], ...] = ()


class Screening(Protocol):
    def decide(self, ins: Instruction, network: Network) -> ScreeningDecision: ...


class NullScreening:
    """No list loaded: nothing is hit (the CLI warns on stderr that no list is loaded)."""

    def decide(self, ins: Instruction, network: Network) -> ScreeningDecision:
        return ScreeningDecision("clear", "no-list")


@dataclass(frozen=True, slots=True)
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


class Node:
    """One network's engine over its store."""

    def __init__(self, store: Store, engine: Engine, party_key: bytes, head: tuple[int, bytes],
                 snapshot_seq: int, writable: bool) -> None:
        self.store = store
        self.engine = engine
        self.party_key = party_key
        self.head_seq, self.head_hash = head
        self.snapshot_seq = snapshot_seq
        self.writable = writable
        self.screening: Screening = NullScreening()
        self._touched: set[tuple[str, str]] = set()
        self._writer_cm: Any = None

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
    def create(cls, url: str, network: Network, time_ms: int) -> Node:
        store = open_store(url)
        if store.exists():
            store.close()
            raise StoreError(f"{url} already holds a network")
        cm = store.writer(LOCK_TIMEOUT_S)
        cm.__enter__()
        key = os.urandom(32)
        store.create(key)
        node = cls(store, Engine(), key, store.log_head(), 0, True)
        node._writer_cm = cm
        node.execute([Init(network.to_config(), time_ms)])
        node.snapshot()
        return node

    @classmethod
    def _load(cls, store: Store, *, writable: bool) -> Node:
        key_hex = store.meta("party_key")
        if key_hex is None:
            raise StoreError("the store has no party key; it is damaged")
        snap = store.latest_snapshot()
        prev_hash = b"\x00" * 32
        after = 0
        if snap is not None:
            after, state, state_hash = snap
            if hashlib.sha256(state).hexdigest() != state_hash:
                raise StoreError("the latest snapshot is damaged (hash mismatch); run `setara verify`")
            engine = Engine.from_state(orjson.loads(state))
            if engine.applied != after:
                raise StoreError("the latest snapshot disagrees with its log position")
            rows = store.execute("SELECT hash FROM log WHERE seq = ?", (after,))
            if not rows:
                raise StoreError("the snapshot refers to a log entry that is missing")
            prev_hash = bytes(rows[0][0])
        else:
            engine = Engine()
        seq = after
        for row_seq, time_ms, kind, body, h in store.iter_log(after):
            if row_seq != seq + 1 or log_hash(prev_hash, row_seq, time_ms, kind, body) != bytes(h):
                raise StoreError(f"log entry {row_seq} breaks the hash chain; run `setara verify`")
            try:
                engine.apply(command_from_json(kind, body))
            except EngineError as e:
                raise StoreError(f"log entry {row_seq} does not replay: {e}") from None
            seq, prev_hash = row_seq, bytes(h)
        return cls(store, engine, bytes.fromhex(key_hex), (seq, prev_hash), after, writable)

    def close(self) -> None:
        try:
            if self.writable and self.head_seq - self.snapshot_seq >= max(1000, self.head_seq // 10):
                self.snapshot()
        finally:
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
    def begin(self) -> WriteBatch:
        if not self.writable:
            raise SetaraError("this node was opened read-only")
        return WriteBatch(expect_log_seq=self.head_seq)

    def stage(self, batch: WriteBatch, cmd: Command, new_payment: Instruction | None = None) -> list[Any]:
        """Apply `cmd` to the engine and add its log row and derived rows to `batch`.

        Raises EngineError (and changes nothing) when the engine refuses the command.
        """
        events = self.engine.apply(cmd)
        body = command_to_json(cmd)
        kind = command_kind(cmd)
        seq = self.head_seq + 1
        h = log_hash(self.head_hash, seq, cmd.time_ms, kind, body)
        batch.log.append((seq, cmd.time_ms, kind, body, h))
        self.head_seq, self.head_hash = seq, h
        own_status: StatusEvent | None = None
        legs: list[Posting] = []
        touched = self._touched
        for ev in events:
            if type(ev) is Posting:
                batch.journal.append((ev.seq, seq, ev.payment_id, ev.currency, ev.debit, ev.credit,
                                      ev.amount_minor, ev.rate, ev.hash))
                touched.add((ev.debit, ev.currency))
                touched.add((ev.credit, ev.currency))
                if new_payment is not None and ev.payment_id == new_payment.id:
                    legs.append(ev)
            elif type(ev) is StatusEvent:
                if new_payment is not None and ev.payment_id == new_payment.id and own_status is None:
                    own_status = ev
                    continue
                fx = self._fx_of(ev.payment_id) if ev.status != SETTLED else (None, None, None)
                batch.status_updates.append((ev.status, ev.reason_code, ev.reason, ev.time_ms,
                                             *fx, ev.payment_id))
                if ev.status in (HELD, REJECTED):
                    self._touch_payment(ev.payment_id)
            elif type(ev) is Notice:
                batch.notices.append((seq, ev.kind, orjson.dumps(ev.data)))
        if new_payment is not None:
            assert own_status is not None, "a submission always reports its own status"
            batch.payments.append(self._payment_row(new_payment, own_status, legs, seq, cmd.time_ms))
            if own_status.status == HELD:
                touched.add((new_payment.debtor, new_payment.currency))
        return events

    def _fx_of(self, pid: str) -> tuple[int | None, str | None, str | None]:
        p = self.engine.live.get(pid)
        if p is None or p.provider is None:
            return (None, None, None)
        return (p.credit_minor, p.provider, p.rate)

    def _touch_payment(self, pid: str) -> None:
        p = self.engine.live.get(pid)
        if p is not None:
            self._touched.add((p.debtor, p.currency))

    def _payment_row(self, ins: Instruction, st: StatusEvent, legs: list[Posting], seq: int,
                     time_ms: int) -> PaymentRow:
        credit_minor = provider = rate = None
        if ins.to_currency is not None:
            live = self.engine.live.get(ins.id)
            if live is not None and live.provider is not None:
                credit_minor, provider, rate = live.credit_minor, live.provider, live.rate
            elif len(legs) == 2:
                credit_minor, provider, rate = legs[1].amount_minor, legs[0].credit, legs[0].rate
        return PaymentRow(
            ins.id, ins.debtor, ins.creditor, ins.currency, ins.amount_minor, ins.to_currency,
            credit_minor, provider, rate, ins.priority_name, st.status, st.reason_code, st.reason,
            time_ms, time_ms, seq, ins.uetr, ins.end_to_end_id, ins.msg_id,
            orjson.dumps(ins.parties) if ins.parties else None,
        )

    def flush(self, batch: WriteBatch, *, check: bool = True) -> None:
        """Durably commit `batch` (fsync). Only after this may its outcome be acknowledged."""
        if not batch:
            return
        if check:
            try:
                self.engine.check()
            except InvariantViolation as e:
                raise SetaraError(f"invariant violated, nothing committed: {e}") from None
        led = self.engine.ledger
        batch.balances = [(m, c, led.balances[(m, c)], led.available((m, c))) for m, c in self._touched]
        self._touched = set()
        if self.head_seq - self.snapshot_seq >= max(SNAPSHOT_MIN_COMMANDS, self.snapshot_seq // 2):
            batch.snapshot = self._snapshot_tuple()
        try:
            self.store.commit(batch)
        except StoreError:
            raise
        except Exception as e:  # the engine is now ahead of the store: this process must stop
            raise SetaraError(f"storage failure, nothing acknowledged: {e}") from e
        if batch.snapshot is not None:
            self.snapshot_seq = batch.snapshot[0]

    def _snapshot_tuple(self) -> tuple[int, bytes, str]:
        state = self.engine.state_bytes()
        return (self.head_seq, state, hashlib.sha256(state).hexdigest())

    def snapshot(self) -> None:
        batch = WriteBatch(expect_log_seq=self.head_seq, snapshot=self._snapshot_tuple())
        led = self.engine.ledger
        batch.balances = [(m, c, b, led.available((m, c))) for (m, c), b in led.balances.items()]
        self.store.commit(batch)
        self.snapshot_seq = self.head_seq

    def execute(self, cmds: Iterable[Command]) -> list[list[Any]]:
        """Apply commands and commit them together. A refused command raises EngineError; the
        engine refuses before changing anything, so the commands before it are still committed."""
        batch = self.begin()
        out = []
        try:
            for cmd in cmds:
                out.append(self.stage(batch, cmd))
                if isinstance(cmd, Init):
                    self._touched = set(self.engine.ledger.balances)
        finally:
            self.flush(batch)
        return out

    # ------------------------------------------------------------------ submission
    def submit_instruction(self, batch: WriteBatch, ins: Instruction, line_no: int, source: str,
                           time_ms: int) -> Ack:
        eng = self.engine
        fp = fingerprint(ins)
        known = eng.fingerprint(ins.id)
        if known is not None:
            if known != fp:
                batch.rejections.append((time_ms, source, line_no, ins.id, "DUPL",
                                         "id already used for a different instruction"))
                return Ack(ins.id, line_no, REJECTED, "DUPL", "id already used for a different instruction")
            status = eng.status(ins.id)
            assert status is not None
            return self._current_ack(ins.id, line_no, status)
        decision = self.screening.decide(ins, self.network)
        cmd = Submit(
            id=ins.id, debtor=ins.debtor, creditor=ins.creditor, currency=ins.currency,
            amount_minor=ins.amount_minor, priority=ins.priority, fingerprint=fp,
            parties_digest=parties_digest(ins, self.party_key), screening=decision.decision,
            screening_ref=decision.ref, time_ms=time_ms, to_currency=ins.to_currency, quote_id=ins.quote_id,
            uetr=ins.uetr,
        )
        events = self.stage(batch, cmd, new_payment=ins)
        for a in decision.audits:
            batch.notices.append((self.head_seq, "screening", orjson.dumps({**a, "payment_id": ins.id})))
        for ev in events:
            if type(ev) is StatusEvent and ev.payment_id == ins.id:
                return Ack(ins.id, line_no, ev.status, ev.reason_code, ev.reason)
        raise AssertionError("submission produced no status")  # pragma: no cover

    def _current_ack(self, pid: str, line_no: int, status: str) -> Ack:
        if status in (SETTLED, QUEUED, HELD):
            return Ack(pid, line_no, status)
        row = self.store.get_payment(pid)
        if row is None:  # committed earlier in this very batch
            return Ack(pid, line_no, status)
        return Ack(pid, line_no, status, row.reason_code, row.reason)

    def submit_lines(self, lines: Iterable[bytes], *, source: str = "-",
                     batch_lines: int = BATCH_LINES_DEFAULT,
                     clock: Callable[[], int] = now_ms) -> Iterator[list[Ack]]:
        """JSON Lines in, one list of acks per durable group commit out."""
        batch_lines = max(1, min(batch_lines, BATCH_LINES_MAX))
        net = self.network
        batch = self.begin()
        acks: list[Ack] = []
        line_no = 0
        for line_no, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            t = clock()
            try:
                obj = parse_json_line(raw)
                ins = parse_json_instruction(obj, net)
            except Rejection as r:
                batch.rejections.append((t, source, line_no, r.payment_id, r.code, r.text))
                acks.append(Ack(r.payment_id, line_no, REJECTED, r.code, r.text))
            else:
                acks.append(self.submit_instruction(batch, ins, line_no, source, t))
            if len(acks) >= batch_lines:
                self.flush(batch)
                yield acks
                batch, acks = self.begin(), []
        self.flush(batch)
        if acks:
            yield acks

    # ------------------------------------------------------------------ simple use cases
    def run(self, cmd: Command) -> list[Any]:
        """Apply one command durably; EngineError -> SetaraError with the engine's words."""
        try:
            return self.execute([cmd])[0]
        except EngineError as e:
            raise SetaraError(str(e)) from None
