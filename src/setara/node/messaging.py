"""ISO 20022 messages in and out of the settlement service.

Inbound pacs.008/pacs.009 become instructions (payment id = UETR), pacs.004 returns become new
transfers back (id = RtrId; the settled original never changes), camt.056 requests cancel queued or
held payments. Every inbound message gets its answer: one pacs.002 per message (camt.029 per
cancellation request). Outbound: camt.053 statements and camt.054 notifications.

Reply files are named `<sender BIC>.<MsgId>.<n>.<type>.xml` (see `write_replies`): a MsgId is
unique only per sender, and a sender may send one again, so neither alone can name a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from setara import iso20022 as iso
from setara.core import CANCELLED, HELD, QUEUED, REJECTED, SETTLED, Cancel
from setara.core.instructions import TEXT_FIELD_MAX, Instruction, payment_id_problem
from setara.core.money import parse_amount
from setara.node.node import Ack, Node
from setara.ports import now_ms

__all__ = ["REPLIES_PER_NAME_MAX", "XmlResult", "account_entries", "statement_camt053", "statement_json",
           "submit_xml", "write_notifications", "write_replies"]

ISO_STATUS = {SETTLED: "ACSC", QUEUED: "ACSP", HELD: "PDNG", REJECTED: "RJCT", CANCELLED: "RJCT"}
REPLIES_PER_NAME_MAX = 100_000  # replies to one sender's MsgId kept side by side in one directory
# Keys under which an XML instruction's own references ride with its party data (see _instruction).
_REF_KEYS = ("instr_id", "tx_id")


@dataclass
class XmlResult:
    acks: list[Ack]
    replies: list[tuple[str, bytes]] = field(default_factory=list)  # (file name, document)


def _xsd_dir(xsd_dir: Path | None) -> Path | None:
    if xsd_dir is not None:
        return xsd_dir
    env = os.environ.get(iso.XSD_DIR_ENV)
    return Path(env) if env else None


def _msg_id(prefix: str) -> str:
    return f"{prefix}{now_ms():x}{os.urandom(4).hex()}"[:35]


def submit_xml(node: Node, data: bytes, *, source: str = "-", xsd_dir: Path | None = None,
               clock: Callable[[], int] = now_ms) -> XmlResult:
    """Apply one ISO 20022 message; acks are returned only once durable."""
    created = datetime.now(UTC)
    try:
        msg = iso.parse_message(data, xsd_dir=_xsd_dir(xsd_dir))
    except iso.Iso20022Error as e:
        reply = iso.pacs002_message_rejected(e.msg_id, e.msg_type, e.reason_code, e.text,
                                             msg_id=_msg_id("SETARJ"), created_at=created,
                                             hub_bic=node.network.operator_bic, receiver_bic=e.sender_bic)
        name = _reply_name(e.sender_bic, e.msg_id or "unparsed", "pacs002")
        return XmlResult([Ack(None, 1, REJECTED, e.reason_code, e.text)], [(name, reply)])
    net = node.network
    if msg.msg_type.startswith("camt.056"):
        return _cancellations(node, msg, created, clock)
    b = node.begin()
    acks: list[Ack] = []
    statuses: list[iso.TxStatus] = []
    for n, tx in enumerate(msg.transactions, start=1):
        t = clock()
        fault = iso.hub_validate(tx, bic_to_member=net.member_by_bic, minor_units=net.minor_units)
        pid = (tx.instr_id if tx.kind == "return" else tx.uetr) or tx.end_to_end_id or f"{msg.msg_id}:{n}"
        if fault is None and (problem := payment_id_problem(pid)) is not None:
            fault = ("FF01", f"payment id {pid[:70]!r} {problem}")
        if fault is None and tx.kind == "return":
            fault = _check_return(node, tx)
        if fault is not None:
            code, text = fault
            b.rejections.append([t, source, n, pid, code, text])
            acks.append(Ack(pid, n, REJECTED, code, text))
            statuses.append(iso.TxStatus.of(tx, "RJCT", code, text[:105]))
            continue
        ins = _instruction(node, tx, pid)
        ack = node.submit_instruction(b, ins, n, source, t)
        acks.append(ack)
        statuses.append(iso.TxStatus.of(tx, ISO_STATUS.get(ack.status, "RJCT"), ack.reason_code,
                                        (ack.reason or "")[:105] or None))
    node.flush(b)
    reply = iso.pacs002(msg, statuses, msg_id=_msg_id("SETA"), created_at=created, hub_bic=net.operator_bic)
    return XmlResult(acks, [(_reply_name(msg.sender_bic, msg.msg_id, "pacs002"), reply)])


def _safe(name: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name)[:80]


def _reply_name(sender_bic: str | None, msg_id: str, kind: str) -> str:
    """`<sender BIC>.<MsgId>.<kind>.xml`; `write_replies` adds the sequence number. UNKNOWN stands
    for a sender that could not be read."""
    return f"{_safe(sender_bic or 'UNKNOWN')}.{_safe(msg_id)}.{kind}.xml"


def write_replies(out_dir: Path, replies: list[tuple[str, bytes]]) -> list[Path]:
    """Write replies named `<sender BIC>.<MsgId>.<type>.xml` as `<sender BIC>.<MsgId>.<n>.<type>.xml`,
    n the lowest number from 1 not yet taken. A file is created exclusively, never overwritten, so
    replies to the same MsgId (resubmitted, or two processes at once) all survive."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in replies:
        stem, kind, ext = name.rsplit(".", 2)
        for n in range(1, REPLIES_PER_NAME_MAX + 1):
            path = out_dir / f"{stem}.{n}.{kind}.{ext}"
            try:
                with open(path, "xb") as f:
                    f.write(doc)
            except FileExistsError:
                continue
            written.append(path)
            break
        else:
            raise OSError(f"{out_dir}: already {REPLIES_PER_NAME_MAX} replies named {stem}.*.{kind}.{ext}")
    return written


