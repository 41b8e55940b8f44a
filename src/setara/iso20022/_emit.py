"""ISO 20022 messages out: pacs.002, pacs.004, camt.053, camt.054, camt.029.

Every builder writes elements in schema order and only puts in a value that the schema's facets
admit (length, pattern, digits): an id the member sent that the schema would refuse is left out
rather than truncated, since a truncated reference would point at the wrong payment. Tests check
each builder's output against the official XSD.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from lxml import etree

from setara.core.money import format_amount

from ._model import OriginalRef, ParsedMessage, ParsedTransaction, StatementEntry, TxStatus
from ._rules import BIC_RE, UETR_RE

__all__ = [
    "batch_reference",
    "camt029",
    "camt053",
    "camt054",
    "entry_reference",
    "pacs002",
    "pacs002_message_rejected",
    "pacs004",
    "with_app_header",
]

_ISO_NS = "urn:iso:std:iso:20022:tech:xsd:"
_CODE_RE = re.compile(r"^[A-Z0-9]{4}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?$")
_TZ_MAX = timedelta(hours=14)  # XSD dateTime's bound on a time zone offset


def _valid_datetime(text: str) -> bool:
    """An ISODateTime the schema accepts, to echo as sent: its shape, and values in range (a
    flipped byte can make a well-shaped 10:00:60, which the XSD refuses; found by Hypothesis)."""
    if not _DATETIME_RE.match(text):
        return False
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return False
    offset = value.utcoffset()
    return offset is None or abs(offset) <= _TZ_MAX


_DECIMAL_RE = re.compile(r"^(\d+)(?:\.(\d{1,5}))?$")
_CCY_RE = re.compile(r"^[A-Z]{3}$")
_TX_STATUSES = frozenset({"ACSC", "ACSP", "ACCP", "ACTC", "ACCC", "ACWC", "PDNG", "RJCT"})
_STATUSES_MAX = 10_000
_ENTRIES_MAX = 100_000
_DIGITS_MAX = 18  # totalDigits of every ISO amount and decimal type
# Characters XML 1.0 cannot carry at all; lxml refuses them, so free text is cleaned of them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NAME_MAX = 140  # Max140Text: party names
_OWN_REF_RE = re.compile(r"[!-~]{1,35}")  # a payment id used as its own reference
# The forms references of other kinds take; a payment id of one of these forms is never used as
# its own reference, so no two payments (or a payment and a netting cycle) can share one.
_RESERVED_REF_RE = re.compile(r"[0-9a-f]{32}|H[0-9a-f]{34}|CYC-[A-Z]{3}-[0-9]{1,20}")


def entry_reference(payment_id: str) -> str:
    """The reference (at most 35 characters) of a payment on camt.053/camt.054: NtryRef and
    AcctSvcrRef. One to one with the payment id:

    - an id of 1 to 35 printable ASCII characters is its own reference, unless it has one of the
      reserved forms below;
    - a UETR (the id of a payment submitted in XML) gives its 32 hex digits, without hyphens;
    - any other id gives "H" and the first 34 hex digits of its BLAKE2b-136 digest.
    """
    if _OWN_REF_RE.fullmatch(payment_id) and not _RESERVED_REF_RE.fullmatch(payment_id):
        return payment_id
    if UETR_RE.fullmatch(payment_id):  # fullmatch: "$" alone would let a trailing newline through
        return payment_id.replace("-", "")
    return "H" + hashlib.blake2b(payment_id.encode("utf-8", "surrogatepass"), digest_size=17).hexdigest()


def batch_reference(currency: str, cycle: int) -> str:
    """The reference of a batch-booked netting cycle: CYC-<currency>-<cycle number>."""
    _require(bool(_CCY_RE.match(currency)) and cycle >= 0, f"no batch reference for {currency!r} cycle {cycle}")
    return f"CYC-{currency}-{cycle}"


class _Doc:
    def __init__(self, msg_type: str) -> None:
        self.ns = _ISO_NS + msg_type
        self.root = etree.Element(f"{{{self.ns}}}Document", nsmap={None: self.ns})  # type: ignore[dict-item]

    def sub(self, parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
        el = etree.SubElement(parent, f"{{{self.ns}}}{tag}", attrib)
        if text is not None:
            el.text = text
        return el

    def opt(self, parent: etree._Element, tag: str, text: str | None) -> None:
        if text is not None:
            self.sub(parent, tag, text)

    def agent(self, parent: etree._Element, tag: str, bic: str) -> etree._Element:
        el = self.sub(parent, tag)
        self.sub(self.sub(el, "FinInstnId"), "BICFI", bic)
        return el

    def amount(self, parent: etree._Element, tag: str, minor: int, units: int, currency: str) -> None:
        self.sub(parent, tag, _decimal(minor, units), Ccy=currency)

    def reason(
        self, parent: etree._Element, tag: str, code: str | None, text: str | None, *, coded: bool = True
    ) -> None:
        """<tag><Rsn><Cd/></Rsn><AddtlInf/>…</tag>; a code that is not an ISO code becomes NARR
        with the code kept in the narrative. `coded=False` writes the narrative alone."""
        info = []
        if code is not None and not _CODE_RE.match(code):
            info.append(code)
            code = "NARR"
        if text:
            info.append(text)
        el = self.sub(parent, tag)
        if coded:
            self.sub(self.sub(el, "Rsn"), "Cd", code or "NARR")
        joined = " ".join(_NOT_XML.sub("", " ".join(info)).split())
        for start in range(0, min(len(joined), 2 * 105), 105):  # AddtlInf is Max105Text
            self.sub(el, "AddtlInf", joined[start : start + 105])

    def serialize(self) -> bytes:
        return etree.tostring(self.root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _id(value: str | None) -> str | None:
    ok = value is not None and 1 <= len(value) <= 35 and value.strip() and not _NOT_XML.search(value)
    return value if ok else None


def _uetr(value: str | None) -> str | None:
    return value if value is not None and UETR_RE.match(value) else None


def _bic(value: str | None) -> str | None:
    return value if value is not None and BIC_RE.match(value) else None


def _datetime(value: datetime) -> str:
    # CBPR+ wants an explicit offset; a naive time from our own shell is UTC by convention.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="seconds")


def _decimal(minor: int, units: int) -> str:
    if minor < 0:
        raise ValueError(f"amount {minor} must not be negative here; direction goes in CdtDbtInd")
    text = format_amount(minor, units)
    if len(text.replace(".", "")) > _DIGITS_MAX:
        raise ValueError(f"amount {text} has more than {_DIGITS_MAX} digits, the ISO 20022 maximum")
    return text


def _amount_text(text: str | None, currency: str | None) -> tuple[str, str] | None:
    """A member's amount text, only if the schema would take it back."""
    if text is None or currency is None or not _CCY_RE.match(currency):
        return None
    m = _DECIMAL_RE.match(text)
    if m is None or len(m.group(1)) + len(m.group(2) or "") > _DIGITS_MAX:
        return None
    return text, currency


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_id(value: str, what: str) -> None:
    _require(1 <= len(value) <= 35, f"{what} must be 1 to 35 characters, got {len(value)}")


