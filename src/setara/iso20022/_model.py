"""The values the ISO 20022 adapter hands to the rest of Setara, and the one error it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "Iso20022Error",
    "OriginalRef",
    "ParsedMessage",
    "ParsedTransaction",
    "Party",
    "StatementEntry",
    "TxStatus",
    "XsdConfigError",
]

class Iso20022Error(ValueError):
    """A message Setara cannot process. `reason_code` is an ISO external status reason code.

    `msg_id` / `msg_type` (and `sender_bic`) are filled in when the parser got far enough to read
    them, so that the caller can still answer with a message-level pacs.002 RJCT, to the sender.
    """

    def __init__(
        self, reason_code: str, text: str, *, msg_id: str | None = None, msg_type: str | None = None,
        sender_bic: str | None = None,
    ) -> None:
        super().__init__(f"{reason_code}: {text}")
        self.reason_code = reason_code
        self.text = text
        self.msg_id = msg_id
        self.msg_type = msg_type
        self.sender_bic = sender_bic


class XsdConfigError(RuntimeError):
    """The configured schema directory cannot be used (missing or broken XSD): an operator problem,
    not a problem of the member's message."""


@dataclass(frozen=True, slots=True)
class Party:
    """A debtor, creditor or ultimate party as the message names it; goes to screening."""

    name: str | None = None
    country: str | None = None  # PstlAdr/Ctry
    address_lines: tuple[str, ...] = ()  # structured parts and AdrLine, in document order
    town: str | None = None
    post_code: str | None = None
    country_of_residence: str | None = None
    birth_date: str | None = None  # PrvtId/DtAndPlcOfBirth/BirthDt, ISO date text
    bic: str | None = None  # AnyBIC of an organisation, or BICFI of an institution (pacs.009)
    lei: str | None = None
    account: str | None = None  # IBAN or other account id of the party, when given

    def postal_text(self) -> str | None:
        """The address on one line, as a screening engine compares it."""
        parts = [*self.address_lines, " ".join(p for p in (self.post_code, self.town) if p)]
        text = ", ".join(p for p in parts if p)
        return text or None

    def is_empty(self) -> bool:
        return not any(
            (self.name, self.country, self.address_lines, self.town, self.bic, self.lei, self.account)
        )


@dataclass(frozen=True, slots=True)
class OriginalRef:
    """What a return (pacs.004) or cancellation request (camt.056) refers to."""

    msg_id: str | None = None
    msg_type: str | None = None
    instr_id: str | None = None
    end_to_end_id: str | None = None
    tx_id: str | None = None
    uetr: str | None = None

    def has_reference(self) -> bool:
        return any((self.uetr, self.end_to_end_id, self.instr_id, self.tx_id))


@dataclass(frozen=True, slots=True)
class ParsedTransaction:
    """One transaction of a message, fields kept as text exactly as the member sent them.

    For pacs.004 the transaction is the return itself: `instr_id` is the RtrId, `end_to_end_id` and
    `uetr` carry the original payment's (CBPR+ keeps the UETR across a return), the amount is the
    returned amount and `original` names the payment being returned. For camt.056 each transaction
    is one cancellation request: `instr_id` is the CxlId, the agents are the assigner (instructing)
    and assignee (instructed), and `original` names the payment to cancel.
    """

    msg_id: str
    msg_type: str  # e.g. "pacs.008.001.08"
    index: int = 0  # position in the message, from 0
    instr_id: str | None = None
    end_to_end_id: str | None = None
    tx_id: str | None = None
    uetr: str | None = None
    debtor_agent_bic: str | None = None
    creditor_agent_bic: str | None = None
    instructing_agent_bic: str | None = None
    instructed_agent_bic: str | None = None
    intermediary_agent_bics: tuple[str, ...] = ()
    amount_text: str | None = None  # interbank settlement amount, exact text
    currency: str | None = None
    settlement_date: str | None = None
    priority: str | None = None  # InstrPrty (HIGH/NORM) or SttlmPrty (URGT/HIGH/NORM)
    debtor: Party | None = None
    creditor: Party | None = None
    ultimate_debtor: Party | None = None
    ultimate_creditor: Party | None = None
    underlying_debtor: Party | None = None  # pacs.009 COV: the customer behind the cover
    underlying_creditor: Party | None = None
    original: OriginalRef | None = None
    reason_code: str | None = None  # return reason (pacs.004) or cancellation reason (camt.056)
    case_id: str | None = None  # camt.056 Case/Id
    error: tuple[str, str] | None = None  # (reason_code, text) when the transaction is malformed
    # A fault of the whole message (schema violation, NbOfTxs/CtrlSum mismatch). hub_validate reports
    # it after the hub's own, more specific rules, so a bad BIC still yields RC01, not a generic FF01.
    message_error: tuple[str, str] | None = None

    @property
    def kind(self) -> str:
        """credit_transfer (pacs.008), fi_credit_transfer (pacs.009), return (pacs.004) or
        cancellation_request (camt.056)."""
        return _KIND[self.msg_type[:8]]

    @property
    def debtor_member_bic(self) -> str | None:
        """The BIC whose settlement account is debited: the instructing agent, else the debtor
        agent, else (pacs.009) the debtor institution."""
        fi_debtor = self.debtor.bic if self.debtor is not None and self.kind == "fi_credit_transfer" else None
        return self.instructing_agent_bic or self.debtor_agent_bic or fi_debtor

    @property
    def creditor_member_bic(self) -> str | None:
        """The BIC whose settlement account is credited (mirror of `debtor_member_bic`)."""
        fi_creditor = (
            self.creditor.bic if self.creditor is not None and self.kind == "fi_credit_transfer" else None
        )
        return self.instructed_agent_bic or self.creditor_agent_bic or fi_creditor

    def parties(self) -> tuple[tuple[str, Party], ...]:
        """Every named party with its role, for screening."""
        roles = (
            ("debtor", self.debtor),
            ("creditor", self.creditor),
            ("ultimate_debtor", self.ultimate_debtor),
            ("ultimate_creditor", self.ultimate_creditor),
            ("underlying_debtor", self.underlying_debtor),
            ("underlying_creditor", self.underlying_creditor),
        )
        return tuple((role, p) for role, p in roles if p is not None and not p.is_empty())

    def screening_fields(self) -> dict[str, str | list[str]]:
        """The parties in the flat shape of a JSON instruction's screening fields (debtor_name,
        debtor_country, debtor_address, … as `setara submit` accepts them), so XML and JSON
        instructions are screened and fingerprinted alike.

        For a pacs.009 COV the underlying customers stand in for absent ultimate parties: they are
        the people the cover pays for. `debtor_bic_countries` lists the countries of every BIC in
        the chain (agents, intermediaries, party BICs), for country-wide measures.
        """
        out: dict[str, str | list[str]] = {}
        for role, party in (("debtor", self.debtor), ("creditor", self.creditor)):
            if party is None:
                continue
            _put(out, f"{role}_name", party.name)
            _put(out, f"{role}_country", party.country or party.country_of_residence)
            _put(out, f"{role}_address", party.postal_text())
        ultimate_debtor = self.ultimate_debtor or self.underlying_debtor
        ultimate_creditor = self.ultimate_creditor or self.underlying_creditor
        _put(out, "ultimate_debtor_name", ultimate_debtor.name if ultimate_debtor else None)
        _put(out, "ultimate_creditor_name", ultimate_creditor.name if ultimate_creditor else None)
        bics = [
            self.instructing_agent_bic,
            self.debtor_agent_bic,
            *self.intermediary_agent_bics,
            self.creditor_agent_bic,
            self.instructed_agent_bic,
            *(p.bic for _, p in self.parties()),
        ]
        countries = sorted({b[4:6] for b in bics if b is not None and len(b) >= 6 and b[4:6].isalpha()})
        if countries:
            out["debtor_bic_countries"] = countries[:16]
        return out


