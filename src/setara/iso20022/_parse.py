"""ISO 20022 messages in: pacs.008, pacs.009, pacs.004, camt.056 -> ParsedMessage.

The parser reads elements by name rather than by position, so it accepts every version listed in
SUPPORTED_TYPES and survives documents that a strict schema would refuse for element order only.
Whether such a document is acceptable is decided by the optional XSD check and by hub_validate,
not here: the parser's job is to find the identifiers that any reply must quote.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from lxml import etree

from ._model import Iso20022Error, OriginalRef, ParsedMessage, ParsedTransaction, Party
from ._xml import MESSAGE_BYTES_MAX, load_schema, parse_untrusted, resolve_xsd_dir, schema_errors

__all__ = ["SUPPORTED_TYPES", "TRANSACTIONS_MAX", "detect_xml", "parse_message"]

SUPPORTED_TYPES: tuple[str, ...] = (
    "pacs.008.001.08",
    "pacs.008.001.12",
    "pacs.009.001.08",
    "pacs.009.001.11",
    "pacs.004.001.09",
    "camt.056.001.08",
)
# CBPR+ carries one transaction a message; market infrastructures batch more. 1000 keeps a
# message's reply (one pacs.002) and its processing time bounded.
TRANSACTIONS_MAX = 1000
_ISO_NS = "urn:iso:std:iso:20022:tech:xsd:"
_MSG_NAME_RE = re.compile(r"^([a-z]{4}\.\d{3})\.\d{3}\.\d{2}$")
# Envelopes (SWIFT's Envelope/RequestPayload/DataPDU, a bank's own) sit a few levels above the
# Document; searching deeper would only find documents embedded in SplmtryData.
_ENVELOPE_DEPTH_MAX = 6
_ID_MAX = 35
_PLAIN_DECIMAL = re.compile(r"^\d{1,18}(\.\d{1,17})?$")
_COUNT_RE = re.compile(r"^[0-9]{1,15}$")
_ORIGINAL_IDS = "OrgnlUETR, OrgnlEndToEndId, OrgnlInstrId or OrgnlTxId"
_NAME_MAX = 140
_TEXT_MAX = 70
_BODY = {
    "pacs.008": "FIToFICstmrCdtTrf",
    "pacs.009": "FICdtTrf",
    "pacs.004": "PmtRtr",
    "camt.056": "FIToFIPmtCxlReq",
}


def detect_xml(data: bytes) -> bool:
    """True when the input looks like XML rather than JSON Lines (first non-blank byte is '<')."""
    head = bytes(data[:4096])
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True  # UTF-16 XML: route it to the XML parser, which refuses it with a clear reason
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.lstrip()[:1] == b"<"


class _Address(NamedTuple):
    country: str | None = None
    town: str | None = None
    post_code: str | None = None
    address_lines: tuple[str, ...] = ()


class _Reader:
    """Namespace-bound lookups, collecting the first fault of the transaction being read."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.faults: list[tuple[str, str]] = []
        self.where = ""
        self._paths: dict[str, tuple[str, ...]] = {}

    def tags(self, names: str) -> tuple[str, ...]:
        cached = self._paths.get(names)
        if cached is None:
            cached = self._paths[names] = tuple(f"{{{self.ns}}}{n}" for n in names.split("/"))
        return cached

    def el(self, parent: etree._Element | None, names: str) -> etree._Element | None:
        # Stepping through children by tag is several times faster than lxml's ElementPath.
        node = parent
        for tag in self.tags(names):
            if node is None:
                return None
            node = next(node.iterchildren(tag), None)
        return node

    def els(self, parent: etree._Element | None, names: str) -> list[etree._Element]:
        *steps, last = self.tags(names)
        node = parent
        for tag in steps:
            if node is None:
                return []
            node = next(node.iterchildren(tag), None)
        return [] if node is None else list(node.iterchildren(last))

    def text(self, parent: etree._Element | None, names: str, max_len: int = _TEXT_MAX) -> str | None:
        return self._checked(self.el(parent, names), names, max_len)

    def _checked(self, node: etree._Element | None, names: str, max_len: int) -> str | None:
        if node is None:
            return None
        value = (node.text or "").strip()
        if not value:
            self.fault(f"{self.where}{names} is empty")
            return None
        if len(value) > max_len:
            self.fault(f"{self.where}{names} is longer than {max_len} characters")
            return value[:max_len]
        return value

    def texts(self, parent: etree._Element | None, names: str, max_len: int = _TEXT_MAX) -> list[str]:
        out = []
        for node in self.els(parent, names):
            value = self._checked(node, names, max_len)
            if value is not None:
                out.append(value)
        return out

    def fault(self, text: str, code: str = "FF01") -> None:
        self.faults.append((code, text))

    def bic(self, agent: etree._Element | None) -> str | None:
        """BICFI of a BranchAndFinancialInstitutionIdentification."""
        return self.text(agent, "FinInstnId/BICFI", _ID_MAX)

    def amount(self, parent: etree._Element | None, name: str) -> tuple[str | None, str | None]:
        node = self.el(parent, name)
        if node is None:
            return None, None
        ccy = node.get("Ccy")
        return (node.text or "").strip(), (ccy.strip() if ccy is not None else None)

    def party(self, el: etree._Element | None, account: etree._Element | None = None) -> Party | None:
        """PartyIdentification, a Party40Choice (Pty | Agt) or a financial institution."""
        if el is None:
            return None
        pty, agt = self.el(el, "Pty"), self.el(el, "Agt")
        if pty is not None:
            el = pty
        elif agt is not None:
            el = agt
        acct = self._account(account)
        fin = self.el(el, "FinInstnId")
        if fin is not None:
            return Party(
                name=self.text(fin, "Nm", _NAME_MAX),
                lei=self.text(fin, "LEI", _ID_MAX),
                bic=self.text(fin, "BICFI", _ID_MAX),
                account=acct,
                **self._address(self.el(fin, "PstlAdr"))._asdict(),
            )
        birth = self.text(el, "Id/PrvtId/DtAndPlcOfBirth/BirthDt", _ID_MAX)
        return Party(
            name=self.text(el, "Nm", _NAME_MAX),
            country_of_residence=self.text(el, "CtryOfRes", _ID_MAX),
            birth_date=birth,
            bic=self.text(el, "Id/OrgId/AnyBIC", _ID_MAX),
            lei=self.text(el, "Id/OrgId/LEI", _ID_MAX),
            account=acct,
            **self._address(self.el(el, "PstlAdr"))._asdict(),
        )

    def _account(self, acct: etree._Element | None) -> str | None:
        if acct is None:
            return None
        return self.text(acct, "Id/IBAN", _ID_MAX) or self.text(acct, "Id/Othr/Id", _ID_MAX)

    def _address(self, adr: etree._Element | None) -> _Address:
        if adr is None:
            return _Address()
        lines: list[str] = []
        for part in ("Dept", "SubDept", "StrtNm", "BldgNb", "BldgNm", "Flr", "PstBx", "Room"):
            value = self.text(adr, part)
            if value:
                lines.append(value)
        lines.extend(self.texts(adr, "AdrLine")[:7])
        for part in ("TwnLctnNm", "DstrctNm", "CtrySubDvsn"):
            value = self.text(adr, part)
            if value:
                lines.append(value)
        return _Address(
            country=self.text(adr, "Ctry", _ID_MAX),
            town=self.text(adr, "TwnNm"),
            post_code=self.text(adr, "PstCd"),
            address_lines=tuple(lines),
        )

    def original(self, tx: etree._Element, group: OriginalRef | None) -> OriginalRef:
        grp = self.el(tx, "OrgnlGrpInf")
        msg_id = self.text(grp, "OrgnlMsgId", _ID_MAX) if grp is not None else None
        msg_type = self.text(grp, "OrgnlMsgNmId", _ID_MAX) if grp is not None else None
        return OriginalRef(
            msg_id=msg_id or (group.msg_id if group else None),
            msg_type=msg_type or (group.msg_type if group else None),
            instr_id=self.text(tx, "OrgnlInstrId", _ID_MAX),
            end_to_end_id=self.text(tx, "OrgnlEndToEndId", _ID_MAX),
            tx_id=self.text(tx, "OrgnlTxId", _ID_MAX),
            uetr=self.text(tx, "OrgnlUETR", _ID_MAX + 1),
        )

    def reason(self, el: etree._Element | None) -> str | None:
        return self.text(el, "Rsn/Cd", _ID_MAX) or self.text(el, "Rsn/Prtry", _ID_MAX)

    def first_fault(self) -> tuple[str, str] | None:
        return self.faults[0] if self.faults else None


