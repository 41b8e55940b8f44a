"""Safe XML intake and XSD validation.

Member messages are untrusted input. libxml2 is fast and hardened, but only when told to be: no
DTDs, no entity expansion, no network, no huge trees. On top of that we refuse any DOCTYPE at all
(ISO 20022 never uses one, and refusing it closes the entity-expansion door whatever the parser
flags do) and bound size, depth and element count so that no input can make us hang or eat memory.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from lxml import etree

from ._model import Iso20022Error, XsdConfigError

__all__ = [
    "ELEMENTS_MAX",
    "MESSAGE_BYTES_MAX",
    "MESSAGE_DEPTH_MAX",
    "XSD_DIR_ENV",
    "load_schema",
    "parse_untrusted",
    "resolve_xsd_dir",
    "schema_errors",
    "validate_document",
]

MESSAGE_BYTES_MAX = 1024 * 1024
# The deepest official sample (camt.054 max) is 16 levels including its envelope; 48 leaves room
# for transport wrappers such as SWIFT's DataPDU without admitting pathological nesting.
MESSAGE_DEPTH_MAX = 48
ELEMENTS_MAX = 200_000
XSD_DIR_ENV = "SETARA_ISO20022_XSD_DIR"
_ERROR_TEXT_MAX = 300
_UTF8_BOM = b"\xef\xbb\xbf"
_FORBIDDEN_DECL = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _parser_kwargs() -> dict[str, bool]:
    return {
        "resolve_entities": False,
        "no_network": True,
        "huge_tree": False,
        "load_dtd": False,
        "dtd_validation": False,
        "remove_comments": True,
        "remove_pis": True,
    }


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_TEXT_MAX else text[: _ERROR_TEXT_MAX - 1] + "…"


def parse_untrusted(
    data: bytes,
    *,
    max_bytes: int = MESSAGE_BYTES_MAX,
    max_depth: int = MESSAGE_DEPTH_MAX,
    max_elements: int = ELEMENTS_MAX,
) -> etree._Element:
    """Bytes from a member -> root element, or Iso20022Error("FF01", why)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise Iso20022Error("FF01", "message must be given as bytes")
    data = bytes(data)
    if len(data) > max_bytes:
        raise Iso20022Error("FF01", f"message is {len(data)} bytes; the limit is {max_bytes}")
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    if not data.strip():
        raise Iso20022Error("FF01", "message is empty")
    # ISO 20022 XML is UTF-8. Insisting on it up front also guarantees that the DOCTYPE scan
    # below reads the same characters libxml2 will.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Iso20022Error("FF01", f"message is not valid UTF-8 (byte {exc.start})") from None
    if _FORBIDDEN_DECL.search(text):
        raise Iso20022Error("FF01", "DOCTYPE and ENTITY declarations are not accepted in ISO 20022 messages")

    depth = 0
    elements = 0
    root: etree._Element | None = None
    try:
        for event, element in etree.iterparse(io.BytesIO(data), events=("start", "end"), **_parser_kwargs()):
            if event == "start":
                depth += 1
                elements += 1
                if root is None:
                    root = element
                if depth > max_depth:
                    raise Iso20022Error("FF01", f"elements are nested deeper than {max_depth} levels")
                if elements > max_elements:
                    raise Iso20022Error("FF01", f"message has more than {max_elements} elements")
            else:
                depth -= 1
    except etree.XMLSyntaxError as exc:
        raise Iso20022Error("FF01", _clip(f"message is not well-formed XML: {exc}")) from None
    except (ValueError, LookupError, MemoryError) as exc:
        # lxml raises these for encodings it cannot handle or declarations it rejects; all are
        # faults of the input, and a member must get a reason rather than a traceback.
        if isinstance(exc, Iso20022Error):
            raise
        raise Iso20022Error("FF01", _clip(f"message cannot be read as XML: {exc}")) from None
    if root is None:
        raise Iso20022Error("FF01", "message has no root element")
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise Iso20022Error("FF01", "DOCTYPE declarations are not accepted in ISO 20022 messages")
    return root


def resolve_xsd_dir(xsd_dir: Path | None) -> Path | None:
    """The explicit argument wins; otherwise the environment variable; otherwise no XSD check."""
    if xsd_dir is not None:
        return xsd_dir
    env = os.environ.get(XSD_DIR_ENV, "").strip()
    return Path(env) if env else None


_schemas: dict[tuple[str, int], etree.XMLSchema] = {}
_schemas_lock = threading.Lock()
_validate_lock = threading.Lock()
_SCHEMAS_CACHED_MAX = 64
_NAME_RE = re.compile(r"^[a-z]{4}\.\d{3}\.\d{3}\.\d{2}$")


def load_schema(xsd_dir: Path, msg_type: str) -> etree.XMLSchema:
    """Compiled schema for e.g. "pacs.008.001.08", cached: compiling costs ~50 ms a file."""
    if not _NAME_RE.match(msg_type):
        raise XsdConfigError(f"{msg_type!r} is not an ISO 20022 message name")
    path = xsd_dir / f"{msg_type}.xsd"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise XsdConfigError(f"schema {path} cannot be read: {exc.strerror}") from None
    key = (str(path.resolve()), mtime)
    with _schemas_lock:
        cached = _schemas.get(key)
    if cached is not None:
        return cached
    try:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, remove_comments=True
        )
        schema = etree.XMLSchema(etree.parse(str(path), parser))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError, OSError) as exc:
        raise XsdConfigError(f"schema {path} is not a usable XSD: {_clip(str(exc))}") from None
    with _schemas_lock:
        if len(_schemas) >= _SCHEMAS_CACHED_MAX:
            _schemas.clear()
        _schemas[key] = schema
    return schema


def schema_errors(element: etree._Element, schema: etree.XMLSchema, *, max_errors: int = 5) -> list[str]:
    """Validate one element (e.g. a Document inside an envelope) as if it were the document root."""
    # A compiled schema keeps its error log on the object: two threads validating at once (API
    # workers) would read each other's errors. Validation takes milliseconds, so one lock will do.
    with _validate_lock:
        if schema.validate(element):
            return []
        log = list(cast(Iterable[Any], schema.error_log))  # the lxml stubs miss __iter__
    out: list[str] = []
    for err in log:
        message = re.sub(r"\{[^}]*\}", "", err.message)  # namespaces make messages unreadable
        out.append(_clip(f"line {err.line}: {message}"))
        if len(out) >= max_errors:
            break
    return out


def validate_document(data: bytes, *, xsd_dir: Path, max_bytes: int = 64 * MESSAGE_BYTES_MAX) -> list[str]:
    """Check an XML message (a bare Document, e.g. one we emitted) against its official schema.

    Returns the schema's complaints, empty when valid. The message type is read from the
    Document's namespace. Raises Iso20022Error when the bytes are not a readable ISO 20022
    Document and XsdConfigError when the schema is missing.
    """
    root = parse_untrusted(data, max_bytes=max_bytes, max_elements=64 * ELEMENTS_MAX)
    ns = etree.QName(root).namespace or ""
    prefix = "urn:iso:std:iso:20022:tech:xsd:"
    if etree.QName(root).localname != "Document" or not ns.startswith(prefix):
        raise Iso20022Error("FF01", "root element is not an ISO 20022 Document")
    return schema_errors(root, load_schema(xsd_dir, ns[len(prefix) :]), max_errors=20)