def _put(out: dict[str, str | list[str]], key: str, value: str | None) -> None:
    if value:
        out[key] = value[:_SCREENING_TEXT_MAX]


# Matches the longest free-text field a JSON instruction may carry.
_SCREENING_TEXT_MAX = 256

_KIND = {
    "pacs.008": "credit_transfer",
    "pacs.009": "fi_credit_transfer",
    "pacs.004": "return",
    "camt.056": "cancellation_request",
}


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    msg_id: str
    msg_type: str
    transactions: tuple[ParsedTransaction, ...]
    has_app_header: bool
    sender_bic: str | None = None  # AppHdr Fr, else GrpHdr/Assgnmt instructing agent
    receiver_bic: str | None = None  # AppHdr To, else GrpHdr/Assgnmt instructed agent
    created_at_text: str | None = None  # GrpHdr/CreDtTm (Assgnmt/CreDtTm for camt.056), as sent
    business_service: str | None = None  # AppHdr BizSvc, e.g. swift.cbprplus.02
    # A message-level fault that still let the transactions be listed (schema violation, wrong
    # NbOfTxs). It is also copied into every transaction's `message_error`, so hub_validate sees it.
    error: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class TxStatus:
    """The hub's verdict on one original transaction, for pacs.002."""

    end_to_end_id: str | None
    uetr: str | None
    instr_id: str | None
    tx_id: str | None
    status: str  # ACSC settled, ACSP queued, PDNG held, RJCT rejected (also ACCP, ACTC, ACCC, ACWC)
    reason_code: str | None = None
    reason_text: str | None = None

    @classmethod
    def of(
        cls,
        tx: ParsedTransaction,
        status: str,
        reason_code: str | None = None,
        reason_text: str | None = None,
    ) -> TxStatus:
        return cls(tx.end_to_end_id, tx.uetr, tx.instr_id, tx.tx_id, status, reason_code, reason_text)


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One settled movement on a member's settlement account (camt.053 / camt.054).

    Entries that share a `batch_id` (e.g. the payments of one netting cycle) are reported as one
    batch-booked camt entry for their net amount, each payment still listed with its references.
    The party names are shown in `RltdPties`; the caller passes only names the account owner itself
    sent (its own outgoing payments), never those of another member's customers.
    """

    payment_id: str
    amount_minor: int  # > 0; the direction is `credit`
    credit: bool
    booked_at: datetime
    end_to_end_id: str | None
    uetr: str | None
    counterparty_bic: str | None
    counterparty_member: str
    instr_id: str | None = None
    tx_id: str | None = None
    msg_id: str | None = None  # MsgId of the instruction that carried the payment
    pmt_inf_id: str | None = None
    batch_id: str | None = None  # at most 35 characters: it is the batch entry's reference
    additional_info: str | None = field(default=None)
    debtor_name: str | None = None
    ultimate_debtor_name: str | None = None
    creditor_name: str | None = None
    ultimate_creditor_name: str | None = None