def _require_bic(value: str, what: str) -> None:
    _require(bool(BIC_RE.match(value)), f"{what} {value!r} is not a well-formed BIC")


def _group_status(codes: Sequence[str]) -> str:
    distinct = set(codes)
    if len(distinct) == 1:
        return codes[0]
    if "RJCT" in distinct:
        return "PART"  # some rejected, some not
    if "PDNG" in distinct:
        return "PDNG"
    return "ACSP"


def _original_group(
    d: _Doc, parent: etree._Element, tag: str, msg_id: str | None, msg_type: str | None
) -> None:
    if _id(msg_id) is None or _id(msg_type) is None:
        return
    grp = d.sub(parent, tag)
    d.sub(grp, "OrgnlMsgId", msg_id)
    d.sub(grp, "OrgnlMsgNmId", msg_type)


def pacs002(
    original: ParsedMessage,
    statuses: Sequence[TxStatus],
    *,
    msg_id: str,
    created_at: datetime,
    hub_bic: str | None = None,
) -> bytes:
    """pacs.002.001.10 answering one member message: a group status and one TxInfAndSts a status.
    `hub_bic` (the operator's BIC) is the instructing agent; without one, GrpHdr/InstgAgt is left out."""
    _require_id(msg_id, "msg_id")
    _check_hub(hub_bic)
    _require(0 < len(statuses) <= _STATUSES_MAX, f"give 1 to {_STATUSES_MAX} statuses, got {len(statuses)}")
    for s in statuses:
        _require(s.status in _TX_STATUSES, f"status {s.status!r} is not one of {sorted(_TX_STATUSES)}")
        _require(s.status != "RJCT" or bool(s.reason_code), "a RJCT status needs a reason code")
    d = _Doc("pacs.002.001.10")
    rpt = d.sub(d.root, "FIToFIPmtStsRpt")
    _status_header(d, rpt, msg_id, created_at, hub_bic, original.sender_bic)
    codes = [s.status for s in statuses]
    og = d.sub(rpt, "OrgnlGrpInfAndSts")
    d.sub(og, "OrgnlMsgId", _id(original.msg_id) or "NOTPROVIDED")
    d.sub(og, "OrgnlMsgNmId", _id(original.msg_type) or "NOTPROVIDED")
    created = original.created_at_text
    d.opt(og, "OrgnlCreDtTm", created if created and _valid_datetime(created) else None)
    d.sub(og, "OrgnlNbOfTxs", str(len(original.transactions)))
    d.sub(og, "GrpSts", _group_status(codes))
    for code in sorted(set(codes)):
        per = d.sub(og, "NbOfTxsPerSts")
        d.sub(per, "DtldNbOfTxs", str(codes.count(code)))
        d.sub(per, "DtldSts", code)
    for s in statuses:
        tx = d.sub(rpt, "TxInfAndSts")
        _original_group(d, tx, "OrgnlGrpInf", original.msg_id, original.msg_type)
        d.opt(tx, "OrgnlInstrId", _id(s.instr_id))
        d.opt(tx, "OrgnlEndToEndId", _id(s.end_to_end_id))
        d.opt(tx, "OrgnlTxId", _id(s.tx_id))
        d.opt(tx, "OrgnlUETR", _uetr(s.uetr))
        d.sub(tx, "TxSts", s.status)
        if s.reason_code or s.reason_text:
            d.reason(tx, "StsRsnInf", s.reason_code, s.reason_text)
    return d.serialize()


