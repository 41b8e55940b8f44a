"""ISO 20022 end to end through `setara submit`: replies, statements, cancellations, returns."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree

from setara import iso20022 as iso
from tests.conftest import requires_shared, run_cli

SAMPLE = ("iso20022", "samples", "cbpr_rules_mit", "cbprplus_pacs008_2025.xml")
# The sample's agents mapped onto the example network's BICs.
BIC_MAP = {"BRDEROBU": "NUSAIDJAXXX", "BTRLRO22": "SELAMYKLXXX", "MINDROBU": "JAWAIDJA", "WBANRO22": "BORNMYKL"}


def schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(requires_shared("iso20022", "xsd", name))))


def message(amount: str = "1250.50", ccy: str = "IDR", *, uetr: str | None = None, e2e: str | None = None) -> bytes:
    text = requires_shared(*SAMPLE).read_text()
    for old, new in BIC_MAP.items():
        text = text.replace(old, new)
    text = re.sub(r'IntrBkSttlmAmt Ccy="RON">[^<]*<', f'IntrBkSttlmAmt Ccy="{ccy}">{amount}<', text)
    text = re.sub(r"<(\w+:)?UETR>[^<]*<", lambda m: f"<{m.group(1) or ''}UETR>{uetr or uuid.uuid4()}<", text)
    text = re.sub(r"<(\w+:)?EndToEndId>[^<]*<", lambda m: f"<{m.group(1) or ''}EndToEndId>"
                  f"{e2e or 'E2E' + uuid.uuid4().hex[:12]}<", text)
    text = re.sub(r"<(\w+:)?(MsgId|BizMsgIdr)>[^<]*<", lambda m: f"<{m.group(1) or ''}{m.group(2)}>"
                  f"M{uuid.uuid4().hex[:16]}<", text)
    text = re.sub(r"<(\w+:)?IntrBkSttlmDt>[^<]*<", lambda m: f"<{m.group(1) or ''}IntrBkSttlmDt>"
                  f"{date.today().isoformat()}<", text)
    return text.encode()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    path = tmp_path / "s.db"
    run_cli("init", "--network", str(net), "--db", str(path))
    return path


def submit_xml(db: Path, tmp_path: Path, data: bytes, name: str = "m.xml") -> tuple[list[str], list[bytes]]:
    f = tmp_path / name
    f.write_bytes(data)
    replies = tmp_path / f"replies-{name}"
    xsd = requires_shared("iso20022", "xsd")
    out = run_cli("submit", str(f), "--db", str(db), "--replies", str(replies), "--xsd-dir", str(xsd))
    return out.stdout.decode().splitlines(), [p.read_bytes() for p in sorted(replies.glob("*.xml"))]


def test_accepted_message_gets_valid_pacs002_with_original_ids(db: Path, tmp_path: Path) -> None:
    uetr = str(uuid.uuid4())
    acks, replies = submit_xml(db, tmp_path, message(uetr=uetr, e2e="E2E-A-1"))
    assert acks == [f"{uetr} SETTLED"]
    schema("pacs.002.001.10.xsd").assertValid(etree.fromstring(replies[0]))
    text = replies[0].decode()
    assert "<TxSts>ACSC</TxSts>" in text and uetr in text and "E2E-A-1" in text
    # Queued (too large for the debtor now): accepted, settlement in process.
    acks, replies = submit_xml(db, tmp_path, message("26000000000.00"), "big.xml")
    assert acks[0].endswith("QUEUED") and "<TxSts>ACSP</TxSts>" in replies[0].decode()


@pytest.mark.parametrize(("change", "code"), [
    (lambda t: t.replace("SELAMYKLXXX", "ZZZZMYKLXXX"), "RC01"),
    (lambda t: t.replace('Ccy="IDR"', 'Ccy="USD"'), "AM03"),
    (lambda t: re.sub(r'(Ccy="IDR">)[^<]*<', r"\g<1>1250.505<", t), "AM12"),
    (lambda t: re.sub(r"<(\w+:)?EndToEndId>[^<]*</(\w+:)?EndToEndId>", "", t), "FF01"),
])
def test_faulty_messages_get_rjct_with_the_reason(db: Path, tmp_path: Path, change: object, code: str) -> None:
    data = change(message().decode()).encode()  # type: ignore[operator]
    acks, replies = submit_xml(db, tmp_path, data)
    assert acks[0].split()[1:3] == ["REJECTED", code]
    schema("pacs.002.001.10.xsd").assertValid(etree.fromstring(replies[0]))
    assert "<TxSts>RJCT</TxSts>" in replies[0].decode() and f"<Cd>{code}</Cd>" in replies[0].decode()


def test_malformed_xml_is_a_clear_rejection(db: Path, tmp_path: Path) -> None:
    f = tmp_path / "bad.xml"
    f.write_bytes(b"<?xml version='1.0'?><Document><unclosed></Document>")
    proc = run_cli("submit", str(f), "--db", str(db))
    assert proc.stdout.decode().startswith("line:1 REJECTED FF01") and b"Traceback" not in proc.stderr


def test_statement_references_every_settled_payment(db: Path, tmp_path: Path) -> None:
    uetrs = [str(uuid.uuid4()) for _ in range(3)]
    for i, u in enumerate(uetrs):
        submit_xml(db, tmp_path, message(f"{100 + i}.00", uetr=u), f"m{i}.xml")
    out = run_cli("statement", "--member", "BANK_ID1", "--currency", "IDR", "--format", "camt053", "--db", str(db))
    schema("camt.053.001.08.xsd").assertValid(etree.fromstring(out.stdout))
    assert all(u in out.stdout.decode() for u in uetrs)


def test_camt056_cancels_a_queued_payment_and_camt029_answers(db: Path, tmp_path: Path) -> None:
    uetr = str(uuid.uuid4())
    acks, _ = submit_xml(db, tmp_path, message("26000000000.00", uetr=uetr))
    assert acks == [f"{uetr} QUEUED"]
    cxl = f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.056.001.08"><FIToFIPmtCxlReq>
 <Assgnmt><Id>CXL-REQ-1</Id><Assgnr><Agt><FinInstnId><BICFI>NUSAIDJAXXX</BICFI></FinInstnId></Agt></Assgnr>
  <Assgne><Agt><FinInstnId><BICFI>SETASGSG</BICFI></FinInstnId></Agt></Assgne>
  <CreDtTm>2026-11-29T09:00:00+00:00</CreDtTm></Assgnmt>
 <Undrlyg><TxInf><CxlId>CXL-1</CxlId>
  <Case><Id>CASE-1</Id><Cretr><Agt><FinInstnId><BICFI>NUSAIDJAXXX</BICFI></FinInstnId></Agt></Cretr></Case>
  <OrgnlGrpInf><OrgnlMsgId>MSG-1</OrgnlMsgId><OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId></OrgnlGrpInf>
  <OrgnlUETR>{uetr}</OrgnlUETR>
  <CxlRsnInf><Rsn><Cd>CUST</Cd></Rsn></CxlRsnInf>
 </TxInf></Undrlyg></FIToFIPmtCxlReq></Document>""".encode()
    acks, replies = submit_xml(db, tmp_path, cxl, "cxl.xml")
    assert acks == [f"{uetr} CANCELLED"]
    schema("camt.029.001.09.xsd").assertValid(etree.fromstring(replies[0]))


