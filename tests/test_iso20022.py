"""ISO 20022 adapter: real CBPR+ samples in, hub rules, XSD-valid replies out.

The official schemas and samples live in ../shared/data/iso20022 (not in this repository);
tests that need them skip with the reason when that folder is absent.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from setara import iso20022 as iso
from setara.iso20022 import Iso20022Error, ParsedTransaction, StatementEntry, TxStatus

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "iso20022"
XSD = DATA / "xsd"
MANIFEST = DATA / "samples" / "MANIFEST.csv"
needs_xsd = pytest.mark.skipif(not XSD.is_dir(), reason=f"official XSDs not found at {XSD}")
needs_samples = pytest.mark.skipif(
    not MANIFEST.is_file(), reason=f"ISO 20022 samples not found at {MANIFEST}"
)
NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
HUB = "SETASGSG"  # the example network's operator_bic

NETWORK_BICS = {"BKIDIDJA": "IDBANK", "BKMYMYKL": "MYBANK", "BKTHTHBK": "THBANK", "FXPRSGSG": "FXPROV"}
NETWORK_CCY = {"IDR": 2, "MYR": 2, "THB": 2}


def network_bic(bic: str) -> str | None:
    return NETWORK_BICS.get(bic)


def network_ccy(ccy: str) -> int | None:
    return NETWORK_CCY.get(ccy)


def sample_rows() -> list[dict[str, str]]:
    if not MANIFEST.is_file():
        return []
    with MANIFEST.open(newline="") as fh:
        return list(csv.DictReader(fh))


def sample_files(*prefixes: str) -> list[str]:
    return [r["file"] for r in sample_rows() if r["document_version"].startswith(prefixes)]


def read_sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def assert_valid(xml: bytes) -> None:
    errors = iso.validate_document(xml, xsd_dir=XSD)
    assert errors == [], errors


def text_of(xml: bytes, local: str) -> list[str]:
    root = etree.fromstring(xml)
    return [
        el.text or "" for el in root.iter() if isinstance(el.tag, str) and etree.QName(el).localname == local
    ]


def mutate(xml: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(xml)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def els(root: etree._Element, local: str) -> list[etree._Element]:
    return [e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == local]


def document_of(root: etree._Element) -> etree._Element:
    return els(root, "Document")[0]


def to_network(xml: bytes, *, ccy: str = "IDR", amount: str = "1250.50") -> bytes:
    """A CBPR+ sample turned into a fresh payment on the test network (as the acceptance check does)."""
    mapping: dict[str, str] = {}
    bics = list(NETWORK_BICS)

    def change(root: etree._Element) -> None:
        doc = document_of(root)
        for el in els(root, "BICFI"):
            # debtor side (InstgAgt, DbtrAgt, Dbtr) and creditor side get different members
            original = el.text or ""
            if original not in mapping:
                mapping[original] = bics[len(mapping) % len(bics)]
            el.text = mapping[original]
        instg = [e for e in els(doc, "InstgAgt") if els(e, "BICFI")]
        instd = [e for e in els(doc, "InstdAgt") if els(e, "BICFI")]
        for agent, bic in [(a, "BKIDIDJA") for a in instg] + [(a, "BKMYMYKL") for a in instd]:
            els(agent, "BICFI")[0].text = bic
        for tag, bic in (("DbtrAgt", "BKIDIDJA"), ("CdtrAgt", "BKMYMYKL")):
            for agent in els(doc, tag):
                for b in els(agent, "BICFI"):
                    b.text = bic
        for pmt_id in els(doc, "PmtId"):
            if not els(pmt_id, "UETR"):  # CBPR+ requires one; some usage-rule fixtures omit it
                uetr = etree.Element(f"{{{etree.QName(pmt_id).namespace}}}UETR")
                clr = els(pmt_id, "ClrSysRef")
                if clr:
                    clr[0].addprevious(uetr)
                else:
                    pmt_id.append(uetr)
        for el in els(doc, "UETR"):
            el.text = str(uuid.uuid4())
        for el in els(doc, "MsgId") + els(doc, "EndToEndId"):
            el.text = f"T{uuid.uuid4().hex[:20]}"
        for el in els(doc, "IntrBkSttlmAmt"):
            el.set("Ccy", ccy)
            el.text = amount
        for el in els(doc, "IntrBkSttlmDt"):
            el.text = date.today().isoformat()

    return mutate(xml, change)


def verdict(tx: ParsedTransaction) -> tuple[str, str] | None:
    return iso.hub_validate(tx, bic_to_member=network_bic, minor_units=network_ccy)


def reply_for(msg: iso.ParsedMessage) -> tuple[bytes, list[TxStatus]]:
    statuses = []
    for tx in msg.transactions:
        v = verdict(tx)
        statuses.append(TxStatus.of(tx, "RJCT", *v) if v else TxStatus.of(tx, "ACSP"))
    return iso.pacs002(msg, statuses, msg_id="SETA-R-1", created_at=NOW), statuses


# ---------------------------------------------------------------- samples in, pacs.002 out


@needs_samples
@needs_xsd
@pytest.mark.parametrize("name", sample_files("pacs.008", "pacs.009", "pacs.004"))
def test_every_payment_sample_parses_and_gets_an_xsd_valid_pacs002(name: str) -> None:
    msg = iso.parse_message(read_sample(name))
    assert msg.transactions and msg.has_app_header
    statuses = [
        TxStatus.of(t, "RJCT", *v)
        if (v := iso.hub_validate(t, bic_to_member=lambda b: "M", minor_units=lambda c: 2))
        else TxStatus.of(t, "ACSC")
        for t in msg.transactions
    ]
    reply = iso.pacs002(msg, statuses, msg_id="SETA-R-1", created_at=NOW)
    assert_valid(reply)
    assert text_of(reply, "OrgnlMsgId")[0] == msg.msg_id
    assert text_of(reply, "OrgnlMsgNmId")[0] == msg.msg_type
    tx = msg.transactions[0]
    if tx.end_to_end_id:
        assert tx.end_to_end_id in text_of(reply, "OrgnlEndToEndId")
    if tx.uetr:
        assert text_of(reply, "OrgnlUETR") == [tx.uetr]


@needs_samples
@needs_xsd
@pytest.mark.parametrize("name", sample_files("pacs.008", "pacs.009"))
def test_samples_mapped_onto_the_network_are_accepted(name: str) -> None:
    data = to_network(read_sample(name))
    msg = iso.parse_message(data)
    tx = msg.transactions[0]
    # Samples that break the XSD keep that fault; everything else must be accepted.
    schema_ok = iso.parse_message(data, xsd_dir=XSD).error is None
    if not schema_ok or tx.uetr is None:
        pytest.skip("sample is not a valid CBPR+ payment (XSD fault or no UETR)")
    assert verdict(tx) is None
    assert iso.settlement_members(tx, network_bic) == ("IDBANK", "MYBANK")
    reply, statuses = reply_for(msg)
    assert_valid(reply)
    assert [s.status for s in statuses] == ["ACSP"]
    assert text_of(reply, "TxSts") == ["ACSP"]
    assert text_of(reply, "GrpSts") == ["ACSP"]
    assert text_of(reply, "OrgnlUETR") == [tx.uetr]
    assert text_of(reply, "OrgnlEndToEndId") == [tx.end_to_end_id]


@needs_samples
def test_cbpr_sample_fields_map_to_an_instruction() -> None:
    msg = iso.parse_message(read_sample("samples/cbpr_rules_mit/cbprplus_pacs008_2025.xml"))
    assert (msg.msg_id, msg.msg_type, msg.has_app_header) == ("pcs008bzmsgidr-1", "pacs.008.001.08", True)
    assert (msg.sender_bic, msg.receiver_bic, msg.business_service) == (
        "BRDEROBU",
        "BTRLRO22",
        "swift.cbprplus.02",
    )
    (tx,) = msg.transactions
    assert tx.kind == "credit_transfer"
    assert (tx.instr_id, tx.end_to_end_id, tx.uetr) == (
        "pcs008bzmsgidr-1",
        "E2E04044506271305",
        "174c245f-2682-4291-ad67-2a41e530cd27",
    )
    assert (tx.amount_text, tx.currency, tx.settlement_date) == ("12000000", "RON", "2022-10-20")
    assert (tx.instructing_agent_bic, tx.instructed_agent_bic) == ("BRDEROBU", "BTRLRO22")
    assert (tx.debtor_agent_bic, tx.creditor_agent_bic) == ("BRDEROBU", "WBANRO22")
    assert tx.intermediary_agent_bics == ("MINDROBU",)
    assert tx.debtor == iso.Party(
        name="Debtor Co",
        country="RO",
        address_lines=("35 Strada Negru Voda",),
        town="Bucuresti",
        lei="V459EV5XD3WK5MR0HW37",
        account="25698745",
    )
    assert tx.creditor is not None and (tx.creditor.name, tx.creditor.country) == ("Supplier B", "CH")
    assert [role for role, _ in tx.parties()] == ["debtor", "creditor"]
    assert tx.error is None and tx.message_error is None


@needs_samples
def test_pacs009_cov_exposes_the_underlying_customers_for_screening() -> None:
    msg = iso.parse_message(read_sample("samples/cbpr_rules_mit/minmax/pacs.009_cov.min.xml"))
    (tx,) = msg.transactions
    assert tx.kind == "fi_credit_transfer"
    assert tx.underlying_debtor is not None and tx.underlying_debtor.name == "EXAMPLE PARTY NV"
    assert "underlying_creditor" in [role for role, _ in tx.parties()]


@needs_samples
def test_pacs004_sample_becomes_a_return_of_the_original_payment() -> None:
    msg = iso.parse_message(read_sample("samples/cbpr_rules_mit/pacs004_payment_return_sample.xml"))
    (tx,) = msg.transactions
    assert tx.kind == "return"
    assert tx.instr_id == "RTR20260413-3390"
    assert (tx.amount_text, tx.currency, tx.reason_code) == ("125000", "GBP", "AC04")
    assert tx.original == iso.OriginalRef(
        msg_id="P008-20260412-1100",
        msg_type="pacs.008.001.08",
        instr_id="IN20260412-1100",
        end_to_end_id="E2E-04124421",
        uetr="c3d4e5f6-a7b8-4012-9def-123456789012",
    )
    # The returning bank (instructing agent) is debited, the original debtor's bank credited.
    assert (tx.debtor_member_bic, tx.creditor_member_bic) == ("RVNTGB2L", "HDQCFR2X")


# ---------------------------------------------------------------- hub rules: faulty variants


@pytest.fixture
def good() -> bytes:
    if not MANIFEST.is_file():
        pytest.skip(f"ISO 20022 samples not found at {MANIFEST}")
    return to_network(read_sample("samples/cbpr_rules_mit/cbprplus_pacs008_2025.xml"))


def set_text(local: str, value: str, *, within: str | None = None) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        scope = els(root, within) if within else [root]
        for s in scope:
            for el in els(s, local):
                el.text = value

    return change


def set_attr(local: str, name: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        for el in els(root, local):
            el.set(name, value)

    return change


def drop(local: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        for el in els(document_of(root), local):
            parent = el.getparent()
            assert parent is not None
            parent.remove(el)

    return change


def code_for(data: bytes, *, xsd: bool = False) -> str | None:
    msg = iso.parse_message(data, xsd_dir=XSD if xsd else None)
    v = verdict(msg.transactions[0])
    reply, _ = reply_for(msg)
    if XSD.is_dir():
        assert_valid(reply)
    return v[0] if v else None


@pytest.mark.parametrize("xsd", [False, True], ids=["hub-rules", "hub-rules+xsd"])
@pytest.mark.parametrize(
    ("change", "code"),
    [
        (set_text("BICFI", "ZZZZIDJAXXX", within="CdtrAgt"), "RC01"),  # well-formed, not a member
        (set_text("BICFI", "UNKNIDJA", within="InstgAgt"), "RC01"),
        (set_text("BICFI", "WRONGUS33XXX", within="DbtrAgt"), "RC01"),  # malformed (XSD also fails)
        (set_attr("IntrBkSttlmAmt", "Ccy", "USD"), "AM03"),
        (set_attr("IntrBkSttlmAmt", "Ccy", "XAU"), "AM03"),
        (set_text("IntrBkSttlmAmt", "1250.505"), "AM12"),  # 3 decimals for a 2-decimal currency
        (set_text("IntrBkSttlmAmt", "1250.500"), "AM12"),  # trailing zeros are still too many
        (set_text("IntrBkSttlmAmt", "0.00"), "AM12"),
        (set_text("IntrBkSttlmAmt", "99999999999999999.9"), "AM12|AM02"),  # beyond a 64-bit ledger
        (drop("EndToEndId"), "FF01"),
        (set_text("EndToEndId", ""), "FF01"),
        (set_text("UETR", "174C245F-2682-4291-AD67-2A41E530CD27"), "FF01"),  # upper case
        (set_text("UETR", "174c245f-2682-1291-ad67-2a41e530cd27"), "FF01"),  # version 1
        (set_text("UETR", "not-a-uuid"), "FF01"),
        (drop("UETR"), "FF01"),
        (set_text("NbOfTxs", "2"), "FF01"),
    ],
)
def test_faulty_variants_get_the_right_reason(
    good: bytes, change: Callable[[etree._Element], None], code: str, xsd: bool
) -> None:
    if xsd and not XSD.is_dir():
        pytest.skip(f"official XSDs not found at {XSD}")
    assert code_for(good) is None
    assert code_for(mutate(good, change), xsd=xsd) in code.split("|")


def test_bic8_and_bic11_name_the_same_member(good: bytes) -> None:
    data = mutate(good, set_text("BICFI", "BKIDIDJAXXX", within="InstgAgt"))
    tx = iso.parse_message(data).transactions[0]
    assert tx.instructing_agent_bic == "BKIDIDJAXXX"
    assert verdict(tx) is None
    assert iso.member_for_bic("BKIDIDJAXXX", network_bic) == "IDBANK"
    assert iso.member_for_bic("BKIDIDJA001", network_bic) is None  # a branch is not the head office


@needs_xsd
def test_schema_violation_is_reported_after_the_hub_rules(good: bytes) -> None:
    data = mutate(good, drop("ChrgBr"))  # mandatory in pacs.008.001.08
    assert verdict(iso.parse_message(data).transactions[0]) is None
    msg = iso.parse_message(data, xsd_dir=XSD)
    assert msg.error is not None and "pacs.008.001.08.xsd" in msg.error[1]
    assert verdict(msg.transactions[0]) == msg.error


@needs_xsd
def test_xsd_dir_can_come_from_the_environment(good: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    data = mutate(good, drop("ChrgBr"))
    monkeypatch.setenv(iso.XSD_DIR_ENV, str(XSD))
    assert iso.parse_message(data).error is not None
    monkeypatch.setenv(iso.XSD_DIR_ENV, "")
    assert iso.parse_message(data).error is None


def test_missing_schema_is_a_configuration_error(good: bytes, tmp_path: Path) -> None:
    with pytest.raises(iso.XsdConfigError, match=r"pacs\.008\.001\.08\.xsd"):
        iso.parse_message(good, xsd_dir=tmp_path)


def test_message_without_app_header_or_envelope(good: bytes) -> None:
    bare = etree.tostring(document_of(etree.fromstring(good)))
    msg = iso.parse_message(bare)
    assert not msg.has_app_header
    assert verdict(msg.transactions[0]) is None


def test_any_envelope_around_header_and_document(good: bytes) -> None:
    root = etree.fromstring(good)
    outer = etree.Element("{urn:bank:transport}DataPDU")
    body = etree.SubElement(outer, "{urn:bank:transport}Body")
    for child in list(root):
        body.append(child)
    msg = iso.parse_message(etree.tostring(outer))
    assert msg.has_app_header and msg.sender_bic == "BKIDIDJA"


def test_several_transactions_get_one_reply_with_a_partial_group_status(good: bytes) -> None:
    def add_two_more(root: etree._Element) -> None:
        doc = document_of(root)
        tx = els(doc, "CdtTrfTxInf")[0]
        parent = tx.getparent()
        assert parent is not None
        for n in range(2):
            copy = etree.fromstring(etree.tostring(tx))
            els(copy, "EndToEndId")[0].text = f"E2E-EXTRA-{n}"
            els(copy, "UETR")[0].text = str(uuid.uuid4())
            parent.append(copy)
        els(parent, "IntrBkSttlmAmt")[-1].set("Ccy", "USD")
        els(doc, "NbOfTxs")[0].text = "3"

    msg = iso.parse_message(mutate(good, add_two_more))
    assert len(msg.transactions) == 3 and msg.error is None
    reply, statuses = reply_for(msg)
    assert [s.status for s in statuses] == ["ACSP", "ACSP", "RJCT"]
    assert text_of(reply, "GrpSts") == ["PART"]
    assert text_of(reply, "Cd") == ["AM03"]
    if XSD.is_dir():
        assert_valid(reply)


def test_transaction_limit(good: bytes) -> None:
    with pytest.raises(Iso20022Error, match="limit is 0") as info:
        iso.parse_message(good, max_transactions=0)
    assert info.value.msg_id is not None and info.value.msg_type == "pacs.008.001.08"


@needs_xsd
def test_pacs002_for_an_unreadable_message_is_xsd_valid() -> None:
    try:
        iso.parse_message(b"<Document><broken></Document>")
    except Iso20022Error as exc:
        reply = iso.pacs002_message_rejected(
            exc.msg_id, exc.msg_type, exc.reason_code, exc.text, msg_id="SETA-R-2", created_at=NOW
        )
    assert_valid(reply)
    assert text_of(reply, "GrpSts") == ["RJCT"] and text_of(reply, "OrgnlMsgId") == ["NOTPROVIDED"]


@needs_xsd
def test_pacs002_statuses_and_odd_reasons_stay_xsd_valid(good: bytes) -> None:
    msg = iso.parse_message(good)
    tx = msg.transactions[0]
    for status, code, text in [
        ("ACSC", None, None),
        ("PDNG", "RR04", "held for compliance review"),
        ("RJCT", "DUPL", "x" * 400),
        ("RJCT", "SELF_PAYMENT", "a debtor paying itself"),  # not an ISO code: sent as NARR
    ]:
        reply = iso.pacs002(msg, [TxStatus.of(tx, status, code, text)], msg_id="R", created_at=NOW)
        assert_valid(reply)
        assert text_of(reply, "TxSts") == [status]
    with pytest.raises(ValueError, match="reason"):
        iso.pacs002(msg, [TxStatus.of(tx, "RJCT")], msg_id="R", created_at=NOW)


# ---------------------------------------------------------------- other versions


@needs_samples
@needs_xsd
@pytest.mark.parametrize(
    ("sample", "version"),
    [
        ("samples/cbpr_rules_mit/minmax/pacs.008.min.xml", "pacs.008.001.12"),
        ("samples/cbpr_rules_mit/minmax/pacs.009.min.xml", "pacs.009.001.11"),
    ],
)
def test_newer_versions_are_accepted(sample: str, version: str) -> None:
    doc = document_of(etree.fromstring(to_network(read_sample(sample))))
    old_ns = etree.QName(doc).namespace or ""
    text = etree.tostring(doc).decode().replace(old_ns, f"urn:iso:std:iso:20022:tech:xsd:{version}")
    data = text.encode()
    assert iso.validate_document(data, xsd_dir=XSD) == []  # a genuine document of that version
    msg = iso.parse_message(data, xsd_dir=XSD)
    assert msg.msg_type == version and msg.error is None
    assert verdict(msg.transactions[0]) is None


# ---------------------------------------------------------------- camt.056 -> camt.029


def camt056(uetr: str, *, reason: str = "DUPL") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.056.001.08">
 <FIToFIPmtCxlReq>
  <Assgnmt><Id>CXL-REQ-1</Id>
   <Assgnr><Agt><FinInstnId><BICFI>BKIDIDJA</BICFI></FinInstnId></Agt></Assgnr>
   <Assgne><Agt><FinInstnId><BICFI>{HUB}</BICFI></FinInstnId></Agt></Assgne>
   <CreDtTm>2026-11-29T09:00:00+00:00</CreDtTm></Assgnmt>
  <Undrlyg><TxInf>
   <CxlId>CXL-1</CxlId>
   <Case><Id>CASE-1</Id><Cretr><Agt><FinInstnId><BICFI>BKIDIDJA</BICFI></FinInstnId></Agt></Cretr></Case>
   <OrgnlGrpInf><OrgnlMsgId>MSG-1</OrgnlMsgId><OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId></OrgnlGrpInf>
   <OrgnlInstrId>INSTR-1</OrgnlInstrId>
   <OrgnlEndToEndId>E2E-1</OrgnlEndToEndId>
   <OrgnlUETR>{uetr}</OrgnlUETR>
   <OrgnlIntrBkSttlmAmt Ccy="IDR">1250.50</OrgnlIntrBkSttlmAmt>
   <OrgnlIntrBkSttlmDt>2026-11-29</OrgnlIntrBkSttlmDt>
   <CxlRsnInf><Rsn><Cd>{reason}</Cd></Rsn></CxlRsnInf>
  </TxInf></Undrlyg>
 </FIToFIPmtCxlReq>
</Document>""".encode()