def pacs002_message_rejected(
    original_msg_id: str | None,
    original_msg_type: str | None,
    reason_code: str,
    reason_text: str | None,
    *,
    msg_id: str,
    created_at: datetime,
    hub_bic: str | None = None,
    receiver_bic: str | None = None,
) -> bytes:
    """pacs.002.001.10 rejecting a whole message that could not be parsed into transactions
    (see Iso20022Error.msg_id / .msg_type). Unknown ids are sent as NOTPROVIDED."""
    _require_id(msg_id, "msg_id")
    _check_hub(hub_bic)
    d = _Doc("pacs.002.001.10")
    rpt = d.sub(d.root, "FIToFIPmtStsRpt")
    _status_header(d, rpt, msg_id, created_at, hub_bic, receiver_bic)
    og = d.sub(rpt, "OrgnlGrpInfAndSts")
    d.sub(og, "OrgnlMsgId", _id(original_msg_id) or "NOTPROVIDED")
    d.sub(og, "OrgnlMsgNmId", _id(original_msg_type) or "NOTPROVIDED")
    d.sub(og, "GrpSts", "RJCT")
    d.reason(og, "StsRsnInf", reason_code, reason_text)
    return d.serialize()


def _check_hub(hub_bic: str | None) -> None:
    if hub_bic is not None:
        _require_bic(hub_bic, "hub_bic")


def _status_header(
    d: _Doc, rpt: etree._Element, msg_id: str, created_at: datetime, hub_bic: str | None, to_bic: str | None
) -> None:
    hdr = d.sub(rpt, "GrpHdr")
    d.sub(hdr, "MsgId", msg_id)
    d.sub(hdr, "CreDtTm", _datetime(created_at))
    if hub_bic is not None:
        d.agent(hdr, "InstgAgt", hub_bic)
    if _bic(to_bic) is not None and to_bic is not None:
        d.agent(hdr, "InstdAgt", to_bic)


