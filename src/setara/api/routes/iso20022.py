"""ISO 20022 over HTTP: one message in, its pacs.002 (camt.029) out, once durable."""

from __future__ import annotations

import re

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from setara import iso20022 as iso
from setara.api.auth import Member
from setara.api.body import read_body
from setara.api.keys import Principal
from setara.api.problems import ApiProblem
from setara.api.schemas import XML_BODY
from setara.api.state import Api, api_of
from setara.node.messaging import submit_xml

__all__ = ["XML_BYTES_MAX", "router"]

# One limit for the HTTP body and the parser: the parser refuses anything larger anyway.
XML_BYTES_MAX = iso.MESSAGE_BYTES_MAX

router = APIRouter(tags=["iso20022"])


def _check_xml_debtor(api: Api, who: Principal, data: bytes) -> None:
    """Every transaction of the message must debit the key's member (camt.056: cancel its own)."""
    try:
        msg = iso.parse_message(data)
    except Exception:  # unreadable: submit_xml answers it with a rejection and records nothing
        return
    net = api.network
    store = None
    for tx in msg.transactions:
        if msg.msg_type.startswith("camt.056"):
            orig = tx.original
            oid = (orig.uetr or orig.end_to_end_id) if orig is not None else None
            if oid is None:
                continue
            store = store or api.fresh_reader()
            row = store.get_payment(oid)
            if row is not None and row.debtor != who.member:
                raise ApiProblem(403, "Forbidden", "only the debtor can cancel a payment", field="OrgnlUETR")
            continue
        debit, _ = iso.settlement_members(tx, net.member_by_bic)
        if debit is not None and debit != who.member:
            raise ApiProblem(403, "Forbidden", f"only {debit}'s key can instruct a debit of its account",
                             field="DbtrAgt")


@router.post("/v1/iso20022", openapi_extra=XML_BODY,
             responses={200: {"description": "pacs.002 (camt.029 for camt.056)", "content": {"application/xml": {}}},
                        413: {"description": f"message larger than {XML_BYTES_MAX} bytes"}})
async def post_iso(request: Request, who: Member) -> Response:
    """One ISO 20022 message (pacs.008/009/004, camt.056), answered once durable."""
    api = api_of(request)
    data = await read_body(request, XML_BYTES_MAX)
    if not data.strip():
        raise ApiProblem(422, "Empty message", "the body must be an ISO 20022 message", field="body")
    await anyio.to_thread.run_sync(_check_xml_debtor, api, who, data)
    result = await api.call(lambda node: submit_xml(node, data, source=f"api:{who.key_id}"))
    docs = [doc for _, doc in result.replies]
    if len(docs) == 1:
        return Response(docs[0], media_type="application/xml")
    inner = b"".join(re.sub(rb"^<\?xml[^>]*\?>\s*", b"", d) for d in docs)
    return Response(b'<?xml version="1.0" encoding="UTF-8"?>\n<SetaraReplies>' + inner + b"</SetaraReplies>",
                    media_type="application/xml")