def test_camt056_names_the_payment_to_cancel() -> None:
    uetr = str(uuid.uuid4())
    msg = iso.parse_message(camt056(uetr), xsd_dir=XSD if XSD.is_dir() else None)
    assert (msg.msg_id, msg.msg_type, msg.error) == ("CXL-REQ-1", "camt.056.001.08", None)
    (tx,) = msg.transactions
    assert tx.kind == "cancellation_request"
    assert tx.original == iso.OriginalRef("MSG-1", "pacs.008.001.08", "INSTR-1", "E2E-1", None, uetr)
    assert (tx.instr_id, tx.case_id, tx.reason_code, tx.instructing_agent_bic) == (
        "CXL-1",
        "CASE-1",
        "DUPL",
        "BKIDIDJA",
    )
    assert verdict(tx) is None
    unknown = iso.parse_message(camt056(uetr).replace(b">BKIDIDJA<", b">ZZZZIDJA<")).transactions[0]
    assert verdict(unknown) is not None and verdict(unknown)[0] == "RC01"  # type: ignore[index]


@needs_xsd
@pytest.mark.parametrize(("accepted", "code"), [(True, None), (False, "AGNT"), (False, "NOOR")])
def test_camt029_answers_a_camt056(accepted: bool, code: str | None) -> None:
    uetr = str(uuid.uuid4())
    tx = iso.parse_message(camt056(uetr)).transactions[0]
    reply = iso.camt029(tx, accepted, code, msg_id="SETA-C-1", created_at=NOW, reason_text="settled, final")
    assert_valid(reply)
    assert text_of(reply, "Conf") == ["CNCL" if accepted else "RJCR"]
    assert text_of(reply, "TxCxlSts") == ["ACCR" if accepted else "RJCR"]
    assert text_of(reply, "OrgnlUETR") == [uetr]
    assert text_of(reply, "OrgnlEndToEndId") == ["E2E-1"]
    if code:
        assert code in text_of(reply, "Cd")