def _instruction(node: Node, tx: iso.ParsedTransaction, pid: str) -> Instruction:
    net = node.network
    debit, credit = iso.settlement_members(tx, net.member_by_bic)
    assert debit is not None and credit is not None and tx.currency and tx.amount_text
    units = net.minor_units(tx.currency)
    assert units is not None
    amount = parse_amount(tx.amount_text, units)
    parties: dict[str, Any] = {}
    for k, v in tx.screening_fields().items():
        if isinstance(v, list):
            parties[k] = [x[:TEXT_FIELD_MAX] for x in v][:16]
        else:
            parties[k] = v[:TEXT_FIELD_MAX]
    # The instruction's references beyond those Instruction has fields for travel with the party
    # data: operator-private, kept per payment in the read model, and fingerprinted, so a
    # resubmission with other references is a different instruction.
    for key, value in zip(_REF_KEYS, (tx.instr_id, tx.tx_id), strict=True):
        if value:
            parties[key] = value[:TEXT_FIELD_MAX]
    prio = 0 if (tx.priority or "").upper() in ("HIGH", "URGT") else 1
    return Instruction(
        id=pid[:64], debtor=debit, creditor=credit, currency=tx.currency, amount_minor=amount, priority=prio,
        uetr=tx.uetr, end_to_end_id=tx.end_to_end_id, msg_id=tx.msg_id, parties=dict(sorted(parties.items())),
    )


def _check_return(node: Node, tx: iso.ParsedTransaction) -> tuple[str, str] | None:
    orig = tx.original
    if orig is None:
        return ("FF01", "a return must name the original payment")
    oid = orig.uetr or orig.end_to_end_id
    status = node.engine.status(oid) if oid else None
    if status != SETTLED:
        return ("FF01", f"original payment {oid} is {'unknown' if status is None else status}; only a settled "
                        "payment can be returned")
    return None


def _cancellations(node: Node, msg: iso.ParsedMessage, created: datetime,
                   clock: Callable[[], int]) -> XmlResult:
    acks: list[Ack] = []
    replies: list[tuple[str, bytes]] = []
    for n, tx in enumerate(msg.transactions, start=1):
        orig = tx.original
        oid = (orig.uetr or orig.end_to_end_id) if orig is not None else None
        accepted, code, text = False, "NOOR", "original payment not found"
        if tx.error is not None:
            code, text = tx.error
        elif oid is not None:
            status = node.engine.status(oid)
            if status in (QUEUED, HELD):
                try:
                    node.run(Cancel(oid, clock()))
                    accepted, code, text = True, "", ""
                except Exception as e:  # refused by the engine: answer, don't crash
                    code, text = "AGNT", str(e)
            elif status is not None:
                code, text = "AGNT", f"payment is {status} and can no longer be cancelled"
        if accepted:
            assert oid is not None
            acks.append(Ack(oid, n, CANCELLED))
        else:
            acks.append(Ack(tx.instr_id or oid, n, REJECTED, code, text))
        reply = iso.camt029(tx, accepted, None if accepted else code, msg_id=_msg_id("SETC"), created_at=created,
                            reason_text=None if accepted else text[:105], hub_bic=node.network.operator_bic)
        replies.append((_reply_name(msg.sender_bic, msg.msg_id, "camt029"), reply))
    return XmlResult(acks, replies)


