"""Read models derived from the blocks: the `payments` table behind exports and the API, and the
`account_entries` table behind statements.

Submission only makes the block durable (that is what an acknowledgement promises); the payments
table is caught up from the blocks whenever something reads it. Its watermark moves in the same
transaction as its rows, so a crash at any point leaves it consistent, and two readers catching
up at once cannot apply a block twice.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson

from setara.core import SETTLED, Submit, column, log_commands
from setara.store import EntryRow, PaymentRow, Projection, Store

__all__ = ["project", "project_entries", "project_entries_step", "status_rows"]

PROJECT_PAYMENTS_PER_TX = 50_000
# Entry rows a catch-up writes per transaction. Small, because each transaction holds the store's
# write lock (SQLite) that the writer's next commit waits for: a statement catching up must not
# stall submissions.
PROJECT_ENTRIES_PER_TX = 4_000
_entries_lock = threading.Lock()  # one catch-up at a time in this process; the others wait, then read


def status_rows(log: list[Any], events: dict[str, Any]) -> list[list[Any]]:
    """A block's status events: those stored, and those of its batches of submissions, which are
    logged only for payments that settled on arrival and so carry no stored status."""
    rows: list[list[Any]] = events["status"]
    for kind, body in log:
        if kind == "submits":
            ids = body["id"]
            rows = rows + [[pid, SETTLED, None, None, t, None, None, None]
                           for pid, t in zip(ids, column(body["time_ms"], 0, len(ids)), strict=True)]
    return rows


def project(store: Store) -> int:
    """Catch the payments table up with the log; returns the block it now reflects."""
    upto = store.projected_upto()
    while True:
        after = upto
        pending: dict[str, PaymentRow] = {}
        updates: list[tuple[Any, ...]] = []
        last = after
        for b in store.iter_blocks(after):
            cmds = orjson.loads(b.log)
            events = orjson.loads(b.events)
            intake = orjson.loads(b.intake) if b.intake else {"payments": {}}
            private = intake.get("payments", {})
            for _, c in log_commands(cmds):
                if not isinstance(c, Submit):
                    continue
                priv = private.get(c.id)
                pending[c.id] = PaymentRow(
                    c.id, c.debtor, c.creditor, c.currency, c.amount_minor, c.to_currency,
                    None, None, None, "URGENT" if c.priority == 0 else "NORMAL", "RECEIVED", None, None,
                    c.time_ms, c.time_ms, b.seq, c.uetr,
                    priv[0] if priv else None, priv[1] if priv else None,
                    orjson.dumps(priv[2]) if priv and priv[2] else None,
                )
            for pid, status, code, reason, t, credit, provider, rate in status_rows(cmds, events):
                row = pending.get(pid)
                if row is not None:
                    row.status, row.reason_code, row.reason, row.updated_ms = status, code, reason, t
                    if credit is not None:
                        row.credit_minor, row.provider, row.rate = credit, provider, rate
                else:
                    updates.append((status, code, reason, t, credit, provider, rate, pid))
            last = b.seq
            if len(pending) + len(updates) >= PROJECT_PAYMENTS_PER_TX:
                break
        if last == after:
            return upto
        if not store.project(Projection(last, list(pending.values()), updates), after):
            upto = store.projected_upto()  # another reader projected first; continue from there
            continue
        upto = last


def project_entries(store: Store) -> int:
    """Catch the account entries table up with the log; returns the block it now reflects.

    Each posting gives two rows, one per account, with the account's balance after it (the
    journal starts from zero balances: openings are postings too) and the business day it was
    booked in. The business day comes from the blocks' `day_opened` notices; a block's postings
    belong to the day in force once that block's own notices are read (a day is opened by a block
    of its own, so this is exact for the blocks the node writes).
    """
    while not project_entries_step(store):
        pass
    return store.entries_upto()[0]


# Each account's balance after the last projected entry, per store, as of a watermark: saves a
# scan of the whole table at every catch-up.
_balances: dict[str, tuple[int, dict[tuple[str, str], int]]] = {}


def project_entries_step(store: Store, rows_max: int = PROJECT_ENTRIES_PER_TX) -> bool:
    """One bounded catch-up transaction (about `rows_max` rows); True when the entries table has
    caught up with the log. A server runs these in its writer thread between blocks."""
    with _entries_lock:
        upto, day = store.entries_upto()
        rows: list[EntryRow] = []
        balances: dict[tuple[str, str], int] | None = None
        last = upto
        blocks = store.iter_blocks(upto)
        for b in blocks:
            if balances is None:
                cached = _balances.get(store.url)
                balances = dict(cached[1]) if cached is not None and cached[0] == upto else \
                    store.last_entry_balances()
            for n in orjson.loads(b.events).get("notices", []) if b.events else []:
                if len(n) >= 3 and n[1] == "day_opened" and isinstance(n[2], dict):
                    day = int(n[2].get("business_day", day))
            for p in orjson.loads(b.journal) if b.journal else []:
                seq, pid, ccy, dr, cr, amt = p[0], p[1], p[2], p[3], p[4], p[5]
                for holder, other, credit in ((dr, cr, False), (cr, dr, True)):
                    k = (holder, ccy)
                    bal = balances.get(k, 0) + (amt if credit else -amt)
                    balances[k] = bal
                    rows.append(EntryRow(holder, ccy, seq, b.seq, pid, amt, credit, other, b.time_ms, day, bal))
            last = b.seq
            if len(rows) >= rows_max:
                break
        blocks.close()  # type: ignore[attr-defined]  # its cursor, before this connection writes
        if last == upto or balances is None:
            return True
        if not store.project_entries(rows, last, day, upto):
            _balances.pop(store.url, None)  # another process projected first; start again from its watermark
            return False
        _balances[store.url] = (last, balances)
        return False
