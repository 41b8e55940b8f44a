"""Independent verification: rebuild everything from the command log and compare.

Any member holding a copy of the log can run this: it replays every command through a fresh
engine, checks the log's hash chain, re-derives every journal posting (with its own hash chain)
and every payment's status and content digest, and checks conservation, floors and "settled at
most once" along the way. The first difference is reported; nothing is repaired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from setara.engine import Engine, EngineError, command_from_json
from setara.instructions import Instruction, fingerprint
from setara.ledger import GENESIS, InvariantViolation, Posting
from setara.store import JournalRow, Store, log_hash

__all__ = ["VerificationError", "VerifyReport", "verify_store"]

CHECK_EVERY_COMMANDS = 1000


class VerificationError(Exception):
    """The first violation found."""


@dataclass(frozen=True)
class VerifyReport:
    state_hash: str
    commands: int
    postings: int
    payments: int


def verify_store(store: Store, progress: Callable[[int], None] | None = None) -> VerifyReport:
    engine = Engine()
    prev = GENESIS
    expected_seq = 0
    journal: Iterator[JournalRow] = store.iter_journal()
    postings = 0
    for seq, time_ms, kind, body, h in store.iter_log():
        expected_seq += 1
        if seq != expected_seq:
            raise VerificationError(f"log entry {expected_seq} is missing (found {seq})")
        if log_hash(prev, seq, time_ms, kind, body) != bytes(h):
            raise VerificationError(f"log entry {seq} does not match its hash: the chain is broken")
        prev = bytes(h)
        try:
            cmd = command_from_json(kind, bytes(body))
            events = engine.apply(cmd)
        except (EngineError, TypeError, ValueError, KeyError) as e:
            raise VerificationError(f"log entry {seq} ({kind}) does not replay: {e}") from None
        except InvariantViolation as e:
            raise VerificationError(f"log entry {seq}: invariant violated: {e}") from None
        except AssertionError as e:
            raise VerificationError(f"log entry {seq}: {e}") from None
        for ev in events:
            if type(ev) is not Posting:
                continue
            postings += 1
            row = next(journal, None)
            want = (ev.seq, seq, ev.payment_id, ev.currency, ev.debit, ev.credit, ev.amount_minor, ev.rate,
                    ev.hash)
            if row is None:
                raise VerificationError(f"journal posting {ev.seq} (payment {ev.payment_id}) is missing")
            got = tuple(bytes(x) if isinstance(x, (bytes, memoryview)) else x for x in row)
            if got != want:
                raise VerificationError(f"journal posting {ev.seq} differs from the replayed log: "
                                        f"stored {_show(got)}, replayed {_show(want)}")
        if seq % CHECK_EVERY_COMMANDS == 0:
            _check(engine, seq)
            if progress is not None:
                progress(seq)
    _check(engine, expected_seq)
    extra = next(journal, None)
    if extra is not None:
        raise VerificationError(f"journal posting {extra[0]} has no command in the log")
    payments = _verify_payments(store, engine)
    _verify_balances(store, engine)
    return VerifyReport(engine.state_hash(), expected_seq, postings, payments)


def _check(engine: Engine, seq: int) -> None:
    try:
        engine.check()
    except InvariantViolation as e:
        raise VerificationError(f"after log entry {seq}: {e}") from None


def _show(row: tuple[object, ...]) -> str:
    return "(" + ", ".join(x.hex()[:12] if isinstance(x, bytes) else repr(x) for x in row) + ")"


def _verify_payments(store: Store, engine: Engine) -> int:
    n = 0
    for row in store.iter_payments():
        n += 1
        status = engine.status(row.id)
        if status is None:
            raise VerificationError(f"payment {row.id} is stored but not in the log")
        if status != row.status:
            raise VerificationError(f"payment {row.id} is stored as {row.status}, the log says {status}")
        ins = Instruction(
            id=row.id, debtor=row.debtor, creditor=row.creditor, currency=row.currency,
            amount_minor=row.amount_minor, priority=0 if row.priority == "URGENT" else 1,
            to_currency=row.to_currency, uetr=row.uetr, end_to_end_id=row.end_to_end_id,
            parties=orjson.loads(row.parties) if row.parties else {},
        )
        if fingerprint(ins) != engine.fingerprint(row.id):
            raise VerificationError(f"payment {row.id}: stored content differs from what was submitted")
    known = len(engine.live) + len(engine.final)
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
