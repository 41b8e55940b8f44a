"""Property tests: whatever bytes a member sends, the adapter answers with a reason or a valid
reply — never a traceback, never a hang, never an XSD-invalid message of ours."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from setara import iso20022 as iso
from setara.iso20022 import Iso20022Error, StatementEntry, TxStatus

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "iso20022"
XSD = DATA / "xsd"
SAMPLES = [
    "samples/cbpr_rules_mit/cbprplus_pacs008_2025.xml",
    "samples/cbpr_rules_mit/pacs009_fi_transfer_sample.xml",
    "samples/cbpr_rules_mit/pacs004_payment_return_sample.xml",
    "samples/cbpr_rules_mit/minmax/pacs.008.max.xml",
    "samples/cbpr_rules_mit/minmax/pacs.009_cov.min.xml",
]
pytestmark = pytest.mark.skipif(
    not (DATA / "samples").is_dir() or not XSD.is_dir(), reason=f"ISO 20022 samples/XSDs not found at {DATA}"
)
NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CODES = {"FF01", "RC01", "AM03", "AM12", "AM02", "AM10"}


def sample(i: int) -> bytes:
    return (DATA / SAMPLES[i % len(SAMPLES)]).read_bytes()


def bics(bic: str) -> str | None:
    return "M-" + bic[:4]


def units(ccy: str) -> int | None:
    return {"RON": 2, "JPY": 0, "GBP": 2, "EUR": 2, "IDR": 2}.get(ccy)


def answer(data: bytes) -> None:
    """Parse, judge and reply as `setara submit` does; every outcome must be orderly."""
    try:
        msg = iso.parse_message(data)
    except Iso20022Error as exc:
        assert exc.reason_code == "FF01" and exc.text
        reply = iso.pacs002_message_rejected(
            exc.msg_id, exc.msg_type, exc.reason_code, exc.text, msg_id="R", created_at=NOW
        )
    else:
        statuses = []
        for tx in msg.transactions:
            v = iso.hub_validate(tx, bic_to_member=bics, minor_units=units)
            assert v is None or (v[0] in CODES and v[1])
            statuses.append(TxStatus.of(tx, "RJCT", *v) if v else TxStatus.of(tx, "ACSC"))
            tx.parties()
            tx.screening_fields()
        reply = iso.pacs002(msg, statuses, msg_id="R", created_at=NOW)
    assert iso.validate_document(reply, xsd_dir=XSD) == []


@FUZZ
@given(st.integers(0, 10**6), st.integers(0, 100_000))
def test_truncated_messages(which: int, cut: int) -> None:
    data = sample(which)
    answer(data[: cut % (len(data) + 1)])


def test_a_well_shaped_but_impossible_creation_time_is_not_echoed() -> None:
    # Found by test_flipped_bytes: a byte turned CreDtTm's seconds into 60, which the reply echoed
    # as OrgnlCreDtTm, making our own pacs.002 invalid against its schema.
    data = sample(0)
    root = etree.fromstring(data)
    created = next(e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == "CreDtTm")
    assert created.text is not None
    created.text = created.text[:17] + "60" + created.text[19:]
    answer(etree.tostring(root))


@FUZZ
@given(
    st.integers(0, 10**6),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_flipped_bytes(which: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(sample(which))
    for pos, value in flips:
        data[pos % len(data)] = value
    answer(bytes(data))


def _elements(root: etree._Element) -> list[etree._Element]:
    return [e for e in root.iter() if isinstance(e.tag, str) and e.getparent() is not None]


@FUZZ
@given(st.integers(0, 10**6), st.lists(st.integers(0, 10**6), min_size=1, max_size=4))
def test_removed_elements(which: int, picks: list[int]) -> None:
    root = etree.fromstring(sample(which))
    for pick in picks:
        candidates = _elements(root)
        if not candidates:
            break
        el = candidates[pick % len(candidates)]
        parent = el.getparent()
        assert parent is not None
        parent.remove(el)
    answer(etree.tostring(root))


XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=200)


@FUZZ
@given(st.integers(0, 10**6), st.integers(0, 10**6), XML_TEXT)
def test_replaced_leaf_text(which: int, pick: int, text: str) -> None:
    root = etree.fromstring(sample(which))
    leaves = [e for e in _elements(root) if len(e) == 0]
    leaves[pick % len(leaves)].text = text
    answer(etree.tostring(root))


AMOUNTS = st.one_of(
    st.integers(0, 8)
    .flatmap(lambda p: st.decimals(allow_nan=False, allow_infinity=False, places=p))
    .map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.text("0123456789.-+eE ,", max_size=45),
)


@FUZZ
@given(AMOUNTS, st.sampled_from(["RON", "JPY", "IDR", "XAU", "usd", ""]))
def test_amounts_and_currencies(amount: str, ccy: str) -> None:
    root = etree.fromstring(sample(0))
    for el in root.iter("{*}IntrBkSttlmAmt"):
        el.text = amount
        el.set("Ccy", ccy)
    msg = iso.parse_message(etree.tostring(root))
    v = iso.hub_validate(msg.transactions[0], bic_to_member=bics, minor_units=units)
    if units(ccy) is None:
        assert v is not None and v[0] == "AM03"
    elif v is not None:
        assert v[0] in {"AM12", "AM02"}
    else:  # accepted: the text is an exact, positive amount with at most the currency's decimals
        assert "." not in amount or len(amount.split(".")[1]) <= (units(ccy) or 0)
    answer(etree.tostring(root))


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(1, 10**15), st.booleans(), st.sampled_from([None, "B1", "B2"]), XML_TEXT),
        max_size=12,
    ),
    st.integers(-(10**15), 10**15),
    st.sampled_from([("IDR", 2), ("JPY", 0), ("BHD", 3)]),
)
def test_statements_always_validate(
    moves: list[tuple[int, bool, str | None, str]], opening: int, currency: tuple[str, int]
) -> None:
    entries = [
        StatementEntry(
            payment_id=f"P{i}",
            amount_minor=amount,
            credit=credit,
            booked_at=NOW + timedelta(seconds=i),
            end_to_end_id=note[:40] or None,  # ids the schema would refuse are left out
            uetr=str(uuid.uuid4()),
            counterparty_bic="BKMYMYKL",
            counterparty_member=note or "M",
            batch_id=batch,
        )
        for i, (amount, credit, batch, note) in enumerate(moves)
    ]
    closing = opening + sum(e.amount_minor if e.credit else -e.amount_minor for e in entries)
    ccy, minor = currency
    data = iso.camt053(
        "BKIDIDJA",
        "IDBANK",
        ccy,
        minor,
        opening,
        closing,
        entries,
        msg_id="S",
        created_at=NOW,
        from_to=(NOW, NOW + timedelta(days=1)),
    )
    assert iso.validate_document(data, xsd_dir=XSD) == []
    for e in entries[:2]:
        note = iso.camt054("BKIDIDJA", "IDBANK", ccy, minor, e, msg_id="N", created_at=NOW)
        assert iso.validate_document(note, xsd_dir=XSD) == []


@FUZZ
@given(XML_TEXT, XML_TEXT, XML_TEXT, st.sampled_from(["ACSC", "ACSP", "PDNG", "RJCT"]), XML_TEXT)
def test_pacs002_with_arbitrary_references(e2e: str, uetr: str, code: str, status: str, text: str) -> None:
    msg = iso.ParsedMessage(
        msg_id=e2e or "M", msg_type="pacs.008.001.08", transactions=(), has_app_header=False
    )
    status_ = TxStatus(e2e, uetr, e2e, None, status, code or ("NARR" if status == "RJCT" else None), text)
    reply = iso.pacs002(msg, [status_], msg_id="R", created_at=NOW)
    assert iso.validate_document(reply, xsd_dir=XSD) == []