def _account(
    d: _Doc, parent: etree._Element, owner_bic: str, owner_name: str | None, member_id: str, currency: str,
    hub_bic: str | None,
) -> None:
    acct = d.sub(parent, "Acct")
    othr = d.sub(d.sub(acct, "Id"), "Othr")
    d.sub(othr, "Id", f"{member_id}/{currency}")
    d.sub(othr, "Issr", "SETARA")
    d.sub(acct, "Ccy", currency)
    owner = d.sub(acct, "Ownr")
    d.opt(owner, "Nm", _name(owner_name))
    d.sub(d.sub(d.sub(owner, "Id"), "OrgId"), "AnyBIC", owner_bic)
    if hub_bic is not None:
        d.agent(acct, "Svcr", hub_bic)


def _name(value: str | None) -> str | None:
    # A name is for people to read, not a key to match on: cut to the schema's length rather than
    # dropped.
    text = " ".join(_NOT_XML.sub("", value).split())[:_NAME_MAX] if value else ""
    return text or None


def _check_account_args(owner_bic: str, member_id: str, currency: str, units: int, hub_bic: str | None) -> None:
    _require_bic(owner_bic, "account_owner_bic")
    _check_hub(hub_bic)
    _require(bool(_CCY_RE.match(currency)), f"currency {currency!r} is not three upper-case letters")
    _require(0 <= units <= 5, f"minor_units must be 0..5, got {units}")
    _require(1 <= len(member_id) <= 30, "member_id must be 1 to 30 characters (account id is Max34Text)")
    _require(not _NOT_XML.search(member_id), "member_id holds characters XML cannot carry")


def _check_entry(e: StatementEntry) -> None:
    _require(e.amount_minor > 0, f"entry {e.payment_id}: amount_minor must be > 0, got {e.amount_minor}")
    _require(e.batch_id is None or _id(e.batch_id) is not None,
             f"entry {e.payment_id}: batch_id must be 1 to 35 characters")


def _grouped(entries: Sequence[StatementEntry]) -> list[tuple[str | None, list[StatementEntry]]]:
    """Entries as camt entries: batch-booked payments (same batch_id) become one entry, placed
    where the first of them was."""
    out: list[tuple[str | None, list[StatementEntry]]] = []
    batches: dict[str, list[StatementEntry]] = {}
    for e in entries:
        if e.batch_id is None:
            out.append((None, [e]))
        elif e.batch_id in batches:
            batches[e.batch_id].append(e)
        else:
            batches[e.batch_id] = [e]
            out.append((e.batch_id, batches[e.batch_id]))
    return out


def _net(entries: Sequence[StatementEntry]) -> int:
    return sum(e.amount_minor if e.credit else -e.amount_minor for e in entries)


def _entries(
    d: _Doc,
    parent: etree._Element,
    entries: Sequence[StatementEntry],
    owner_bic: str,
    currency: str,
    units: int,
) -> None:
    for batch_id, members in _grouped(entries):
        net = _net(members)
        booked = max(e.booked_at for e in members)
        ref = batch_id if batch_id is not None else entry_reference(members[0].payment_id)
        ntry = d.sub(parent, "Ntry")
        d.sub(ntry, "NtryRef", ref)
        d.amount(ntry, "Amt", abs(net), units, currency)
        d.sub(ntry, "CdtDbtInd", "CRDT" if net >= 0 else "DBIT")
        d.sub(d.sub(ntry, "Sts"), "Cd", "BOOK")
        d.sub(d.sub(ntry, "BookgDt"), "DtTm", _datetime(booked))
        d.sub(d.sub(ntry, "ValDt"), "Dt", booked.date().isoformat())
        d.sub(ntry, "AcctSvcrRef", ref)
        _bank_tx_code(d, ntry, net >= 0)
        dtls = d.sub(ntry, "NtryDtls")
        if batch_id is not None:
            btch = d.sub(dtls, "Btch")
            d.sub(btch, "PmtInfId", ref)
            d.sub(btch, "NbOfTxs", str(len(members)))
            d.amount(btch, "TtlAmt", abs(net), units, currency)
            d.sub(btch, "CdtDbtInd", "CRDT" if net >= 0 else "DBIT")
        for e in members:
            _tx_details(d, dtls, e, owner_bic, currency, units)