def _find_parts(root: etree._Element) -> tuple[etree._Element, str, etree._Element | None]:
    documents: list[tuple[etree._Element, str]] = []
    headers: list[etree._Element] = []
    stack: list[tuple[etree._Element, int]] = [(root, 0)]
    while stack:
        el, depth = stack.pop()
        if not isinstance(el.tag, str):
            continue
        qname = etree.QName(el)
        ns = qname.namespace or ""
        if ns.startswith(_ISO_NS) and qname.localname == "Document":
            documents.append((el, ns[len(_ISO_NS) :]))
            continue
        if ns.startswith(_ISO_NS + "head.") and qname.localname == "AppHdr":
            headers.append(el)
            continue
        if depth < _ENVELOPE_DEPTH_MAX:
            stack.extend((child, depth + 1) for child in el)
    if not documents:
        raise Iso20022Error(
            "FF01", "no ISO 20022 Document element (namespace urn:iso:std:iso:20022:tech:xsd:…) found"
        )
    if len(documents) > 1:
        raise Iso20022Error("FF01", f"message holds {len(documents)} Document elements; send one a message")
    if len(headers) > 1:
        raise Iso20022Error("FF01", f"message holds {len(headers)} AppHdr elements; at most one is allowed")
    doc, msg_type = documents[0]
    return doc, msg_type, headers[0] if headers else None


