"""The hub's own acceptance rules, applied to every instruction whatever the schema says.

The XSD admits five decimals in any currency, any three letters as a currency and any
well-formed BIC; the network is narrower. Each rule answers with the ISO external status reason
code a member's back office already knows how to handle.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from setara.core.money import AmountError, parse_amount

from ._model import ParsedTransaction

__all__ = ["AMOUNT_MINOR_MAX", "BIC_RE", "UETR_RE", "hub_validate", "member_for_bic", "settlement_members"]

BIC_RE = re.compile(r"^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
# The XSD's UUIDv4Identifier pattern: lower-case, version 4, RFC 4122 variant.
UETR_RE = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}$")
# Balances and postings are stored as signed 64-bit integers; anything larger cannot be settled.
AMOUNT_MINOR_MAX = 2**63 - 1


def _bic_forms(bic: str) -> Iterator[str]:
    # BIC8 and BIC8+"XXX" name the same institution (its head office); members register either.
    yield bic
    if len(bic) == 11 and bic.endswith("XXX"):
        yield bic[:8]
    elif len(bic) == 8:
        yield bic + "XXX"


def member_for_bic(bic: str | None, bic_to_member: Callable[[str], str | None]) -> str | None:
    if bic is None or not BIC_RE.match(bic):
        return None
    for form in _bic_forms(bic):
        member = bic_to_member(form)
        if member is not None:
            return member
    return None


def settlement_members(
    tx: ParsedTransaction, bic_to_member: Callable[[str], str | None]
) -> tuple[str | None, str | None]:
    """(debtor member, creditor member) of the accounts this transaction would move money between."""
    return (
        member_for_bic(tx.debtor_member_bic, bic_to_member),
        member_for_bic(tx.creditor_member_bic, bic_to_member),
    )


def _agent_fault(label: str, bic: str, bic_to_member: Callable[[str], str | None]) -> tuple[str, str] | None:
    if not BIC_RE.match(bic):
        return ("RC01", f"{label} BIC {bic[:40]!r} is not a well-formed BIC")
    if member_for_bic(bic, bic_to_member) is None:
        return ("RC01", f"{label} {bic} is not a member of this Setara network")
    return None


def hub_validate(
    tx: ParsedTransaction,
    *,
    bic_to_member: Callable[[str], str | None],
    minor_units: Callable[[str], int | None],
    require_uetr: bool = True,
) -> tuple[str, str] | None:
    """None when the hub accepts the transaction for settlement, else (reason_code, text).

    Order: the transaction's own parse fault, then agents (RC01), currency (AM03), amount (AM12,
    AM02), references (FF01), and last any message-level fault such as an XSD violation.
    """
    if tx.error is not None:
        return tx.error
    kind = tx.kind
    agents: list[tuple[str, str | None]]
    if kind == "cancellation_request":
        if tx.instructing_agent_bic is None:
            return ("RC01", "no Assgnr agent BIC names the member asking for the cancellation")
        agents = [("requesting agent (Assgnr)", tx.instructing_agent_bic)]
    else:
        agents = [
            ("instructing agent (InstgAgt)", tx.instructing_agent_bic),
            ("instructed agent (InstdAgt)", tx.instructed_agent_bic),
            ("debtor agent (DbtrAgt)", tx.debtor_agent_bic),
            ("creditor agent (CdtrAgt)", tx.creditor_agent_bic),
            ("debtor institution (Dbtr)", tx.debtor_member_bic),
            ("creditor institution (Cdtr)", tx.creditor_member_bic),
        ]
        if tx.debtor_member_bic is None:
            return ("RC01", "no instructing agent or debtor agent BIC names the member to debit")
        if tx.creditor_member_bic is None:
            return ("RC01", "no instructed agent or creditor agent BIC names the member to credit")
    for label, bic in agents:
        if bic is not None and (fault := _agent_fault(label, bic, bic_to_member)) is not None:
            return fault

    if kind != "cancellation_request":
        fault = _amount_fault(tx, minor_units)
        if fault is not None:
            return fault

    uetr = tx.uetr
    if kind in ("credit_transfer", "fi_credit_transfer") and not tx.end_to_end_id:
        return ("FF01", "PmtId/EndToEndId is missing")
    referenced = tx.original is not None and tx.original.has_reference()
    if kind in ("return", "cancellation_request") and not referenced:
        return ("FF01", "the original payment is not referenced")
    field = "UETR" if kind in ("credit_transfer", "fi_credit_transfer") else "OrgnlUETR"
    if uetr is None:
        if require_uetr:
            return ("FF01", f"{field} is missing; CBPR+ requires one on every payment")
    elif not UETR_RE.match(uetr):
        return ("FF01", f"{field} {uetr[:40]!r} is not a lower-case UUID version 4")
    return tx.message_error


def _amount_fault(tx: ParsedTransaction, minor_units: Callable[[str], int | None]) -> tuple[str, str] | None:
    if tx.amount_text is None:
        return ("AM12", "the settlement amount is missing")
    if not tx.currency:
        return ("AM03", "the settlement amount has no Ccy attribute")
    units = minor_units(tx.currency)
    if units is None:
        return ("AM03", f"currency {tx.currency[:10]} is not settled in this network")
    try:
        minor = parse_amount(tx.amount_text, units)
    except AmountError as exc:
        return ("AM12", f"{tx.currency} amount: {exc}"[:200])
    if minor <= 0:
        return ("AM12", "the amount must be greater than zero")
    if minor > AMOUNT_MINOR_MAX:
        return ("AM02", f"the amount exceeds the hub's maximum of {AMOUNT_MINOR_MAX} minor units")
    return None