# ---------------------------------------------------------------- pacs.004 out and back in


@needs_xsd
def test_pacs004_round_trip() -> None:
    original = iso.OriginalRef("MSG-1", "pacs.008.001.08", "INSTR-1", "E2E-1", None, str(uuid.uuid4()))
    data = iso.pacs004(
        original,
        return_id="RTR-1",
        currency="IDR",
        minor_units=2,
        amount_minor=125_050,
        original_amount_minor=125_050,
        instructing_agent_bic="BKMYMYKL",
        instructed_agent_bic="BKIDIDJA",
        reason_code="AC04",
        reason_text="account closed",
        msg_id="SETA-P4-1",
        created_at=NOW,
        settlement_date=NOW.date(),
    )
    assert_valid(data)
    msg = iso.parse_message(data, xsd_dir=XSD)
    (tx,) = msg.transactions
    assert (tx.kind, tx.instr_id, tx.amount_text, tx.currency, tx.reason_code) == (
        "return",
        "RTR-1",
        "1250.50",
        "IDR",
        "AC04",
    )
    assert tx.original == original
    assert verdict(tx) is None
    assert iso.settlement_members(tx, network_bic) == ("MYBANK", "IDBANK")


# ---------------------------------------------------------------- statements and notifications


def entry(n: int, amount: int, credit: bool, **kw: object) -> StatementEntry:
    return StatementEntry(
        payment_id=f"P{n}",
        amount_minor=amount,
        credit=credit,
        booked_at=NOW + timedelta(minutes=n),
        end_to_end_id=f"E2E-{n}",
        uetr=str(uuid.uuid4()),
        counterparty_bic="BKMYMYKL",
        counterparty_member="MYBANK",
        **kw,  # type: ignore[arg-type]
    )