def parse_message(
    data: bytes,
    *,
    xsd_dir: Path | None = None,
    max_bytes: int = MESSAGE_BYTES_MAX,
    max_transactions: int = TRANSACTIONS_MAX,
) -> ParsedMessage:
    """Parse one member message (with or without AppHdr and envelope).

    Raises Iso20022Error when the message cannot be read far enough to name its transactions;
    problems of single transactions are reported in their `error` instead. With `xsd_dir` (or the
    SETARA_ISO20022_XSD_DIR environment variable) the Document and AppHdr are also checked against
    the official schemas; a violation becomes every transaction's `message_error`.
    """
    root = parse_untrusted(data, max_bytes=max_bytes)
    doc, msg_type, header = _find_parts(root)
    match = _MSG_NAME_RE.match(msg_type)
    if match is None or msg_type not in SUPPORTED_TYPES:
        raise Iso20022Error(
            "FF01",
            f"message type {msg_type[:40]} is not accepted; Setara accepts {', '.join(SUPPORTED_TYPES)}",
            msg_type=msg_type[:35] if match else None,
        )
    base = match.group(1)
    ns = _ISO_NS + msg_type
    r = _Reader(ns)

    hdr = _Reader(etree.QName(header).namespace or "") if header is not None else None
    sender = receiver = biz_svc = def_id = None
    if hdr is not None and header is not None:
        sender = hdr.text(header, "Fr/FIId/FinInstnId/BICFI", _ID_MAX)
        receiver = hdr.text(header, "To/FIId/FinInstnId/BICFI", _ID_MAX)
        biz_svc = hdr.text(header, "BizSvc", _ID_MAX)
        def_id = hdr.text(header, "MsgDefIdr", _ID_MAX)

    body = r.el(doc, _BODY[base])
    if body is None:
        raise Iso20022Error("FF01", f"Document has no {_BODY[base]} element", msg_type=msg_type)
    grp = r.el(body, "Assgnmt" if base == "camt.056" else "GrpHdr")
    id_path = "Assgnmt/Id" if base == "camt.056" else "GrpHdr/MsgId"
    msg_id = r.text(grp, "Id" if base == "camt.056" else "MsgId", _ID_MAX)
    if msg_id is None or r.faults:
        raise Iso20022Error("FF01", f"{id_path} is missing, empty or too long", msg_type=msg_type)

    message_faults: list[tuple[str, str]] = []
    if hdr is not None and def_id is not None and def_id[:8] != base:
        message_faults.append(("FF01", f"AppHdr/MsgDefIdr {def_id} does not match the {msg_type} Document"))

    directory = resolve_xsd_dir(xsd_dir)
    if directory is not None:
        problems = schema_errors(doc, load_schema(directory, msg_type))
        if problems:
            message_faults.append(("FF01", f"Document does not match {msg_type}.xsd: {problems[0]}"))
        if header is not None:
            head_type = (etree.QName(header).namespace or "")[len(_ISO_NS) :]
            problems = schema_errors(header, load_schema(directory, head_type))
            if problems:
                message_faults.append(("FF01", f"AppHdr does not match {head_type}.xsd: {problems[0]}"))

    if base == "camt.056":
        created = r.text(grp, "CreDtTm", _ID_MAX)
        grp_sender = r.bic(r.el(grp, "Assgnr/Agt"))
        grp_receiver = r.bic(r.el(grp, "Assgne/Agt"))
        txs = _cancellations(r, body, msg_id, msg_type, grp_sender, grp_receiver, max_transactions)
        declared = r.text(body, "CtrlData/NbOfTxs", _ID_MAX)
    else:
        created = r.text(grp, "CreDtTm", _ID_MAX)
        grp_sender = r.bic(r.el(grp, "InstgAgt"))
        grp_receiver = r.bic(r.el(grp, "InstdAgt"))
        tx_name = "TxInf" if base == "pacs.004" else "CdtTrfTxInf"
        nodes = r.els(body, tx_name)
        if not nodes:
            raise Iso20022Error("FF01", f"message holds no {tx_name}", msg_id=msg_id, msg_type=msg_type,
                                sender_bic=sender or grp_sender)
        if len(nodes) > max_transactions:
            raise Iso20022Error(
                "FF01",
                f"message holds {len(nodes)} transactions; the limit is {max_transactions}",
                msg_id=msg_id,
                msg_type=msg_type,
                sender_bic=sender or grp_sender,
            )
        if base == "pacs.004":
            txs = _returns(r, body, grp, nodes, msg_id, msg_type)
        else:
            txs = _credit_transfers(r, grp, nodes, msg_id, msg_type, base == "pacs.009")
        declared = r.text(grp, "NbOfTxs", _ID_MAX)
        ctrl_sum = r.text(grp, "CtrlSum", _ID_MAX)
        if ctrl_sum is not None:
            fault = _ctrl_sum_fault(ctrl_sum, [t.amount_text for t in txs])
            if fault:
                message_faults.append(("AM10", fault))

    if declared is not None and (not _COUNT_RE.match(declared) or int(declared) != len(txs)):
        message_faults.append(
            ("FF01", f"NbOfTxs says {declared[:15]} but the message holds {len(txs)} transaction(s)")
        )
    if message_faults:
        txs = [_with_message_error(t, message_faults[0]) for t in txs]
    return ParsedMessage(
        msg_id=msg_id,
        msg_type=msg_type,
        transactions=tuple(txs),
        has_app_header=header is not None,
        sender_bic=sender or grp_sender or (txs[0].instructing_agent_bic if txs else None),
        receiver_bic=receiver or grp_receiver,
        created_at_text=created,
        business_service=biz_svc,
        error=message_faults[0] if message_faults else None,
    )


