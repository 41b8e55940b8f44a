"""Account statements from the entries read model: paged, bounded, and never under the writer.

A statement reads `account_entries` (caught up from the blocks by `project_entries`), so building
one never touches the engine or waits for the writer, and every answer is bounded: a JSON page
holds at most STATEMENT_PAGE_MAX entries (keyed by journal seq: `after`, `next_after`), a camt.053
document at most STATEMENT_PAGE_MAX entries of one business day or one date range (`page`, with
the camt.053 `StmtPgntn` saying which page and whether it is the last). Each page carries the
opening and closing balance of its own range, so pages reconcile one by one.

Front ends stream a JSON page in chunks of STATEMENT_CHUNK entries and stop between chunks when
their client has gone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from lxml import etree

from setara import iso20022 as iso
from setara.core.money import format_amount
from setara.core.network import Network
from setara.node.projection import project_entries
from setara.node.usecases import Refused
from setara.ports import now_ms
from setara.store import EntryRange, EntryRow, Store

__all__ = ["STATEMENT_CHUNK", "STATEMENT_PAGE_MAX", "Account", "EntryRange", "account", "camt053_page",
           "date_range", "entry_json", "json_chunks"]

STATEMENT_PAGE_MAX = 1000  # entries in one JSON page or one camt.053 document
STATEMENT_CHUNK = 200  # entries read and written at a time, between checks that the client is still there
DATE_RANGE_DAYS_MAX = 366


@dataclass(frozen=True, slots=True)
class Account:
    member: str
    currency: str
    minor_units: int
    bic: str


def account(network: Network, member: str, currency: str) -> Account:
    """The settlement account a statement is about (the member may be named by its BIC)."""
    member = network.member_by_bic(member) or member
    m = network.members.get(member)
    if m is None:
        raise Refused("not_found", f"unknown member {member}", "member")
    units = network.minor_units(currency)
    if units is None:
        raise Refused("not_found", f"currency {currency} is not in the network", "currency")
    if (member, currency) not in network.accounts:
        raise Refused("not_found", f"{member} has no {currency} account", "currency")
    return Account(member, currency, units, m.bic)


def date_range(from_date: date | None, to_date: date | None) -> EntryRange:
    """Entries booked from the start of `from_date` to the end of `to_date` (UTC days, inclusive)."""
    if from_date is None or to_date is None:
        raise Refused("invalid", "give both from and to (UTC dates, YYYY-MM-DD)", "from" if from_date is None else "to")
    if to_date < from_date:
        raise Refused("invalid", "to is before from", "to")
    if (to_date - from_date).days >= DATE_RANGE_DAYS_MAX:
        raise Refused("invalid", f"a date range covers at most {DATE_RANGE_DAYS_MAX} days", "to")
    start = datetime(from_date.year, from_date.month, from_date.day, tzinfo=UTC)
    end = datetime(to_date.year, to_date.month, to_date.day, tzinfo=UTC) + timedelta(days=1)
    return EntryRange(from_ms=int(start.timestamp() * 1000), to_ms=int(end.timestamp() * 1000))


def _check_limit(limit: int, field: str) -> None:
    if not 1 <= limit <= STATEMENT_PAGE_MAX:
        raise Refused("invalid", f"{field} must be between 1 and {STATEMENT_PAGE_MAX}", field)


def _signed(e: EntryRow) -> int:
    return e.amount_minor if e.credit else -e.amount_minor


def entry_json(e: EntryRow, units: int, booked: dict[int, str] | None = None) -> dict[str, Any]:
    at = booked.get(e.time_ms) if booked is not None else None
    if at is None:
        at = datetime.fromtimestamp(e.time_ms / 1000, UTC).isoformat()
        if booked is not None:
            if len(booked) > STATEMENT_CHUNK:
                booked.clear()
            booked[e.time_ms] = at
    return {
        "seq": e.seq, "payment_id": e.payment_id, "amount": format_amount(e.amount_minor, units),
        "direction": "credit" if e.credit else "debit",
        "booked_at": at, "time_ms": e.time_ms,
        "business_day": e.business_day, "block": e.block, "counterparty": e.counterparty,
        "end_to_end_id": e.end_to_end_id, "uetr": e.uetr,
        "balance_after": format_amount(e.balance_after_minor, units),
    }


def json_chunks(store: Store, acct: Account, *, after: int = 0, limit: int = 100,
                rng: EntryRange | None = None, catch_up: bool = True) -> Iterator[bytes]:
    """One JSON statement page, as chunks of bytes that together are one JSON object:
    `{member, currency, range, opening_balance, entries: [...], closing_balance, count, next_after}`.

    At most `limit` (≤ STATEMENT_PAGE_MAX) entries after journal seq `after`; `next_after` is the
    seq to pass as `after` for the next page, null on the last. The caller may stop iterating
    between chunks (its client left): nothing more is read. `catch_up=False`: the caller has
    caught the entries read model up itself (a server does, in its writer thread).
    """
    _check_limit(limit, "limit")
    if after < 0:
        raise Refused("invalid", "after must be a journal seq (0 or more)", "after")
    rng = rng or EntryRange()
    if catch_up:
        project_entries(store)
    units = acct.minor_units
    opening = store.balance_before(acct.member, acct.currency, seq=after + 1)
    if rng.business_day is not None or rng.from_ms is not None:
        # Entries of the range before `after` were on earlier pages; before the range, its opening.
        first = store.entries_page(acct.member, acct.currency, rng, after_seq=after, limit=1)
        if first:
            opening = first[0].balance_after_minor - _signed(first[0])
        elif after == 0:
            opening = _range_opening(store, acct, rng)
    head = {"member": acct.member, "currency": acct.currency,
            "business_day": rng.business_day,
            "from_ms": rng.from_ms, "to_ms": rng.to_ms, "opening_balance": format_amount(opening, units)}
    yield orjson.dumps(head)[:-1] + b', "entries": ['
    balance, n, last_seq, cursor = opening, 0, after, after
    booked: dict[int, str] = {}  # entries of one block share its time
    while n < limit:
        rows = store.entries_page(acct.member, acct.currency, rng, after_seq=cursor,
                                  limit=min(STATEMENT_CHUNK, limit - n))
        if not rows:
            break
        parts = [orjson.dumps(entry_json(e, units, booked)) for e in rows]
        yield (b"," if n else b"") + b",".join(parts)
        n += len(rows)
        cursor = last_seq = rows[-1].seq
        balance = rows[-1].balance_after_minor
        if len(rows) < min(STATEMENT_CHUNK, limit - n + len(rows)):
            break
    more = n == limit and bool(store.entries_page(acct.member, acct.currency, rng, after_seq=last_seq, limit=1))
    tail = {"closing_balance": format_amount(balance, units), "count": n,
            "next_after": last_seq if more else None}
    yield b"], " + orjson.dumps(tail)[1:]


def _range_opening(store: Store, acct: Account, rng: EntryRange) -> int:
    if rng.business_day is not None:
        return store.balance_before(acct.member, acct.currency, business_day=rng.business_day)
    if rng.from_ms is not None:
        return store.balance_before(acct.member, acct.currency, time_ms=rng.from_ms)
    return 0


def _msg_id(prefix: str) -> str:
    return f"{prefix}{now_ms():x}{os.urandom(4).hex()}"[:35]


def camt053_page(store: Store, network: Network, acct: Account, rng: EntryRange, *, page: int = 1,
                 page_size: int = STATEMENT_PAGE_MAX, catch_up: bool = True) -> bytes:
    """One camt.053 document: page `page` (from 1) of the account's entries in `rng` (one business
    day or one date range; neither: the business day in force), at most `page_size`
    (≤ STATEMENT_PAGE_MAX) entries, with `StmtPgntn` (page number, last-page indicator) and the
    opening and closing balance of the page."""
    _check_limit(page_size, "page_size")
    if page < 1:
        raise Refused("invalid", "page counts from 1", "page")
    if catch_up:
        project_entries(store)
    if rng.business_day is None and rng.from_ms is None:
        rng = EntryRange(business_day=store.entries_upto()[1])  # the business day in force now
    total = store.entries_count(acct.member, acct.currency, rng)
    pages = max(1, -(-total // page_size))
    if page > pages:
        raise Refused("not_found", f"page {page} is past the last page ({pages})", "page")
    rows = store.entries_page(acct.member, acct.currency, rng, offset=(page - 1) * page_size, limit=page_size)
    opening = rows[0].balance_after_minor - _signed(rows[0]) if rows else _range_opening(store, acct, rng)
    closing = rows[-1].balance_after_minor if rows else opening
    entries = [_statement_entry(network, e) for e in rows]
    created = datetime.now(UTC)
    if rng.from_ms is not None and rng.to_ms is not None:
        start = datetime.fromtimestamp(rng.from_ms / 1000, UTC)
        end = datetime.fromtimestamp((rng.to_ms - 1) / 1000, UTC)
    elif entries:
        start, end = entries[0].booked_at, entries[-1].booked_at
    else:
        start = end = created
    msg_id = _msg_id("SETS")
    doc = iso.camt053(acct.bic, acct.member, acct.currency, acct.minor_units, opening, closing, entries,
                      msg_id=msg_id, created_at=created, from_to=(start, end))
    return _with_pagination(doc, page, page == pages)


def _statement_entry(network: Network, e: EntryRow) -> iso.StatementEntry:
    """As setara.node.messaging builds them for camt.053 and camt.054."""
    other = network.members.get(e.counterparty)
    other_bic = other.bic if other else next(
        (c.agent_bic for c in network.currencies.values() if c.agent == e.counterparty), None)
    return iso.StatementEntry(
        payment_id=e.payment_id, amount_minor=e.amount_minor, credit=e.credit,
        booked_at=datetime.fromtimestamp(e.time_ms / 1000, UTC), end_to_end_id=e.end_to_end_id, uetr=e.uetr,
        counterparty_bic=other_bic, counterparty_member=e.counterparty)


def _with_pagination(doc: bytes, page: int, last: bool) -> bytes:
    """Add camt.053 `Stmt/StmtPgntn` (it follows `Stmt/Id`). The emitter does not take it yet."""
    root = etree.fromstring(doc, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    ns = etree.QName(root).namespace
    q = (lambda t: f"{{{ns}}}{t}") if ns else (lambda t: t)
    stmt = root.find(f"{q('BkToCstmrStmt')}/{q('Stmt')}")
    if stmt is None:  # pragma: no cover - the emitter always writes one
        return doc
    pg = etree.Element(q("StmtPgntn"))
    etree.SubElement(pg, q("PgNb")).text = str(page)
    etree.SubElement(pg, q("LastPgInd")).text = "true" if last else "false"
    stmt.insert(1, pg)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out