# ====================================================================== statements


@dataclass(frozen=True, slots=True)
class Posting:
    """One journal posting on one account, as a statement sees it."""

    seq: int
    payment_id: str
    currency: str
    amount_minor: int
    credit: bool  # for the account holder
    time_ms: int
    counterparty: str  # member or settlement agent id
    batch_id: str | None  # the netting cycle's reference when it settled in one


def _postings(node: Node, member: str | None, currency: str | None) -> Iterator[tuple[str, Posting]]:
    """(account holder, posting) for every posting, in journal order, on `member`'s accounts (all
    members' when None) in `currency` (all when None).

    A netting cycle's postings are told from the block's `cycle_closed` notices: each names the
    currency and how many payments settled in it; they are that many postings in that currency of
    the block, in journal order, none of them a settlement agent's funding or withdrawal (a
    cycled currency settles nothing else while its cycle closes).
    """
    net = node.network
    agents = {c.agent for c in net.currencies.values()}
    for b in node.store.iter_blocks():
        quota: dict[str, list[list[Any]]] = {}
        if b"cycle_closed" in b.events:
            for _cmd, kind, data in orjson.loads(b.events).get("notices", []):
                if kind == "cycle_closed" and data.get("payments"):
                    quota.setdefault(data["currency"], []).append([data["cycle"], data["payments"]])
        for seq, pid, ccy, dr, cr, amt, _rate in orjson.loads(b.journal):
            batch = None
            cycles = quota.get(ccy)
            if cycles and dr not in agents and cr not in agents:
                batch = iso.batch_reference(ccy, cycles[0][0])
                cycles[0][1] -= 1
                if not cycles[0][1]:
                    cycles.pop(0)
            if currency is not None and ccy != currency:
                continue
            if member is None or cr == member:
                yield cr, Posting(seq, pid, ccy, amt, True, b.time_ms, dr, batch)
            if member is None or dr == member:
                yield dr, Posting(seq, pid, ccy, amt, False, b.time_ms, cr, batch)


def account_entries(node: Node, member: str, currency: str) -> Iterator[tuple[int, str, int, bool, int, str]]:
    """Postings on one account: (journal seq, payment id, amount, is_credit, block time, counterparty)."""
    for _, p in _postings(node, member, currency):
        yield (p.seq, p.payment_id, p.amount_minor, p.credit, p.time_ms, p.counterparty)


def _counterparty(node: Node, other: str, currency: str) -> tuple[str | None, str]:
    """(BIC, words for AddtlTxInf) of the other side of a posting: a member or a settlement agent."""
    net = node.network
    m = net.members.get(other)
    if m is not None:
        return m.bic, f"counterparty member {other}"
    cfg = net.currencies.get(currency)
    if cfg is not None and cfg.agent == other:
        return cfg.agent_bic, f"settlement agent {other}, issuer of {currency}"
    agent = next((c for c in net.currencies.values() if c.agent == other), None)
    return (agent.agent_bic if agent else None), f"settlement agent {other}"


def _entry(node: Node, holder: str, p: Posting) -> iso.StatementEntry:
    """A posting as a camt entry, with every reference the instruction gave. Party names appear only
    on the holder's own outgoing payments: names it sent itself, never another member's customers'."""
    row = node.store.get_payment(p.payment_id)
    parties: dict[str, Any] = {}
    if row is not None and row.parties:
        try:
            parties = orjson.loads(row.parties)
        except orjson.JSONDecodeError:
            parties = {}
    bic, label = _counterparty(node, p.counterparty, p.currency)
    own = row is not None and row.debtor == holder and not p.credit

    def text(key: str, show: bool = True) -> str | None:
        v = parties.get(key) if show else None
        return v if isinstance(v, str) and v else None

    return iso.StatementEntry(
        payment_id=p.payment_id, amount_minor=p.amount_minor, credit=p.credit,
        booked_at=datetime.fromtimestamp(p.time_ms / 1000, UTC),
        end_to_end_id=row.end_to_end_id if row else None, uetr=row.uetr if row else None,
        counterparty_bic=bic, counterparty_member=p.counterparty,
        instr_id=text("instr_id"), tx_id=text("tx_id"), msg_id=row.msg_id if row else None,
        batch_id=p.batch_id, additional_info=label,
        debtor_name=text("debtor_name", own), ultimate_debtor_name=text("ultimate_debtor_name", own),
        creditor_name=text("creditor_name", own), ultimate_creditor_name=text("ultimate_creditor_name", own),
    )