def _with_message_error(tx: ParsedTransaction, fault: tuple[str, str]) -> ParsedTransaction:
    return replace(tx, message_error=fault)


def _ctrl_sum_fault(ctrl_sum: str, amounts: list[str | None]) -> str | None:
    # Decimal, not float: the control sum is compared exactly, digit for digit. Only plain decimals
    # are compared, which also keeps exponent tricks ("9E+999999") away from decimal arithmetic.
    texts = [ctrl_sum, *(a for a in amounts if a is not None)]
    if not all(_PLAIN_DECIMAL.match(t) for t in texts):
        return None  # unreadable amounts are reported per transaction (AM12)
    if Decimal(ctrl_sum) != sum((Decimal(t) for t in texts[1:]), Decimal(0)):
        return f"CtrlSum {ctrl_sum} does not equal the sum of the transaction amounts"
    return None


def _agents(r: _Reader, tx: etree._Element) -> tuple[str, ...]:
    return tuple(b for n in (1, 2, 3) if (b := r.bic(r.el(tx, f"IntrmyAgt{n}"))) is not None)


def _credit_transfers(
    r: _Reader,
    grp: etree._Element | None,
    nodes: list[etree._Element],
    msg_id: str,
    msg_type: str,
    fi_transfer: bool,
) -> list[ParsedTransaction]:
    grp_instg, grp_instd = r.bic(r.el(grp, "InstgAgt")), r.bic(r.el(grp, "InstdAgt"))
    grp_date = r.text(grp, "IntrBkSttlmDt", _ID_MAX)
    grp_prty = r.text(grp, "PmtTpInf/InstrPrty", _ID_MAX)
    r.faults.clear()  # group-level oddities are not any one transaction's fault
    out = []
    for i, tx in enumerate(nodes):
        r.faults = []
        r.where = f"CdtTrfTxInf[{i + 1}]/" if len(nodes) > 1 else ""
        e2e = r.text(tx, "PmtId/EndToEndId", _ID_MAX)
        if e2e is None and r.el(tx, "PmtId/EndToEndId") is None:
            r.fault(f"{r.where}PmtId/EndToEndId is missing")
        amount, ccy = r.amount(tx, "IntrBkSttlmAmt")
        undrlyg = r.el(tx, "UndrlygCstmrCdtTrf")
        out.append(
            ParsedTransaction(
                msg_id=msg_id,
                msg_type=msg_type,
                index=i,
                instr_id=r.text(tx, "PmtId/InstrId", _ID_MAX),
                end_to_end_id=e2e,
                tx_id=r.text(tx, "PmtId/TxId", _ID_MAX),
                uetr=r.text(tx, "PmtId/UETR", _ID_MAX + 1),
                debtor_agent_bic=r.bic(r.el(tx, "DbtrAgt")),
                creditor_agent_bic=r.bic(r.el(tx, "CdtrAgt")),
                instructing_agent_bic=r.bic(r.el(tx, "InstgAgt")) or grp_instg,
                instructed_agent_bic=r.bic(r.el(tx, "InstdAgt")) or grp_instd,
                intermediary_agent_bics=_agents(r, tx),
                amount_text=amount,
                currency=ccy,
                settlement_date=r.text(tx, "IntrBkSttlmDt", _ID_MAX) or grp_date,
                priority=r.text(tx, "PmtTpInf/InstrPrty", _ID_MAX) or grp_prty,
                debtor=r.party(r.el(tx, "Dbtr"), r.el(tx, "DbtrAcct")),
                creditor=r.party(r.el(tx, "Cdtr"), r.el(tx, "CdtrAcct")),
                ultimate_debtor=r.party(r.el(tx, "UltmtDbtr")),
                ultimate_creditor=r.party(r.el(tx, "UltmtCdtr")),
                underlying_debtor=(
                    r.party(r.el(undrlyg, "Dbtr"), r.el(undrlyg, "DbtrAcct")) if fi_transfer else None
                ),
                underlying_creditor=(
                    r.party(r.el(undrlyg, "Cdtr"), r.el(undrlyg, "CdtrAcct")) if fi_transfer else None
                ),
                error=r.first_fault(),
            )
        )
    return out


