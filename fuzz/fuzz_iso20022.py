"""Fuzz the ISO 20022 parser with atheris: `setara.iso20022.parse_message`, the hub's rules and the
pacs.002 answer, as `setara submit`/`POST /v1/iso20022` use them (setara.node.messaging).

What must hold for any input bytes:
- the message is parsed, or refused with `Iso20022Error` (a reason code), never another exception;
- a refused message still gets a message-level pacs.002 (RJCT) that is well-formed XML;
- a parsed message is parsed the same way twice; each transaction is accepted by the hub's rules
  or refused with a reason code; the pacs.002 answering all of them is well-formed, says RJCT for
  the refused ones, and echoes every accepted transaction's original ids (its round trip).

    .venv/bin/python fuzz/fuzz_iso20022.py fuzz/corpus/iso20022 -max_total_time=60
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports(include=["setara"]):
    from lxml import etree

    from setara import iso20022 as iso
    from setara.core.network import example_toml, load_network

NET = load_network(example_toml())
CREATED = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
REASON = re.compile(r"[A-Z0-9]{4}")
PACS002 = "{urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10}"


def well_formed(xml: bytes) -> etree._Element:
    return etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))


def texts(root: etree._Element, local: str) -> list[str]:
    return [e.text or "" for e in root.iter(PACS002 + local)]


def TestOneInput(data: bytes) -> None:  # atheris calls it by this name
    try:
        msg = iso.parse_message(data)
    except iso.Iso20022Error as e:
        assert REASON.fullmatch(e.reason_code), e.reason_code
        reply = iso.pacs002_message_rejected(e.msg_id, e.msg_type, e.reason_code, e.text, msg_id="SETARJ1",
                                             created_at=CREATED, hub_bic=NET.operator_bic,
                                             receiver_bic=e.sender_bic)
        assert texts(well_formed(reply), "GrpSts") == ["RJCT"]
        return
    assert iso.parse_message(data) == msg
    if msg.msg_type.startswith("camt.056"):
        return  # answered with camt.029 against the engine's state (tests/test_iso_flow.py)
    statuses = []
    accepted = []
    for tx in msg.transactions:
        fault = iso.hub_validate(tx, bic_to_member=NET.member_by_bic, minor_units=NET.minor_units)
        if fault is None:
            accepted.append(tx)
            statuses.append(iso.TxStatus.of(tx, "ACSC", None, None))
        else:
            assert REASON.fullmatch(fault[0]) and fault[1], fault
            statuses.append(iso.TxStatus.of(tx, "RJCT", fault[0], fault[1][:105]))
    if not statuses:
        return
    root = well_formed(iso.pacs002(msg, statuses, msg_id="SETA1", created_at=CREATED, hub_bic=NET.operator_bic))
    assert texts(root, "TxSts") == [s.status for s in statuses], (texts(root, "TxSts"), statuses)
    uetrs = texts(root, "OrgnlUETR")
    e2es = texts(root, "OrgnlEndToEndId")
    for tx in accepted:
        assert tx.uetr is None or tx.uetr in uetrs, (tx.uetr, uetrs)
        assert tx.end_to_end_id is None or tx.end_to_end_id in e2es, (tx.end_to_end_id, e2es)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
