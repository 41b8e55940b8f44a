"""OpenAPI descriptions of the bodies the routes read themselves (strictly, see `body`)."""

from __future__ import annotations

from typing import Any

from setara.api.problems import PROBLEM

__all__ = ["BATCH_BODY", "JSON_BODY", "NOTE_BODY", "PROBLEM_RESPONSES", "XML_BODY"]

BATCH_ITEMS_MAX = 10_000

INSTRUCTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "debtor", "creditor", "currency", "amount"],
    "properties": {
        "id": {"type": "string", "description": "1-64 printable characters; idempotency key"},
        "debtor": {"type": "string", "description": "member id; must be the key's member"},
        "creditor": {"type": "string"},
        "currency": {"type": "string", "description": "ISO 4217 code of the network"},
        "amount": {"type": "string", "description": "decimal string in major units, e.g. 1250.50 (not a number)"},
        "priority": {"type": "string", "enum": ["URGENT", "NORMAL"]},
        "to_currency": {"type": "string"}, "quote_id": {"type": "string"}, "uetr": {"type": "string"},
        "end_to_end_id": {"type": "string"}, "debtor_name": {"type": "string"},
        "creditor_name": {"type": "string"}, "debtor_country": {"type": "string"},
        "creditor_country": {"type": "string"},
    },
}
JSON_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": INSTRUCTION_SCHEMA}}}}
BATCH_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "array", "maxItems": BATCH_ITEMS_MAX, "items": INSTRUCTION_SCHEMA}}}}}
XML_BODY = {"requestBody": {"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}}}
NOTE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["note"],
    "properties": {"note": {"type": "string", "minLength": 1, "maxLength": 1000}}}}}}}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"description": d, "content": {PROBLEM: {"schema": {"type": "object"}}}}
    for s, d in ((401, "missing, unknown or revoked key"), (403, "wrong role or not the debtor"),
                 (404, "unknown, or not visible to this key"), (422, "invalid, with `field` naming it"))
}