def test_pacs004_returns_a_settled_payment_as_a_new_transfer(db: Path, tmp_path: Path) -> None:
    uetr = str(uuid.uuid4())
    acks, _ = submit_xml(db, tmp_path, message("500.00", uetr=uetr, e2e="E2E-R-1"))
    assert acks == [f"{uetr} SETTLED"]
    ret = iso.pacs004(
        iso.OriginalRef(msg_id="M1", msg_type="pacs.008.001.08", instr_id=None, end_to_end_id="E2E-R-1",
                        tx_id=None, uetr=uetr),
        return_id="RTR-1", currency="IDR", minor_units=2, amount_minor=50000,
        instructing_agent_bic="SELAMYKLXXX", instructed_agent_bic="NUSAIDJAXXX", reason_code="AC04",
        msg_id="RET-MSG-1", created_at=datetime.now(UTC), settlement_date=date.today())
    acks, replies = submit_xml(db, tmp_path, ret, "ret.xml")
    assert acks == ["RTR-1 SETTLED"]
    schema("pacs.002.001.10.xsd").assertValid(etree.fromstring(replies[0]))
    out = run_cli("export", "payments", "--db", str(db)).stdout.decode()
    assert f"{uetr},BANK_ID1,BANK_MY1,IDR,500.00,SETTLED" in out  # the original never changes
    assert "RTR-1,BANK_MY1,BANK_ID1,IDR,500.00,SETTLED" in out
    run_cli("verify", "--db", str(db))