@needs_xsd
def test_camt053_references_every_payment_batch_booked_or_not() -> None:
    entries = [
        entry(1, 125_050, True),
        entry(2, 50_000, False),
        entry(3, 10_000, True, batch_id="CYCLE-7"),
        entry(4, 30_000, False, batch_id="CYCLE-7"),
        entry(5, 1, True, instr_id="I5", tx_id="T5", msg_id="M5"),
    ]
    opening = -20_000  # a used credit line
    closing = opening + 125_050 - 50_000 + 10_000 - 30_000 + 1
    data = iso.camt053(
        "BKIDIDJA",
        "IDBANK",
        "IDR",
        2,
        opening,
        closing,
        entries,
        msg_id="SETA-S-1",
        created_at=NOW,
        from_to=(NOW, NOW + timedelta(days=1)),
    )
    assert_valid(data)
    assert sorted(text_of(data, "UETR")) == sorted(e.uetr for e in entries if e.uetr)
    assert text_of(data, "EndToEndId") == [e.end_to_end_id for e in entries]
    assert len(text_of(data, "NtryRef")) == 4  # the cycle is one batch entry
    assert text_of(data, "PmtInfId") == ["CYCLE-7"]
    balances = etree.fromstring(data)
    cdt_dbt = [els(b, "CdtDbtInd")[0].text for b in els(balances, "Bal")]
    assert cdt_dbt == ["DBIT", "CRDT"]