def _bank_tx_code(d: _Doc, parent: etree._Element, credit: bool) -> None:
    # ISO bank transaction code: Payments / received or issued credit transfer / cross-border.
    domn = d.sub(d.sub(parent, "BkTxCd"), "Domn")
    d.sub(domn, "Cd", "PMNT")
    fmly = d.sub(domn, "Fmly")
    d.sub(fmly, "Cd", "RCDT" if credit else "ICDT")
    d.sub(fmly, "SubFmlyCd", "XBCT")


def _tx_details(
    d: _Doc, parent: etree._Element, e: StatementEntry, owner_bic: str, currency: str, units: int
) -> None:
    tx = d.sub(parent, "TxDtls")
    refs = d.sub(tx, "Refs")
    d.opt(refs, "MsgId", _id(e.msg_id))
    d.sub(refs, "AcctSvcrRef", entry_reference(e.payment_id))
    d.opt(refs, "PmtInfId", _id(e.pmt_inf_id))
    d.opt(refs, "InstrId", _id(e.instr_id))
    d.opt(refs, "EndToEndId", _id(e.end_to_end_id))
    d.opt(refs, "UETR", _uetr(e.uetr))
    d.opt(refs, "TxId", _id(e.tx_id))
    d.amount(tx, "Amt", e.amount_minor, units, currency)
    d.sub(tx, "CdtDbtInd", "CRDT" if e.credit else "DBIT")
    _bank_tx_code(d, tx, e.credit)
    _related_parties(d, tx, e)
    counterparty = _bic(e.counterparty_bic)
    debtor_bic, creditor_bic = (counterparty, owner_bic) if e.credit else (owner_bic, counterparty)
    agts = d.sub(tx, "RltdAgts")
    if debtor_bic is not None:
        d.agent(agts, "DbtrAgt", debtor_bic)
    if creditor_bic is not None:
        d.agent(agts, "CdtrAgt", creditor_bic)
    info = e.additional_info or f"counterparty {e.counterparty_member}"
    if entry_reference(e.payment_id) != e.payment_id:
        info = f"Setara payment {e.payment_id}; {info}"
    info = " ".join(_NOT_XML.sub("", info).split())
    if info:
        d.sub(tx, "AddtlTxInf", info[:500])


def _related_parties(d: _Doc, parent: etree._Element, e: StatementEntry) -> None:
    names = [(tag, _name(v)) for tag, v in (("Dbtr", e.debtor_name), ("UltmtDbtr", e.ultimate_debtor_name),
                                            ("Cdtr", e.creditor_name), ("UltmtCdtr", e.ultimate_creditor_name))]
    if not any(v for _, v in names):
        return
    pties = d.sub(parent, "RltdPties")
    for tag, name in names:
        if name is not None:
            d.sub(d.sub(d.sub(pties, tag), "Pty"), "Nm", name)


def _summary(d: _Doc, parent: etree._Element, entries: Sequence[StatementEntry], units: int) -> None:
    # Counted per camt entry, so a batch-booked cycle counts once, for its net amount.
    nets = [_net(members) for _, members in _grouped(entries)]
    credits = [n for n in nets if n >= 0]
    debits = [-n for n in nets if n < 0]
    net = sum(nets)
    summary = d.sub(parent, "TxsSummry")
    total = d.sub(summary, "TtlNtries")
    d.sub(total, "NbOfNtries", str(len(nets)))
    d.sub(total, "Sum", _decimal(sum(credits) + sum(debits), units))
    net_el = d.sub(total, "TtlNetNtry")
    d.sub(net_el, "Amt", _decimal(abs(net), units))
    d.sub(net_el, "CdtDbtInd", "CRDT" if net >= 0 else "DBIT")
    for tag, amounts in (("TtlCdtNtries", credits), ("TtlDbtNtries", debits)):
        el = d.sub(summary, tag)
        d.sub(el, "NbOfNtries", str(len(amounts)))
        d.sub(el, "Sum", _decimal(sum(amounts), units))