def _statement_entries(node: Node, member: str, currency: str) -> list[iso.StatementEntry]:
    node.catch_up()
    return [_entry(node, member, p) for _, p in _postings(node, member, currency)]


def statement_camt053(node: Node, member: str, currency: str) -> bytes:
    """Statement of the account from the network's start to now (opening balance zero)."""
    net = node.network
    member = net.member_by_bic(member) or member
    m = net.members.get(member)
    if m is None:
        raise ValueError(f"unknown member {member}")
    units = net.minor_units(currency)
    if units is None or (member, currency) not in node.engine.ledger.balances:
        raise ValueError(f"{member} has no {currency} account")
    entries = _statement_entries(node, member, currency)
    closing = node.engine.ledger.balance((member, currency))
    now = datetime.now(UTC)
    start = entries[0].booked_at if entries else now
    return iso.camt053(m.bic, member, currency, units, 0, closing, entries, msg_id=_msg_id("SETS"),
                       created_at=now, from_to=(min(start, now), now), hub_bic=net.operator_bic,
                       account_owner_name=m.name or None)


def statement_json(node: Node, member: str, currency: str) -> dict[str, Any]:
    from setara.core.money import format_amount

    net = node.network
    member = net.member_by_bic(member) or member
    units = net.minor_units(currency)
    if units is None or (member, currency) not in node.engine.ledger.balances:
        raise ValueError(f"{member} has no {currency} account")
    entries = _statement_entries(node, member, currency)
    return {
        "member": member, "currency": currency, "opening_balance": format_amount(0, units),
        "closing_balance": format_amount(node.engine.ledger.balance((member, currency)), units),
        "available": format_amount(node.engine.ledger.available((member, currency)), units),
        "entries": [{
            "payment_id": e.payment_id, "amount": format_amount(e.amount_minor, units),
            "direction": "credit" if e.credit else "debit", "booked_at": e.booked_at.isoformat(),
            "counterparty": e.counterparty_member, "end_to_end_id": e.end_to_end_id, "uetr": e.uetr,
            # the references a camt.053 carries, for matching either form against the other
            "reference": iso.entry_reference(e.payment_id), "batch": e.batch_id, "msg_id": e.msg_id,
            "instr_id": e.instr_id, "tx_id": e.tx_id,
        } for e in entries],
    }


def write_notifications(node: Node, out_dir: Path, member: str | None = None) -> int:
    """camt.054 notifications not yet written, returning how many were written: one per settled
    payment and side (`<member>.<journal seq>.<dr|cr>.camt054.xml`), and one per member and netting
    cycle, batch-booked as on the statement (`<member>.<cycle reference>.camt054.xml`)."""
    node.catch_up()
    net = node.network
    out_dir.mkdir(parents=True, exist_ok=True)

    def write(path: Path, holder: str, postings: list[Posting]) -> None:
        m = net.members[holder]
        ccy = postings[0].currency
        doc = iso.camt054(m.bic, holder, ccy, net.minor_units(ccy) or 0, [_entry(node, holder, p) for p in postings],
                          msg_id=_msg_id("SETN"), created_at=datetime.now(UTC), hub_bic=net.operator_bic,
                          account_owner_name=m.name or None)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(doc)
        tmp.replace(path)

    written = 0
    batches: dict[Path, tuple[str, list[Posting]]] = {}  # a cycle's postings are all in one block
    for holder, p in _postings(node, member, None):
        if holder not in net.members:
            continue
        if p.batch_id is None:
            path = out_dir / f"{_safe(holder)}.{p.seq}.{'cr' if p.credit else 'dr'}.camt054.xml"
            if not path.exists():
                write(path, holder, [p])
                written += 1
        else:
            path = out_dir / f"{_safe(holder)}.{_safe(p.batch_id)}.camt054.xml"
            if path in batches or not path.exists():
                batches.setdefault(path, (holder, []))[1].append(p)
    for path, (holder, postings) in batches.items():
        write(path, holder, postings)
        written += 1
    return written