@needs_xsd
def test_empty_statement_is_valid() -> None:
    data = iso.camt053(
        "BKIDIDJA", "IDBANK", "IDR", 2, 0, 0, [], msg_id="S", created_at=NOW, from_to=(NOW, NOW)
    )
    assert_valid(data)


def test_statement_that_does_not_reconcile_is_refused() -> None:
    with pytest.raises(ValueError, match="reconcile"):
        iso.camt053(
            "BKIDIDJA",
            "IDBANK",
            "IDR",
            2,
            0,
            5,
            [entry(1, 4, True)],
            msg_id="S",
            created_at=NOW,
            from_to=(NOW, NOW),
        )


@needs_xsd
@pytest.mark.parametrize("credit", [True, False])
def test_camt054_notifies_one_settled_payment(credit: bool) -> None:
    e = entry(1, 125_050, credit)
    data = iso.camt054("BKIDIDJA", "IDBANK", "IDR", 2, e, msg_id="SETA-N-1", created_at=NOW)
    assert_valid(data)
    assert text_of(data, "UETR") == [e.uetr]
    assert text_of(data, "CdtDbtInd")[0] == ("CRDT" if credit else "DBIT")
    # naive times are taken as UTC
    naive = iso.camt054(
        "BKIDIDJA", "IDBANK", "JPY", 0, entry(2, 7, credit), msg_id="N", created_at=datetime(2026, 1, 1)
    )
    assert_valid(naive)