def _balance(
    d: _Doc, parent: etree._Element, code: str, minor: int, units: int, currency: str, at: datetime
) -> None:
    bal = d.sub(parent, "Bal")
    d.sub(d.sub(d.sub(bal, "Tp"), "CdOrPrtry"), "Cd", code)
    d.amount(bal, "Amt", abs(minor), units, currency)
    # A balance below zero (a used credit line) is a debit balance, never a negative amount.
    d.sub(bal, "CdtDbtInd", "CRDT" if minor >= 0 else "DBIT")
    d.sub(d.sub(bal, "Dt"), "DtTm", _datetime(at))


def camt053(
    account_owner_bic: str,
    member_id: str,
    currency: str,
    minor_units: int,
    opening_balance_minor: int,
    closing_balance_minor: int,
    entries: Sequence[StatementEntry],
    *,
    msg_id: str,
    created_at: datetime,
    from_to: tuple[datetime, datetime],
    hub_bic: str | None = None,
    account_owner_name: str | None = None,
) -> bytes:
    """camt.053.001.08 statement of one settlement account (member, currency) over `from_to`.

    Every entry must be a booked movement of the period, and opening + credits - debits must equal
    closing: a statement that does not reconcile is refused (ValueError), never sent.
    """
    _check_account_args(account_owner_bic, member_id, currency, minor_units, hub_bic)
    _require_id(msg_id, "msg_id")
    _require(len(entries) <= _ENTRIES_MAX, f"at most {_ENTRIES_MAX} entries a statement")
    for e in entries:
        _check_entry(e)
    movement = _net(entries)
    _require(
        opening_balance_minor + movement == closing_balance_minor,
        f"statement does not reconcile: opening {opening_balance_minor} + entries {movement} "
        f"!= closing {closing_balance_minor} (minor units)",
    )
    _require(from_to[0] <= from_to[1], "from_to must run forwards")
    d = _Doc("camt.053.001.08")
    body = d.sub(d.root, "BkToCstmrStmt")
    hdr = d.sub(body, "GrpHdr")
    d.sub(hdr, "MsgId", msg_id)
    d.sub(hdr, "CreDtTm", _datetime(created_at))
    stmt = d.sub(body, "Stmt")
    d.sub(stmt, "Id", msg_id)
    d.sub(stmt, "CreDtTm", _datetime(created_at))
    period = d.sub(stmt, "FrToDt")
    d.sub(period, "FrDtTm", _datetime(from_to[0]))
    d.sub(period, "ToDtTm", _datetime(from_to[1]))
    _account(d, stmt, account_owner_bic, account_owner_name, member_id, currency, hub_bic)
    _balance(d, stmt, "OPBD", opening_balance_minor, minor_units, currency, from_to[0])
    _balance(d, stmt, "CLBD", closing_balance_minor, minor_units, currency, from_to[1])
    _summary(d, stmt, entries, minor_units)
    _entries(d, stmt, entries, account_owner_bic, currency, minor_units)
    return d.serialize()


def camt054(
    account_owner_bic: str,
    member_id: str,
    currency: str,
    minor_units: int,
    entry: StatementEntry | Sequence[StatementEntry],
    *,
    msg_id: str,
    created_at: datetime,
    hub_bic: str | None = None,
    account_owner_name: str | None = None,
) -> bytes:
    """camt.054.001.08 debit or credit notification on one account: one settled payment, or the
    payments of one netting cycle (entries sharing a batch_id) as one batch-booked entry."""
    entries = [entry] if isinstance(entry, StatementEntry) else list(entry)
    _check_account_args(account_owner_bic, member_id, currency, minor_units, hub_bic)
    _require_id(msg_id, "msg_id")
    _require(0 < len(entries) <= _ENTRIES_MAX, f"give 1 to {_ENTRIES_MAX} entries")
    _require(len({e.batch_id for e in entries}) == 1 and (len(entries) == 1 or entries[0].batch_id is not None),
             "a notification is of one payment or of one batch")
    for e in entries:
        _check_entry(e)
    d = _Doc("camt.054.001.08")
    body = d.sub(d.root, "BkToCstmrDbtCdtNtfctn")
    hdr = d.sub(body, "GrpHdr")
    d.sub(hdr, "MsgId", msg_id)
    d.sub(hdr, "CreDtTm", _datetime(created_at))
    ntfctn = d.sub(body, "Ntfctn")
    d.sub(ntfctn, "Id", msg_id)
    d.sub(ntfctn, "CreDtTm", _datetime(created_at))
    _account(d, ntfctn, account_owner_bic, account_owner_name, member_id, currency, hub_bic)
    _entries(d, ntfctn, entries, account_owner_bic, currency, minor_units)
    return d.serialize()


