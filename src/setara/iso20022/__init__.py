"""ISO 20022 for Setara: read member messages, apply the hub's rules, write the replies.

Inbound: pacs.008.001.08/.12, pacs.009.001.08/.11 (credit transfers), pacs.004.001.09 (returns)
and camt.056.001.08 (cancellation requests), with or without a head.001 AppHdr and any envelope.
Outbound: pacs.002.001.10 status reports, camt.053.001.08 statements, camt.054.001.08
notifications, camt.029.001.09 cancellation answers and pacs.004.001.09 returns.

See docs/iso20022.md for the field mapping, reason codes and limits.
"""

from __future__ import annotations

from ._emit import (
    batch_reference,
    camt029,
    camt053,
    camt054,
    entry_reference,
    pacs002,
    pacs002_message_rejected,
    pacs004,
    with_app_header,
)
from ._model import (
    Iso20022Error,
    OriginalRef,
    ParsedMessage,
    ParsedTransaction,
    Party,
    StatementEntry,
    TxStatus,
    XsdConfigError,
)
from ._parse import SUPPORTED_TYPES, TRANSACTIONS_MAX, detect_xml, parse_message
from ._rules import hub_validate, member_for_bic, settlement_members
from ._xml import MESSAGE_BYTES_MAX, MESSAGE_DEPTH_MAX, XSD_DIR_ENV, validate_document

__all__ = [
    "MESSAGE_BYTES_MAX",
    "MESSAGE_DEPTH_MAX",
    "SUPPORTED_TYPES",
    "TRANSACTIONS_MAX",
    "XSD_DIR_ENV",
    "Iso20022Error",
    "OriginalRef",
    "ParsedMessage",
    "ParsedTransaction",
    "Party",
    "StatementEntry",
    "TxStatus",
    "XsdConfigError",
    "batch_reference",
    "camt029",
    "camt053",
    "camt054",
    "detect_xml",
    "entry_reference",
    "hub_validate",
    "member_for_bic",
    "pacs002",
    "pacs002_message_rejected",
    "pacs004",
    "parse_message",
    "settlement_members",
    "validate_document",
    "with_app_header",
]