# ---------------------------------------------------------------- hostile and broken input


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf><GrpHdr>
<MsgId>&xxe;</MsgId></GrpHdr></FIToFICstmrCdtTrf></Document>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (XXE, "DOCTYPE"),
        (LAUGHS, "DOCTYPE"),
        (b"<!doctype x><x/>", "DOCTYPE"),
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<Document", "not well-formed"),
        (b"<a><b></a>", "not well-formed"),
        (b"\xff\xfe<\x00a\x00/\x00>\x00", "UTF-8"),
        (b"<a>\xc3\x28</a>", "UTF-8"),
        (b"<x/>", "no ISO 20022 Document"),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>', "not accepted"),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"/>', "FIToFICstmrCdtTrf"),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf>'
            b"<GrpHdr><MsgId>M</MsgId></GrpHdr></FIToFICstmrCdtTrf></Document>",
            "no CdtTrfTxInf",
        ),
        (b"<a>" * 100 + b"</a>" * 100, "deeper"),
        (b"<a>" + b"<b/>" * 300_000 + b"</a>", "bytes"),
        ("<Document>ünïcödé</Document>".encode("latin-1"), "UTF-8"),
    ],
)
def test_malformed_or_hostile_input_is_a_clear_ff01(data: bytes, fragment: str) -> None:
    with pytest.raises(Iso20022Error) as info:
        iso.parse_message(data)
    assert info.value.reason_code == "FF01"
    assert fragment in info.value.text
    assert "/etc/passwd" not in info.value.text and "lollol" not in info.value.text