def _returns(
    r: _Reader,
    body: etree._Element,
    grp: etree._Element | None,
    nodes: list[etree._Element],
    msg_id: str,
    msg_type: str,
) -> list[ParsedTransaction]:
    grp_instg, grp_instd = r.bic(r.el(grp, "InstgAgt")), r.bic(r.el(grp, "InstdAgt"))
    grp_date = r.text(grp, "IntrBkSttlmDt", _ID_MAX)
    orig_grp = r.el(body, "OrgnlGrpInf")
    group_ref = (
        OriginalRef(
            msg_id=r.text(orig_grp, "OrgnlMsgId", _ID_MAX), msg_type=r.text(orig_grp, "OrgnlMsgNmId", _ID_MAX)
        )
        if orig_grp is not None
        else None
    )
    group_reason = r.reason(r.el(orig_grp, "RtrRsnInf"))
    r.faults.clear()
    out = []
    for i, tx in enumerate(nodes):
        r.faults = []
        r.where = f"TxInf[{i + 1}]/" if len(nodes) > 1 else ""
        original = r.original(tx, group_ref)
        if not original.has_reference():
            r.fault(f"{r.where}names no original payment ({_ORIGINAL_IDS})")
        amount, ccy = r.amount(tx, "RtrdIntrBkSttlmAmt")
        chain = r.el(tx, "RtrChain")
        ref = r.el(tx, "OrgnlTxRef")
        # The return chain names the parties of the money moving back; without it, the original
        # payment's parties with their roles swapped are the same people.
        debtor = r.party(r.el(chain, "Dbtr")) if chain is not None else r.party(r.el(ref, "Cdtr"))
        creditor = r.party(r.el(chain, "Cdtr")) if chain is not None else r.party(r.el(ref, "Dbtr"))
        out.append(
            ParsedTransaction(
                msg_id=msg_id,
                msg_type=msg_type,
                index=i,
                instr_id=r.text(tx, "RtrId", _ID_MAX),
                end_to_end_id=original.end_to_end_id,
                tx_id=original.tx_id,
                uetr=original.uetr,
                debtor_agent_bic=r.bic(r.el(chain, "DbtrAgt")),
                creditor_agent_bic=r.bic(r.el(chain, "CdtrAgt")),
                instructing_agent_bic=r.bic(r.el(tx, "InstgAgt")) or grp_instg,
                instructed_agent_bic=r.bic(r.el(tx, "InstdAgt")) or grp_instd,
                intermediary_agent_bics=_agents(r, chain) if chain is not None else (),
                amount_text=amount,
                currency=ccy,
                settlement_date=r.text(tx, "IntrBkSttlmDt", _ID_MAX) or grp_date,
                priority=r.text(tx, "SttlmPrty", _ID_MAX),
                debtor=debtor,
                creditor=creditor,
                ultimate_debtor=r.party(r.el(chain, "UltmtDbtr")),
                ultimate_creditor=r.party(r.el(chain, "UltmtCdtr")),
                original=original,
                reason_code=r.reason(r.el(tx, "RtrRsnInf")) or group_reason,
                error=r.first_fault(),
            )
        )
    return out