def camt029(
    cancellation: ParsedTransaction,
    accepted: bool,
    reason_code: str | None = None,
    *,
    msg_id: str,
    created_at: datetime,
    hub_bic: str | None = None,
    reason_text: str | None = None,
) -> bytes:
    """camt.029.001.09 answering one camt.056 transaction: CNCL (cancelled) or RJCR (refused).

    Refusal reasons are ExternalPaymentCancellationRejection codes, e.g. NOOR (payment unknown),
    ARDT (already returned), LEGL (regulatory), AGNT (already settled: settlement is final).
    """
    _require_id(msg_id, "msg_id")
    _check_hub(hub_bic)
    _require(cancellation.kind == "cancellation_request", "camt029 answers a camt.056 transaction")
    _require(accepted or bool(reason_code), "a refused cancellation needs a reason code")
    original = cancellation.original or OriginalRef()
    requester = _bic(cancellation.instructing_agent_bic)
    d = _Doc("camt.029.001.09")
    body = d.sub(d.root, "RsltnOfInvstgtn")
    asg = d.sub(body, "Assgnmt")
    d.sub(asg, "Id", msg_id)
    _agent_or_name(d, d.sub(asg, "Assgnr"), hub_bic, "SETARA")
    _agent_or_name(d, d.sub(asg, "Assgne"), requester, "NOTPROVIDED")
    d.sub(asg, "CreDtTm", _datetime(created_at))
    case_id = _id(cancellation.case_id)
    if case_id is not None:
        case = d.sub(body, "RslvdCase")
        d.sub(case, "Id", case_id)
        _agent_or_name(d, d.sub(case, "Cretr"), requester, "NOTPROVIDED")
    d.sub(d.sub(body, "Sts"), "Conf", "CNCL" if accepted else "RJCR")
    tx = d.sub(d.sub(body, "CxlDtls"), "TxInfAndSts")
    d.opt(tx, "CxlStsId", _id(cancellation.instr_id))
    _original_group(d, tx, "OrgnlGrpInf", original.msg_id, original.msg_type)
    d.opt(tx, "OrgnlInstrId", _id(original.instr_id))
    d.opt(tx, "OrgnlEndToEndId", _id(original.end_to_end_id))
    d.opt(tx, "OrgnlTxId", _id(original.tx_id))
    d.opt(tx, "OrgnlUETR", _uetr(original.uetr))
    d.sub(tx, "TxCxlSts", "ACCR" if accepted else "RJCR")
    if not accepted:
        d.reason(tx, "CxlStsRsnInf", reason_code, reason_text)
    elif reason_text:
        d.reason(tx, "CxlStsRsnInf", None, reason_text, coded=False)
    amount = _amount_text(cancellation.amount_text, cancellation.currency)
    if amount is not None:
        d.sub(tx, "OrgnlIntrBkSttlmAmt", amount[0], Ccy=amount[1])
    date_text = cancellation.settlement_date
    d.opt(tx, "OrgnlIntrBkSttlmDt", date_text if date_text and _DATE_RE.match(date_text) else None)
    return d.serialize()


def _agent_or_name(d: _Doc, parent: etree._Element, bic: str | None, name: str) -> None:
    """A Party40Choice: the agent when its BIC is known, else a party by name (the element is
    mandatory)."""
    if bic is not None:
        d.agent(parent, "Agt", bic)
    else:
        d.sub(d.sub(parent, "Pty"), "Nm", name)