def test_size_limit_is_configurable(good: bytes) -> None:
    with pytest.raises(Iso20022Error, match="limit is 100"):
        iso.parse_message(good, max_bytes=100)


def test_detect_xml() -> None:
    assert iso.detect_xml(b'  \n<?xml version="1.0"?><Document/>')
    assert iso.detect_xml(b"\xef\xbb\xbf<Document/>")
    assert not iso.detect_xml(b'{"id": "P1"}\n')
    assert not iso.detect_xml(b"")


@pytest.mark.parametrize(
    ("ctrl_sum", "code"),
    [("1250.50", None), ("1250.5", None), ("1250.51", "AM10"), ("9E+999999", None), ("-1", None)],
)
def test_control_sum_is_compared_exactly(good: bytes, ctrl_sum: str, code: str | None) -> None:
    def add_ctrl_sum(root: etree._Element) -> None:
        nb = els(document_of(root), "NbOfTxs")[0]
        ctrl = etree.Element(f"{{{etree.QName(nb).namespace}}}CtrlSum")
        ctrl.text = ctrl_sum
        nb.addnext(ctrl)
        nb.text = "01"  # a count with a leading zero is still one

    msg = iso.parse_message(mutate(good, add_ctrl_sum))
    v = verdict(msg.transactions[0])
    assert (v[0] if v else None) == code