def _cancellations(
    r: _Reader,
    body: etree._Element,
    msg_id: str,
    msg_type: str,
    requester: str | None,
    assignee: str | None,
    max_transactions: int,
) -> list[ParsedTransaction]:
    case_id = r.text(body, "Case/Id", _ID_MAX)
    pairs: list[tuple[etree._Element, OriginalRef | None]] = []
    for undrlyg in r.els(body, "Undrlyg"):
        og = r.el(undrlyg, "OrgnlGrpInfAndCxl")
        group_ref = (
            OriginalRef(
                msg_id=r.text(og, "OrgnlMsgId", _ID_MAX), msg_type=r.text(og, "OrgnlMsgNmId", _ID_MAX)
            )
            if og is not None
            else None
        )
        pairs.extend((tx, group_ref) for tx in r.els(undrlyg, "TxInf"))
        if len(pairs) > max_transactions:
            raise Iso20022Error(
                "FF01",
                f"message holds more than {max_transactions} transactions",
                msg_id=msg_id,
                msg_type=msg_type,
            )
    if not pairs:
        raise Iso20022Error(
            "FF01",
            "camt.056 holds no Undrlyg/TxInf; Setara cancels individual transactions only",
            msg_id=msg_id,
            msg_type=msg_type,
        )
    r.faults.clear()
    out = []
    for i, (tx, group_ref) in enumerate(pairs):
        r.faults = []
        r.where = f"TxInf[{i + 1}]/" if len(pairs) > 1 else ""
        original = r.original(tx, group_ref)
        if not original.has_reference():
            r.fault(f"{r.where}names no payment to cancel ({_ORIGINAL_IDS})")
        amount, ccy = r.amount(tx, "OrgnlIntrBkSttlmAmt")
        ref = r.el(tx, "OrgnlTxRef")
        out.append(
            ParsedTransaction(
                msg_id=msg_id,
                msg_type=msg_type,
                index=i,
                instr_id=r.text(tx, "CxlId", _ID_MAX),
                end_to_end_id=original.end_to_end_id,
                tx_id=original.tx_id,
                uetr=original.uetr,
                instructing_agent_bic=r.bic(r.el(tx, "Assgnr")) or requester,
                instructed_agent_bic=r.bic(r.el(tx, "Assgne")) or assignee,
                debtor_agent_bic=r.bic(r.el(ref, "DbtrAgt")),
                creditor_agent_bic=r.bic(r.el(ref, "CdtrAgt")),
                amount_text=amount,
                currency=ccy,
                settlement_date=r.text(tx, "OrgnlIntrBkSttlmDt", _ID_MAX),
                debtor=r.party(r.el(ref, "Dbtr")),
                creditor=r.party(r.el(ref, "Cdtr")),
                original=original,
                reason_code=r.reason(r.el(tx, "CxlRsnInf")),
                case_id=r.text(tx, "Case/Id", _ID_MAX) or case_id,
                error=r.first_fault(),
            )
        )
    return out