def pacs004(
    original: OriginalRef,
    *,
    return_id: str,
    currency: str,
    minor_units: int,
    amount_minor: int,
    instructing_agent_bic: str,
    instructed_agent_bic: str,
    reason_code: str,
    msg_id: str,
    created_at: datetime,
    settlement_date: date,
    original_amount_minor: int | None = None,
    reason_text: str | None = None,
) -> bytes:
    """pacs.004.001.09 returning (part of) a settled payment: a new transfer back from the
    instructing agent (the original creditor's bank) to the instructed agent (the debtor's)."""
    _require_id(msg_id, "msg_id")
    _require_id(return_id, "return_id")
    _require_bic(instructing_agent_bic, "instructing_agent_bic")
    _require_bic(instructed_agent_bic, "instructed_agent_bic")
    _require(bool(_CCY_RE.match(currency)), f"currency {currency!r} is not three upper-case letters")
    _require(amount_minor > 0, "the returned amount must be > 0")
    _require(original.has_reference(), "the original payment must be referenced")
    d = _Doc("pacs.004.001.09")
    body = d.sub(d.root, "PmtRtr")
    hdr = d.sub(body, "GrpHdr")
    d.sub(hdr, "MsgId", msg_id)
    d.sub(hdr, "CreDtTm", _datetime(created_at))
    d.sub(hdr, "NbOfTxs", "1")
    d.sub(d.sub(hdr, "SttlmInf"), "SttlmMtd", "CLRG")
    tx = d.sub(body, "TxInf")
    d.sub(tx, "RtrId", return_id)
    _original_group(d, tx, "OrgnlGrpInf", original.msg_id, original.msg_type)
    d.opt(tx, "OrgnlInstrId", _id(original.instr_id))
    d.opt(tx, "OrgnlEndToEndId", _id(original.end_to_end_id))
    d.opt(tx, "OrgnlTxId", _id(original.tx_id))
    d.opt(tx, "OrgnlUETR", _uetr(original.uetr))
    if original_amount_minor is not None:
        d.amount(tx, "OrgnlIntrBkSttlmAmt", original_amount_minor, minor_units, currency)
    d.amount(tx, "RtrdIntrBkSttlmAmt", amount_minor, minor_units, currency)
    day = settlement_date.date() if isinstance(settlement_date, datetime) else settlement_date
    d.sub(tx, "IntrBkSttlmDt", day.isoformat())
    d.agent(tx, "InstgAgt", instructing_agent_bic)
    d.agent(tx, "InstdAgt", instructed_agent_bic)
    d.reason(tx, "RtrRsnInf", reason_code, reason_text)
    return d.serialize()


_ENVELOPE_NS = "urn:swift:xsd:envelope"
_HEAD_NS = _ISO_NS + "head.001.001.02"


def with_app_header(
    document: bytes,
    *,
    from_bic: str,
    to_bic: str,
    biz_msg_id: str,
    created_at: datetime,
    business_service: str | None = None,
) -> bytes:
    """Wrap one of our Documents with a head.001.001.02 AppHdr in an `Envelope`, the shape CBPR+
    traffic travels in. The Document itself is unchanged, so it still validates on its own."""
    _require_bic(from_bic, "from_bic")
    _require_bic(to_bic, "to_bic")
    _require_id(biz_msg_id, "biz_msg_id")
    _require(business_service is None or 1 <= len(business_service) <= 35, "business_service is Max35Text")
    doc = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    ns = etree.QName(doc).namespace or ""
    _require(etree.QName(doc).localname == "Document" and ns.startswith(_ISO_NS), "not an ISO 20022 Document")
    envelope = etree.Element(f"{{{_ENVELOPE_NS}}}Envelope", nsmap={None: _ENVELOPE_NS})  # type: ignore[dict-item]
    hdr = etree.SubElement(envelope, f"{{{_HEAD_NS}}}AppHdr", nsmap={None: _HEAD_NS})  # type: ignore[dict-item]

    def sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        el = etree.SubElement(parent, f"{{{_HEAD_NS}}}{tag}")
        el.text = text
        return el

    for tag, bic in (("Fr", from_bic), ("To", to_bic)):
        sub(sub(sub(sub(hdr, tag), "FIId"), "FinInstnId"), "BICFI", bic)
    sub(hdr, "BizMsgIdr", biz_msg_id)
    sub(hdr, "MsgDefIdr", ns[len(_ISO_NS) :])
    if business_service is not None:
        sub(hdr, "BizSvc", business_service)
    sub(hdr, "CreDt", _datetime(created_at))
    envelope.append(doc)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8", pretty_print=True)