def test_over_long_fields_are_ff01(good: bytes) -> None:
    for local, limit in (("EndToEndId", 35), ("Nm", 140), ("StrtNm", 70)):
        tx = iso.parse_message(mutate(good, set_text(local, "x" * (limit + 1)))).transactions[0]
        assert tx.error is not None and tx.error[0] == "FF01" and local in tx.error[1]
        assert verdict(tx) == tx.error


@needs_samples
def test_screening_fields_match_the_json_instruction_shape() -> None:
    tx = iso.parse_message(read_sample("samples/cbpr_rules_mit/cbprplus_pacs008_2025.xml")).transactions[0]
    assert tx.screening_fields() == {
        "debtor_name": "Debtor Co",
        "debtor_country": "RO",
        "debtor_address": "35 Strada Negru Voda, Bucuresti",
        "creditor_name": "Supplier B",
        "creditor_country": "CH",
        "creditor_address": "Calea Victoriei 63, Zurich",
        "debtor_bic_countries": ["RO"],
    }
    cov = iso.parse_message(read_sample("samples/cbpr_rules_mit/minmax/pacs.009_cov.min.xml")).transactions[0]
    fields = cov.screening_fields()
    assert fields["ultimate_debtor_name"] == fields["ultimate_creditor_name"] == "EXAMPLE PARTY NV"
    assert fields["debtor_bic_countries"] == ["GB", "US"]


@needs_xsd
def test_long_payment_ids_move_to_the_narrative() -> None:
    e = StatementEntry(
        payment_id="P" * 64,
        amount_minor=5,
        credit=True,
        booked_at=NOW,
        end_to_end_id=None,
        uetr=None,
        counterparty_bic=None,
        counterparty_member="CB_ID",
    )
    data = iso.camt053(
        "BKIDIDJA", "IDBANK", "IDR", 2, 0, 5, [e], msg_id="S", created_at=NOW, from_to=(NOW, NOW)
    )
    assert_valid(data)
    assert "P" * 64 in text_of(data, "AddtlTxInf")[0]


@needs_xsd
def test_our_messages_can_travel_with_an_app_header() -> None:
    original = iso.OriginalRef("MSG-1", "pacs.008.001.08", None, "E2E-1", None, str(uuid.uuid4()))
    document = iso.pacs004(
        original,
        return_id="RTR-2",
        currency="IDR",
        minor_units=2,
        amount_minor=1,
        instructing_agent_bic="BKMYMYKL",
        instructed_agent_bic="BKIDIDJA",
        reason_code="AC04",
        msg_id="SETA-P4-2",
        created_at=NOW,
        settlement_date=NOW,
    )
    wrapped = iso.with_app_header(
        document,
        from_bic=HUB,
        to_bic="BKIDIDJA",
        biz_msg_id="SETA-P4-2",
        created_at=NOW,
        business_service="swift.cbprplus.02",
    )
    msg = iso.parse_message(wrapped, xsd_dir=XSD)  # validates the AppHdr against head.001.001.02
    assert msg.has_app_header and msg.error is None
    assert (msg.sender_bic, msg.receiver_bic, msg.business_service) == (HUB, "BKIDIDJA", "swift.cbprplus.02")
