"""Independent verification: rebuild everything from the command log and compare.

Any member holding a copy of the log can run this: it replays every command through a fresh
engine, checks the block hash chain, re-derives every journal posting (with its own hash chain),
every status event and every payment's status and content digest, and checks conservation,
floors and "settled at most once" along the way. The first difference is reported; nothing is
repaired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from setara.core import SETTLED, Engine, EngineError, Notice, StatusEvent, Submit, command_kind, log_commands
from setara.core.instructions import Instruction, same_instruction
from setara.core.ledger import GENESIS, InvariantViolation, Posting, journal_block_hash
from setara.node.node import base_engine
from setara.node.projection import project
from setara.store import Store, StoreError, block_hash

__all__ = ["VerificationError", "VerifyReport", "verify_store"]

CHECK_EVERY_COMMANDS = 1000


class VerificationError(Exception):
    """The first violation found."""


@dataclass(frozen=True)
class VerifyReport:
    state_hash: str
    blocks: int
    commands: int
    postings: int
    payments: int


def verify_store(store: Store, progress: Callable[[int], None] | None = None) -> VerifyReport:
    base = store.base()
    try:
        start = base_engine(store)
    except StoreError as e:
        raise VerificationError(str(e)) from None
    if base is None or start is None:
        engine, prev, jhead, seq, cmds = Engine(), GENESIS, GENESIS, 0, 0
    else:
        # A node that started from a quorum-signed snapshot replays from there (the checkpoint was
        # checked when it started; `checkpoint verify` checks it again offline).
        engine, prev, jhead, seq, cmds = start, base.hash, base.journal_head, base.seq, base.cmds
        if engine.applied != cmds:
            raise VerificationError(f"the snapshot the store started from holds {engine.applied} commands, "
                                    f"block {base.seq} ends at command {cmds}")
    submitted_after_base: set[str] | None = None if base is None else set()
    postings = 0
    for b in store.iter_blocks(seq):
        seq += 1
        if b.seq != seq:
            raise VerificationError(f"block {seq} is missing (found {b.seq})")
        if b.first_cmd != cmds + 1 or block_hash(prev, b.seq, b.first_cmd, b.n_cmds, b.log) != b.hash:
            raise VerificationError(f"block {seq} does not match its hash: the log's chain is broken")
        prev = b.hash
        try:
            logged = orjson.loads(b.log)
            stored_journal = orjson.loads(b.journal)
            stored_events = orjson.loads(b.events)
        except orjson.JSONDecodeError as e:
            raise VerificationError(f"block {seq} is not readable: {e}") from None
        journal: list[list[Any]] = []
        status: list[list[Any]] = []
        notices: list[list[Any]] = []
        try:
            commands = list(log_commands(logged))
        except (EngineError, TypeError, ValueError, KeyError) as e:
            raise VerificationError(f"block {seq} holds a malformed command: {e}") from None
        if len(commands) != b.n_cmds:
            raise VerificationError(f"block {seq} holds {len(commands)} commands, its header says {b.n_cmds}")
        # A batch of submissions replays one Submit at a time, through the same rules as any other.
        for n, cmd in commands:
            cmds += 1
            if submitted_after_base is not None and type(cmd) is Submit:
                submitted_after_base.add(cmd.id)
            try:
                events = engine.apply(cmd)
            except (EngineError, TypeError, ValueError, KeyError) as e:
                raise VerificationError(f"command {cmds} (block {seq}, {command_kind(cmd)}) does not replay: {e}"
                                        ) from None
            except (InvariantViolation, AssertionError) as e:
                raise VerificationError(f"command {cmds} (block {seq}): invariant violated: {e}") from None
            if logged[n][0] == "submits":
                # Logged only for payments that settled on arrival; they have no stored status.
                if len(events) != 2 or type(events[0]) is not StatusEvent or events[0].status != SETTLED \
                        or events[0].payment_id != getattr(cmd, "id", None) \
                        or type(events[1]) is not Posting:
                    raise VerificationError(f"command {cmds} (block {seq}): logged as settled on arrival, "
                                            "but it does not settle at once on replay")
                events = events[1:]
            for ev in events:
                if type(ev) is Posting:
                    journal.append([ev.seq, ev.payment_id, ev.currency, ev.debit, ev.credit, ev.amount_minor,
                                    ev.rate])
                elif type(ev) is StatusEvent:
                    status.append([ev.payment_id, ev.status, ev.reason_code, ev.reason, ev.time_ms])
                elif type(ev) is Notice:
                    notices.append([n, ev.kind, ev.data])
            if cmds % CHECK_EVERY_COMMANDS == 0:
                _check(engine, cmds)
        postings += len(journal)
        if journal != stored_journal:
            raise VerificationError(f"block {seq}: stored journal differs from the replayed log"
                                    f"{_first_diff(stored_journal, journal)}")
        jhead = journal_block_hash(jhead, b.journal)
        if b.journal_head != jhead:
            raise VerificationError(f"block {seq}: the journal's hash chain is broken")
        got_status = [s[:5] for s in stored_events.get("status", [])]
        if got_status != status:
            raise VerificationError(f"block {seq}: stored status events differ from the replayed log"
                                    f"{_first_diff(got_status, status)}")
        got_notices = [x for x in stored_events.get("notices", []) if x[1] != "screening"]
        if got_notices != notices:
            raise VerificationError(f"block {seq}: stored notices differ from the replayed log")
        if progress is not None:
            progress(cmds)
    _check(engine, cmds)
    payments = _verify_payments(store, engine, submitted_after_base)
    _verify_balances(store, engine)
    return VerifyReport(engine.state_hash(), seq, cmds, postings, payments)


def _first_diff(stored: list[list[Any]], replayed: list[list[Any]]) -> str:
    for i, (a, b) in enumerate(zip(stored, replayed, strict=False)):
        if a != b:
            return f" at entry {i + 1}: stored {a}, replayed {b}"
    return f": {len(stored)} entries stored, {len(replayed)} replayed"


def _check(engine: Engine, cmds: int) -> None:
    try:
        engine.check()
    except InvariantViolation as e:
        raise VerificationError(f"after command {cmds}: {e}") from None


def _verify_payments(store: Store, engine: Engine, submitted_after_base: set[str] | None) -> int:
    # The payments table is derived; bring it up to date (from blocks just checked), then compare.
    project(store)
    follower = store.node_role() == "follower"
    replicated = store.replicated_upto()
    key = bytes.fromhex(store.meta("party_key") or "")
    n = 0
    for row in store.iter_payments():
        n += 1
        status = engine.status(row.id)
        if status is None:
            raise VerificationError(f"payment {row.id} is stored but not in the log")
        if status != row.status:
            raise VerificationError(f"payment {row.id} is stored as {row.status}, the log says {status}")
        try:
            parties = orjson.loads(row.parties) if row.parties else {}
        except orjson.JSONDecodeError:
            raise VerificationError(f"payment {row.id}: stored party data is not readable") from None
        if follower or row.block <= replicated:
            continue  # replicated without party data: the content digests are the primary operator's to check
        ins = Instruction(
            id=row.id, debtor=row.debtor, creditor=row.creditor, currency=row.currency,
            amount_minor=row.amount_minor, priority=0 if row.priority == "URGENT" else 1,
            to_currency=row.to_currency, uetr=row.uetr, end_to_end_id=row.end_to_end_id, parties=parties,
        )
        known = engine.fingerprint(row.id)
        if known is None or not same_instruction(ins, key, known):
            raise VerificationError(f"payment {row.id}: stored content differs from what was submitted")
    # A node started from a snapshot has the payments submitted after it (those before are in the
    # snapshot's state, not in its payments table).
    known = len(engine.live) + len(engine.final) if submitted_after_base is None else len(submitted_after_base)
    if n != known:
        raise VerificationError(f"{known} payments in the log but {n} stored")
    return n


def _verify_balances(store: Store, engine: Engine) -> None:
    led = engine.ledger
    for member, ccy, bal, avail in store.balances():
        key = (member, ccy)
        if key not in led.balances:
            raise VerificationError(f"stored balance for unknown account {member}/{ccy}")
        if led.balances[key] != bal or led.available(key) != avail:
            raise VerificationError(f"stored balance of {member}/{ccy} is {bal}, the log gives "
                                    f"{led.balances[key]}")
