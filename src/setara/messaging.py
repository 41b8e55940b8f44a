"""ISO 20022 messages in and out of the settlement service.

Inbound pacs.008/pacs.009 become instructions (payment id = UETR), pacs.004 returns become new
transfers back (id = RtrId; the settled original never changes), camt.056 requests cancel queued or
held payments. Every inbound message gets its answer: one pacs.002 per message (camt.029 per
cancellation request). Outbound: camt.053 statements and camt.054 notifications.
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
from setara.engine import CANCELLED, HELD, QUEUED, REJECTED, SETTLED, Cancel
from setara.instructions import TEXT_FIELD_MAX, Instruction, payment_id_problem
from setara.money import parse_amount
from setara.service import Ack, Node, now_ms

__all__ = ["XmlResult", "account_entries", "statement_camt053", "statement_json", "submit_xml",
           "write_notifications"]

ISO_STATUS = {SETTLED: "ACSC", QUEUED: "ACSP", HELD: "PDNG", REJECTED: "RJCT", CANCELLED: "RJCT"}


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
                                             msg_id=_msg_id("SETARJ"), created_at=created)
        name = f"{_safe(e.msg_id or 'unparsed')}.pacs002.xml"
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
    reply = iso.pacs002(msg, statuses, msg_id=_msg_id("SETA"), created_at=created)
    return XmlResult(acks, [(f"{_safe(msg.msg_id)}.pacs002.xml", reply)])


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:80]


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
                            reason_text=None if accepted else text[:105])
        replies.append((f"{_safe(msg.msg_id)}.{n}.camt029.xml", reply))
    return XmlResult(acks, replies)


# ====================================================================== statements


def account_entries(node: Node, member: str, currency: str) -> Iterator[tuple[int, str, int, bool, int, str]]:
    """Postings on one account: (journal seq, payment id, amount, is_credit, block time, counterparty)."""
    for b in node.store.iter_blocks():
        for seq, pid, ccy, dr, cr, amt, _rate in orjson.loads(b.journal):
            if ccy != currency:
                continue
            if cr == member:
                yield (seq, pid, amt, True, b.time_ms, dr)
            elif dr == member:
                yield (seq, pid, amt, False, b.time_ms, cr)


def _statement_entries(node: Node, member: str, currency: str) -> list[iso.StatementEntry]:
    node.catch_up()
    net = node.network
    out = []
    for _seq, pid, amt, credit, t, other in account_entries(node, member, currency):
        row = node.store.get_payment(pid)
        other_member = net.members.get(other)
        other_bic = other_member.bic if other_member else (
            next((c.agent_bic for c in net.currencies.values() if c.agent == other), None))
        out.append(iso.StatementEntry(
            payment_id=pid, amount_minor=amt, credit=credit,
            booked_at=datetime.fromtimestamp(t / 1000, UTC),
            end_to_end_id=row.end_to_end_id if row else None, uetr=row.uetr if row else None,
            counterparty_bic=other_bic, counterparty_member=other,
        ))
    return out


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
                       created_at=now, from_to=(min(start, now), now))


def statement_json(node: Node, member: str, currency: str) -> dict[str, Any]:
    from setara.money import format_amount

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
        } for e in entries],
    }


def write_notifications(node: Node, out_dir: Path, member: str | None = None) -> int:
    """camt.054 for each settled payment, per side (debit and credit), skipping ones already
    written; returns how many files were written."""
    node.catch_up()
    net = node.network
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for b in node.store.iter_blocks():
        for seq, pid, ccy, dr, cr, amt, _rate in orjson.loads(b.journal):
            for side, holder, other, credit in (("dr", dr, cr, False), ("cr", cr, dr, True)):
                m = net.members.get(holder)
                if m is None or (member is not None and holder != member):
                    continue
                path = out_dir / f"{_safe(holder)}.{seq}.{side}.camt054.xml"
                if path.exists():
                    continue
                row = node.store.get_payment(pid)
                om = net.members.get(other)
                entry = iso.StatementEntry(
                    payment_id=pid, amount_minor=amt, credit=credit,
                    booked_at=datetime.fromtimestamp(b.time_ms / 1000, UTC),
                    end_to_end_id=row.end_to_end_id if row else None, uetr=row.uetr if row else None,
                    counterparty_bic=om.bic if om else None, counterparty_member=other,
                )
                units = net.minor_units(ccy) or 0
                doc = iso.camt054(m.bic, holder, ccy, units, entry, msg_id=_msg_id("SETN"),
                                  created_at=datetime.now(UTC))
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(doc)
                tmp.replace(path)
                written += 1
    return written
