"""The bulk path: runs of submissions that settle at once, settled without commands or events.

In bulk the common case is a plain payment (one currency, cleared by screening) whose debtor can
pay and behind which nothing waits. `settle_run` settles the longest run of such payments straight
through the ledger's `move_run`; every other row goes through `Engine.apply`. Settling a run here
and applying its rows one by one give the same state; `verify` replays every logged batch through
`apply` and compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from setara.core.commands import Submit, column, command_from_dict, first_repeat, submits_rows

if TYPE_CHECKING:
    from setara.core.engine import Engine

__all__ = ["SETTLE_WINDOW_FIRST", "apply_logged", "fast_limit", "settle_batch", "settle_run"]

SETTLE_WINDOW_FIRST = 4  # rows settle_run looks at first; it doubles while they all settle


def fast_limit(engine: Engine, debtor: str, creditor: str, currency: str) -> int:
    """The largest amount a same-currency payment of this pair may settle at once by the fast
    rule, or -1 where the pair never qualifies (refused, or settled in cycles, or the day is
    closed). Cached in the engine until the next command that is not a Submit."""
    key = (debtor, creditor, currency)
    limit = -1
    if engine.static_refusal(debtor, creditor, currency) is None and engine.day_open \
            and engine.net().currencies[currency].settlement == "rtgs" \
            and (creditor, currency) in engine.ledger.balances:
        limit = engine.amount_limit(currency)
    engine.fast[key] = limit
    return limit


def settle_run(engine: Engine, batch: dict[str, Any], start: int, *, row_times: bool = False) -> int:
    """From row `start` of a batch of submissions (see `submits_rows`), settle the longest run of
    payments that each settle at once and release no queued payment. Returns the run's length; 0
    when row `start` is not that case and nothing changed (then apply it as a Submit).

    `row_times`: `batch["time_ms"]` holds each row's own time, never earlier than the row before
    (the caller checks): submissions logged one by one, replayed as a run. The engine's time
    moves to the last settled row's, as applying them one by one would."""
    if batch["screening"] != "clear" or batch["to_currency"] is not None:
        return 0
    n = len(batch["id"])
    t = batch["time_ms"]
    if row_times:
        if t[start] < engine.time_ms:
            return 0
    # A batch shares one time stamp; anything else (or time going backwards) takes the full path.
    elif isinstance(t, list) or t < engine.time_ms:
        return 0
    else:
        engine.time_ms = t
    if not _may_start(engine, batch, start):
        return 0
    # In windows of doubling size: a run that stops early has cost little more than its length,
    # so a batch that keeps stopping (queues, repeats) stays linear, not quadratic.
    done, window = 0, SETTLE_WINDOW_FIRST
    # What each debtor/creditor/currency may do, worked out once per run: nothing a run does (it
    # settles payments that release none and queue none) changes a queue, a limit or the day.
    accounts: dict[tuple[str, str], int] = {}
    entries: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    while start + done < n:
        end = min(n, start + done + window)
        k = _settle_window(engine, batch, start + done, end, accounts, entries)
        done += k
        if start + done < end:
            break
        window *= 2
    if row_times and done:
        engine.time_ms = t[start + done - 1]
    engine.applied += done
    return done


def _may_start(engine: Engine, batch: dict[str, Any], start: int) -> bool:
    """False when row `start` cannot settle at once by the fast rule whatever the balances (its id
    is known, its pair never qualifies, a queue is in the way, its amount is out of bounds): the
    usual way a run ends, answered without building a window. True: the window decides."""
    pid = batch["id"][start]
    if pid in engine.final or pid in engine.live:
        return False
    cur = batch["currency"]
    currency = cur[start] if isinstance(cur, list) else cur
    debtor, creditor = batch["debtor"][start], batch["creditor"][start]
    limit = engine.fast.get((debtor, creditor, currency))
    if limit is None:
        limit = fast_limit(engine, debtor, creditor, currency)
    queues = engine.queues
    return 0 < batch["amount_minor"][start] <= limit and not queues.get((debtor, currency)) \
        and not queues.get((creditor, currency)) and not engine.pvp_waiting.get((creditor, currency))


def settle_batch(engine: Engine, batch: dict[str, Any]) -> Iterator[tuple[int, int, list[Any] | None]]:
    """Walk a batch of submissions: yields (i, k, None) when `settle_run` settled rows i..i+k-1,
    and (i, 0, row) when row i is for the full path, which the caller applies (as a Submit, or
    through the shell's duplicate handling) before asking for the next."""
    rows: list[list[Any]] | None = None  # made once, if any row needs it
    i, n = 0, len(batch["id"])
    while i < n:
        k = settle_run(engine, batch, i)
        if k:
            yield i, k, None
            i += k
        else:
            rows = rows or submits_rows(batch)
            yield i, 0, rows[i]
            i += 1


def _settle_window(engine: Engine, batch: dict[str, Any], start: int, end: int,
                   accounts: dict[tuple[str, str], int], entries: dict[tuple[str, str, str], tuple[int, int, int]],
                   ) -> int:
    ids = batch["id"][start:end]
    n = len(ids)
    final, live = engine.final, engine.live
    if not (final.keys().isdisjoint(ids) and live.keys().isdisjoint(ids) and len(set(ids)) == n):
        n = first_repeat(ids, final, live)  # the full path answers a repeated id
        ids = ids[:n]
        end = start + n
    triples = list(zip(batch["debtor"][start:end], batch["creditor"][start:end],
                       column(batch["currency"], start, end), strict=True))
    # One entry per debtor/creditor/currency: the largest amount that settles at once by the fast
    # rule (-1: never), and the two accounts by position (kept from the run's earlier windows).
    queues, pvp, cached = engine.queues, engine.pvp_waiting, engine.fast
    for t in dict.fromkeys(triples):  # in first-seen order: no set iteration in the engine
        if t in entries:
            continue
        debtor, creditor, currency = t
        limit = cached.get(t)
        if limit is None:
            limit = fast_limit(engine, debtor, creditor, currency)
        debit, credit = (debtor, currency), (creditor, currency)
        # A payment behind a queue waits, and liquidity to an account with payments waiting
        # releases them: both are for the full path, which does it in order.
        if limit < 0 or queues.get(debit) or queues.get(credit) or pvp.get(credit):
            entries[t] = (-1, 0, 0)
        else:
            entries[t] = (limit, accounts.setdefault(debit, len(accounts)),
                          accounts.setdefault(credit, len(accounts)))
    k = engine.ledger.move_run(list(accounts), list(map(entries.__getitem__, triples)),
                               batch["amount_minor"][start:end])
    if k:
        final.update(zip(ids[:k], [fp << 2 for fp in batch["fingerprint"][start:start + k]],  # | SETTLED
                         strict=True))
    return k


def apply_logged(engine: Engine, entries: Iterable[Sequence[Any]]) -> None:
    """Apply a block's log entries, as when a node loads: batches of submissions go through
    `settle_run` (to the same state as `apply`, which `verify` uses instead)."""
    for kind, body in entries:
        if kind != "submits":
            engine.apply(command_from_dict(kind, body))
            continue
        for _, _, row in settle_batch(engine, body):
            if row is not None:
                engine.apply(Submit(*row))
