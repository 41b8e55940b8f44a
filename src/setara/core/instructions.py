"""Payment instructions as members send them, validated into typed values with ISO 20022 reasons.

Validation here is about form and reference data (is the amount a decimal with the currency's minor
units, is the member known); state-dependent rules (suspension, supply, duplicates) live in the
engine so replay reaches the same verdicts.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import orjson

from setara.core.money import AmountError, parse_amount
from setara.core.network import Network

__all__ = [
    "INSTRUCTION_FIELDS",
    "Instruction",
    "NestingError",
    "Rejection",
    "duplicate_key",
    "fingerprint",
    "parse_json_instruction",
    "parse_json_line",
    "parse_named",
    "parse_named_many",
    "parse_plain",
    "parse_plain_many",
    "parties_digest",
    "parties_digest_of",
    "payment_id_problem",
    "same_instruction",
]

LINE_BYTES_MAX = 16 * 1024
TEXT_FIELD_MAX = 256
ID_CHARS_MAX = 64
# URL-safe ids (RFC 3986 unreserved characters, plus ':'): an id is addressed in API paths
# (/v1/payments/{id}) and CLI arguments exactly as it was written, so it needs no escaping there,
# and appears in space-separated ack lines. "." and ".." alone are path segments, not names.
# (the lookahead refuses "." and ".." as whole ids, also one per line in `_IDS_RE`)
_ID_FORM = rf"(?!\.\.?(?:\n|\Z))[A-Za-z0-9._~:-]{{1,{ID_CHARS_MAX}}}"
_ID_RE = re.compile(_ID_FORM)
_ID_PROBLEM = f"must be 1-{ID_CHARS_MAX} characters A-Z, a-z, 0-9 or - . _ ~ : (not . or .. alone)"
_CCY_RE = re.compile(r"[A-Z]{3}")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")
PARTY_FIELDS = (
    "debtor_name", "creditor_name", "debtor_country", "creditor_country", "debtor_address",
    "creditor_address", "ultimate_debtor_name", "ultimate_creditor_name", "intermediary_names",
    "debtor_bic_countries",
)
INSTRUCTION_FIELDS = frozenset({
    "id", "debtor", "creditor", "currency", "amount", "priority", "to_currency", "quote_id", "uetr",
    "end_to_end_id", "msg_id", "remittance_info", "purpose", *PARTY_FIELDS,
})


class Rejection(Exception):
    """An instruction refused before it reaches the engine; `code` is an ISO 20022 reason."""

    def __init__(self, code: str, text: str, payment_id: str | None = None) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text
        self.payment_id = payment_id


@dataclass(slots=True)
class Instruction:
    id: str
    debtor: str
    creditor: str
    currency: str
    amount_minor: int
    priority: int = 1  # 0 URGENT, 1 NORMAL
    to_currency: str | None = None
    quote_id: str | None = None
    uetr: str | None = None
    end_to_end_id: str | None = None
    msg_id: str | None = None
    parties: dict[str, Any] = field(default_factory=dict)

    @property
    def priority_name(self) -> str:
        return "URGENT" if self.priority == 0 else "NORMAL"


def _text(obj: dict[str, Any], key: str, pid: str | None, *, required: bool = True) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise Rejection("FF01", f"missing field {key}", pid)
        return None
    if not isinstance(v, str):
        raise Rejection("FF01", f"field {key} must be a string", pid)
    v = v.strip()
    if not v and required:
        raise Rejection("FF01", f"field {key} is empty", pid)
    if len(v) > TEXT_FIELD_MAX:
        raise Rejection("FF01", f"field {key} is longer than {TEXT_FIELD_MAX} characters", pid)
    return v


def parse_json_line(line: bytes) -> dict[str, Any]:
    if len(line) > LINE_BYTES_MAX:
        raise Rejection("FF01", f"line longer than {LINE_BYTES_MAX} bytes")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise Rejection("FF01", f"not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise Rejection("FF01", "a line must be a JSON object")
    # Every key is followed by a colon, so a line with no more colons than its distinct keys, plus
    # those its keys and text values hold, has no key twice: the common line costs one scan in C,
    # only the others a second parse (an escape, \u003a, can write a colon without one).
    colons = line.count(b":")
    if colons != len(obj) and (colons != len(obj) + _colons_in(obj) or b"\\" in line):
        pid = obj.get("id")
        pid = pid if payment_id_problem(pid) is None else None
        try:
            dup = duplicate_key(line)
        except NestingError:
            raise Rejection("FF01", "the line nests too deeply to check its keys", pid) from None
        if dup is not None:
            raise Rejection("FF01", f"field {dup} appears more than once", pid if dup != "id" else None)
    return obj


def _colons_in(obj: dict[str, Any]) -> int:
    """Colons in the keys and text values of a flat object (text lists included); -1 when it nests
    an object or a list of anything else, for which only the full check will do."""
    n = 0
    for k, v in obj.items():
        n += k.count(":")
        if type(v) is str:
            n += v.count(":")
        elif type(v) is list:
            for x in v:
                if type(x) is not str:
                    return -1
                n += x.count(":")
        elif type(v) is dict:
            return -1
    return n


def payment_id_problem(pid: object) -> str | None:
    """Why `pid` cannot be a payment id ("must be ..."), or None when it can: the one rule for ids
    from JSON Lines, the API and ISO 20022 messages."""
    if type(pid) is not str:
        return "must be a string"
    if not _ID_RE.fullmatch(pid):
        return _ID_PROBLEM
    return None


class _Pairs(dict[str, Any]):
    """A decoded JSON object that remembers the first key it was given twice."""

    dup: str | None = None


def _pairs(pairs: list[tuple[str, Any]]) -> _Pairs:
    d = _Pairs()
    for k, v in pairs:
        if k in d and d.dup is None:
            d.dup = k
        d[k] = v
    return d


def _find_dup(v: Any, path: str) -> str | None:
    if isinstance(v, _Pairs):
        if v.dup is not None:
            return f"{path}.{v.dup}" if path else v.dup
        items = ((f"{path}.{k}" if path else k, x) for k, x in v.items())
    elif isinstance(v, list):
        items = ((f"{path}[{i}]", x) for i, x in enumerate(v))
    else:
        return None
    for p, x in items:
        found = _find_dup(x, p)
        if found is not None:
            return found
    return None


def _count_keys(v: Any) -> int:
    if isinstance(v, dict):
        return len(v) + sum(_count_keys(x) for x in v.values() if isinstance(x, dict | list))
    if isinstance(v, list):
        return sum(_count_keys(x) for x in v if isinstance(x, dict | list))
    return 0


class NestingError(ValueError):
    """JSON nested too deeply to check for repeated keys: refuse it."""


def duplicate_key(raw: bytes, decoded: Any = None) -> str | None:
    """The path of the first key that the JSON text `raw` gives twice in one object ("amount",
    "[3].amount", "parties.name"), or None when no key repeats; NestingError when it nests too
    deeply to check. orjson keeps the last of two equal keys, so a signer that read the first
    would see another payment. `raw` must be valid JSON.

    The check is a second parse (about 8 us for a plain line). Given `decoded` (what orjson made
    of `raw`), it is skipped when `raw` has no more colons than `decoded` has keys: every key is
    followed by a colon, so then none can repeat. API bodies: `duplicate_key(body, obj)`."""
    try:
        if decoded is not None and raw.count(b":") == _count_keys(decoded):
            return None
        return _find_dup(json.loads(raw, object_pairs_hook=_pairs), "")
    except RecursionError:
        raise NestingError("JSON nested too deeply to check for repeated keys") from None


_PARTY_SET = frozenset(PARTY_FIELDS)
_LIST_PARTY_FIELDS = frozenset({"intermediary_names", "debtor_bic_countries"})
_OPTIONAL_TEXT = ("quote_id", "uetr", "end_to_end_id", "msg_id")


def parse_json_instruction(obj: dict[str, Any], network: Network) -> Instruction:
    """Validate one decoded JSON instruction. Raises Rejection naming the field.

    This runs once per submitted line, so the common case is written for speed.
    """
    pid = obj.get("id")
    if type(pid) is not str or not _ID_RE.fullmatch(pid):
        raise Rejection("FF01", f"field id {payment_id_problem(pid) or _ID_PROBLEM}")
    if not obj.keys() <= INSTRUCTION_FIELDS:
        raise Rejection("FF01", f"unknown field {sorted(obj.keys() - INSTRUCTION_FIELDS)[0]}", pid)
    debtor = obj.get("debtor")
    creditor = obj.get("creditor")
    currency = obj.get("currency")
    if type(debtor) is not str or type(creditor) is not str or type(currency) is not str:
        for key in ("debtor", "creditor", "currency"):
            _text(obj, key, pid)
        raise AssertionError("unreachable")  # pragma: no cover
    if "amount" not in obj:
        raise Rejection("FF01", "missing field amount", pid)
    members = network.members
    if debtor not in members:
        raise Rejection("RC01" if debtor else "FF01", f"debtor {debtor!r} is not a member", pid)
    if creditor not in members:
        raise Rejection("RC01" if creditor else "FF01", f"creditor {creditor!r} is not a member", pid)
    ccy = network.currencies.get(currency)
    if ccy is None:
        raise Rejection("AM03", f"currency {currency!r} is not in the network", pid)
    raw = obj["amount"]
    if type(raw) is not str:
        # A JSON number has gone through a float in most senders and parsers (1.999999999999999999
        # reads as 2.0): refuse it rather than settle a rounded amount.
        raise Rejection("AM12", "field amount: write amounts as decimal strings (\"12.50\"), not JSON numbers"
                        if isinstance(raw, int | float) and not isinstance(raw, bool)
                        else "field amount must be a decimal string such as \"12.50\"", pid)
    try:
        amount_minor = parse_amount(raw, ccy.currency.minor_units)
    except AmountError as e:
        raise Rejection("AM12", str(e), pid) from None
    if amount_minor <= 0:
        raise Rejection("AM12", "amount must be greater than zero", pid)
    if debtor == creditor:
        raise Rejection("AG01", "debtor and creditor are the same member", pid)
    ins = Instruction(pid, debtor, creditor, currency, amount_minor)
    if len(obj) == 5:
        return ins
    prio = obj.get("priority")
    if prio is not None:
        if not isinstance(prio, str) or prio.upper() not in ("URGENT", "NORMAL"):
            raise Rejection("FF01", "field priority must be URGENT or NORMAL", pid)
        ins.priority = 0 if prio.upper() == "URGENT" else 1
    to_ccy = _text(obj, "to_currency", pid, required=False) or None
    if to_ccy is not None:
        if not _CCY_RE.fullmatch(to_ccy) or to_ccy not in network.currencies:
            raise Rejection("AM03", f"to_currency {to_ccy} is not in the network", pid)
        ins.to_currency = None if to_ccy == currency else to_ccy
    ins.quote_id = _text(obj, "quote_id", pid, required=False) or None
    ins.uetr = _text(obj, "uetr", pid, required=False) or None
    ins.end_to_end_id = _text(obj, "end_to_end_id", pid, required=False) or None
    ins.msg_id = _text(obj, "msg_id", pid, required=False) or None
    for key in obj.keys() & _PARTY_SET:
        v = obj[key]
        if v is None:
            continue
        if key in _LIST_PARTY_FIELDS:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v) or len(v) > 16:
                raise Rejection("FF01", f"field {key} must be a list of at most 16 strings", pid)
            ins.parties[key] = [x[:TEXT_FIELD_MAX] for x in v]
        else:
            text = _text(obj, key, pid, required=False)
            if text:
                ins.parties[key] = text
    for key in ("debtor_country", "creditor_country"):
        c = ins.parties.get(key)
        if c is not None and not _COUNTRY_RE.fullmatch(c):
            raise Rejection("FF01", f"field {key} must be an ISO 3166 alpha-2 code", pid)
    if ins.parties:
        ins.parties = dict(sorted(ins.parties.items()))
    return ins


def fingerprint(ins: Instruction, key: bytes) -> int:
    """60-bit digest of everything that makes two submissions 'the same instruction' (60 bits so the
    engine can pack a status beside it and still serialise a signed 64-bit integer).

    Party data enters only through its keyed digest (`parties_digest`): the fingerprint sits in the
    replicated log, and an unkeyed hash over names would let any member holding the log confirm a
    guess of another member's customer. Without parties the digest is left out, so a plain
    instruction's fingerprint needs no key.

    `parse_plain`, `parse_plain_many`, `parse_named` and `parse_named_many` compute it inline
    (tests/test_bulk.py and tests/test_named_bulk.py hold them to this definition): change them together."""
    return _fingerprint_of(ins, parties_digest_of(ins.parties, key) if ins.parties else {})


def _fingerprint_of(ins: Instruction, parties: str | dict[str, Any]) -> int:
    body = orjson.dumps([ins.debtor, ins.creditor, ins.currency, ins.amount_minor, ins.priority,
                         ins.to_currency, ins.uetr, ins.end_to_end_id, parties],
                        option=orjson.OPT_SORT_KEYS)
    return int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "big") >> 4


def same_instruction(ins: Instruction, key: bytes, fp: int) -> bool:
    """Whether `ins` is the instruction whose logged fingerprint is `fp`. Logs written before the
    fingerprint was keyed hashed party data in clear; their payments are still recognised (a retry
    stays idempotent, `verify` still checks their content), while new entries use only the keyed form."""
    return fp == fingerprint(ins, key) or (bool(ins.parties) and fp == _fingerprint_of(ins, ins.parties))


_blake2b = hashlib.blake2b


def parse_plain(obj: dict[str, Any], network: Network, line: bytes) -> tuple[str, str, str, str, int, int, int] | None:
    """The common instruction, fast: exactly the five required fields, all valid. `obj` is what
    orjson decoded from `line`. Returns what `parse_json_instruction` and `fingerprint`
    would give for it, as (id, debtor, creditor, currency, amount_minor, priority, fingerprint);
    None for anything else, valid or not, which `parse_json_line` and `parse_json_instruction` then
    judge."""
    if len(obj) != 5:
        return None
    try:  # five keys, all five of these: exactly the plain instruction's fields
        pid, debtor, creditor, currency, raw = obj["id"], obj["debtor"], obj["creditor"], obj["currency"], \
            obj["amount"]
    except KeyError:
        return None
    if type(pid) is not str or (line.count(b":") != 5 and _may_repeat_a_key(line, 1, pid)):
        return None
    return _plain_checked(pid, debtor, creditor, currency, raw, network)


def _plain_checked(pid: Any, debtor: Any, creditor: Any, currency: Any, raw: Any, network: Network
                   ) -> tuple[str, str, str, str, int, int, int] | None:
    if type(pid) is not str or type(debtor) is not str or type(creditor) is not str \
            or type(currency) is not str or type(raw) is not str or debtor == creditor \
            or not _ID_RE.fullmatch(pid):
        return None
    members = network.members
    ccy = network.currencies.get(currency)
    if ccy is None or debtor not in members or creditor not in members:
        return None
    try:
        amount = parse_amount(raw, ccy.currency.minor_units)
    except AmountError:
        return None
    if amount <= 0:
        return None
    # The same bytes `fingerprint` hashes for an instruction with nothing but these fields.
    body = orjson.dumps([debtor, creditor, currency, amount, 1, None, None, None, {}])
    return (pid, debtor, creditor, currency, amount, 1,
            int.from_bytes(_blake2b(body, digest_size=8).digest(), "big") >> 4)


def _may_repeat_a_key(raw: bytes, lines: int, ids: str) -> bool:
    """Whether `raw`, `lines` lines that orjson decoded into plain instructions (five keys, valid
    fields) with ids `ids` (joined), might give a key twice. Every key occurrence in `raw` is
    followed by a colon, and of the decoded values only ids may hold colons; so when `raw` has no
    more colons than five a line plus those in the ids, none repeats. Unless an escape (\\u003a)
    wrote an id's colon without one: then the full check decides (`parse_json_line`)."""
    in_ids = ids.count(":")
    return raw.count(b":") != 5 * lines + in_ids or (in_ids > 0 and b"\\" in raw)


_PLAIN_FIELDS = operator.itemgetter("id", "debtor", "creditor", "currency", "amount")
_IDS_RE = re.compile(rf"{_ID_FORM}(?:\n{_ID_FORM})*")
# Amounts with exactly the currency's decimals and at most 18 digits in all (so within
# AMOUNT_MINOR_MAX), one per line.
_AMOUNT_FORMS = {units: rf"[0-9]{{1,{18 - units}}}\.[0-9]{{{units}}}" if units else "[0-9]{1,18}"
                 for units in range(5)}
_AMOUNTS_RE = {units: re.compile(rf"{form}(?:\n{form})*") for units, form in _AMOUNT_FORMS.items()}


def parse_plain_many(objs: list[Any], network: Network, raws: Sequence[bytes]) -> dict[str, list[Any]] | None:
    """`parse_plain` for many decoded lines at once (`objs`, what orjson made of the lines `raws`),
    when every one of them is a valid plain instruction in one currency with its decimals written
    out ("12.50"), as bulk files are. Returns columns (id, debtor, creditor, currency,
    amount_minor, fingerprint), equal to what `parse_plain` gives line by line; None if any line is
    anything else, then judge them one by one. The checks run over whole columns, in C, rather
    than field by field."""
    if not objs or len(objs) != len(raws):
        return None
    try:
        if set(map(type, objs)) != {dict} or set(map(len, objs)) != {5}:
            return None
        ids, debtors, creditors, currencies, amounts = map(list, zip(*map(_PLAIN_FIELDS, objs), strict=True))
    except KeyError:
        return None
    if set(map(type, chain(ids, debtors, creditors, currencies, amounts))) != {str}:
        return None
    ccys = set(currencies)
    ccy = network.currencies.get(currencies[0]) if len(ccys) == 1 else None
    members = network.members.keys()
    joined_ids = "\n".join(ids)
    if ccy is None or not (members >= set(debtors) and members >= set(creditors)) \
            or any(map(operator.eq, debtors, creditors)) or not _IDS_RE.fullmatch(joined_ids) \
            or _may_repeat_a_key(b"".join(raws), len(raws), joined_ids):
        return None
    units = ccy.currency.minor_units
    joined = "\n".join(amounts)
    if not _AMOUNTS_RE[units].fullmatch(joined):
        return None
    minor = list(map(int, joined.replace(".", "").split("\n")))
    if min(minor) <= 0:
        return None
    code = currencies[0]
    dumps, blake2b, from_bytes = orjson.dumps, _blake2b, int.from_bytes
    # The same bytes `fingerprint` hashes for an instruction with nothing but these fields.
    fps = [from_bytes(blake2b(dumps([d, c, code, a, 1, None, None, None, {}]), digest_size=8).digest(), "big") >> 4
           for d, c, a in zip(debtors, creditors, minor, strict=True)]
    return {"id": ids, "debtor": debtors, "creditor": creditors, "currency": currencies,
            "amount_minor": minor, "fingerprint": fps}


def parties_digest(ins: Instruction, key: bytes) -> str:
    """Keyed digest of party data for the replayable log: members can check the ledger without
    reading each other's customers, and without the operator's key cannot guess names from it."""
    return parties_digest_of(ins.parties, key)


def parties_digest_of(parties: dict[str, Any], key: bytes) -> str:
    """`parties_digest` of an instruction whose party data is `parties`."""
    if not parties:
        return ""
    body = orjson.dumps(parties, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, key=key[:64], digest_size=16).hexdigest()


# What a named payment may carry beside the five plain fields and still take the columnar path.
NAMED_FIELDS = frozenset({"debtor_name", "creditor_name", "debtor_country", "creditor_country"})
_PLAIN_KEYS = frozenset({"id", "debtor", "creditor", "currency", "amount"})
_COUNTRY_FIELDS = ("debtor_country", "creditor_country")

Named = tuple[str, str, str, str, int, int, int, dict[str, str], str]


def _keys_unique(obj: dict[str, Any], line: bytes) -> bool:
    """Whether no key of `line` (decoded into `obj`) can repeat: every key is followed by a colon,
    so a line with no more colons than its keys plus those inside its text values has none twice
    (an escaped colon, \\u003a, sends the line to the full check)."""
    colons = line.count(b":")
    return colons == len(obj) or (colons == len(obj) + _colons_in(obj) and b"\\" not in line)


def parse_named(obj: dict[str, Any], network: Network, line: bytes, party_key: bytes) -> Named | None:
    """`parse_plain` for a plain instruction that also names its parties (debtor/creditor name and
    country, nothing else): (id, debtor, creditor, currency, amount_minor, priority, fingerprint,
    parties, parties digest), equal to what `parse_json_instruction`, `fingerprint` and
    `parties_digest` give for it under `party_key`. None for anything else, valid or not,
    which `parse_json_instruction` then judges."""
    extra = obj.keys() - _PLAIN_KEYS
    if not extra or not extra <= NAMED_FIELDS or len(obj) - len(extra) != 5:
        return None
    parties: dict[str, str] = {}
    for key in sorted(extra):
        v = obj[key]
        if v is None:
            continue
        if type(v) is not str:
            return None
        v = v.strip()
        if len(v) > TEXT_FIELD_MAX:
            return None
        if v:
            parties[key] = v
    if not parties:
        return None
    for key in _COUNTRY_FIELDS:
        c = parties.get(key)
        if c is not None and not _COUNTRY_RE.fullmatch(c):
            return None
    if not _keys_unique(obj, line):
        return None
    plain = _plain_checked(obj["id"], obj["debtor"], obj["creditor"], obj["currency"], obj["amount"], network)
    if plain is None:
        return None
    pid, debtor, creditor, currency, amount = plain[:5]
    digest = parties_digest_of(parties, party_key)
    # The same bytes `fingerprint` hashes for such an instruction.
    body = orjson.dumps([debtor, creditor, currency, amount, 1, None, None, None, digest])
    return (pid, debtor, creditor, currency, amount, 1,
            int.from_bytes(_blake2b(body, digest_size=8).digest(), "big") >> 4, parties, digest)


_COUNTRIES_RE = re.compile(r"[A-Z]{2}(?:\n[A-Z]{2})*")


def parse_named_many(objs: list[Any], network: Network, raws: Sequence[bytes],
                     party_key: bytes) -> dict[str, list[Any]] | None:
    """`parse_named` for many decoded lines at once, when every one is a valid named payment with
    the same fields, its text already trimmed, and all in currencies with the same decimals (written
    out, as for `parse_plain_many`). Returns the columns of `parse_plain_many` plus "parties" (one
    dict per line) and "parties_digest", equal to what `parse_named` gives line by line; None if
    any line is anything else, then judge them one by one."""
    if not objs or len(objs) != len(raws) or set(map(type, objs)) != {dict} \
            or not all(map(_keys_unique, objs, raws)):
        return None
    keys = objs[0].keys()
    extra = sorted(keys - _PLAIN_KEYS)
    if not extra or not NAMED_FIELDS.issuperset(extra) or len(keys) - len(extra) != 5 \
            or set(map(len, objs)) != {len(keys)}:
        return None
    try:
        cols = list(map(list, zip(*map(operator.itemgetter(*_PLAIN_FIELDS_ORDER, *extra), objs), strict=True)))
    except KeyError:
        return None
    if set(map(type, chain.from_iterable(cols))) != {str}:
        return None
    ids, debtors, creditors, currencies, amounts = cols[:5]
    party_cols = cols[5:]
    for key, col in zip(extra, party_cols, strict=True):
        # Trimmed, non-empty, within bounds: then the line-by-line rules keep each value as it is.
        if min(map(len, col)) == 0 or max(map(len, col)) > TEXT_FIELD_MAX or list(map(str.strip, col)) != col:
            return None
        if key in _COUNTRY_FIELDS and not _COUNTRIES_RE.fullmatch("\n".join(col)):
            return None
    ccys = [network.currencies.get(c) for c in set(currencies)]
    units = {c.currency.minor_units if c is not None else -1 for c in ccys}
    members = network.members.keys()
    if len(units) != 1 or -1 in units or not (members >= set(debtors) and members >= set(creditors)) \
            or any(map(operator.eq, debtors, creditors)) or not _IDS_RE.fullmatch("\n".join(ids)):
        return None
    joined = "\n".join(amounts)
    if not _AMOUNTS_RE[units.pop()].fullmatch(joined):
        return None
    minor = list(map(int, joined.replace(".", "").split("\n")))
    if min(minor) <= 0:
        return None
    parties = [dict(zip(extra, vals, strict=True)) for vals in zip(*party_cols, strict=True)]
    digests = [parties_digest_of(p, party_key) for p in parties]
    dumps, blake2b, from_bytes = orjson.dumps, _blake2b, int.from_bytes
    # The same bytes `fingerprint` hashes for such an instruction.
    fps = [from_bytes(blake2b(dumps([d, c, ccy, a, 1, None, None, None, g]), digest_size=8).digest(), "big") >> 4
           for d, c, ccy, a, g in zip(debtors, creditors, currencies, minor, digests, strict=True)]
    return {"id": ids, "debtor": debtors, "creditor": creditors, "currency": currencies,
            "amount_minor": minor, "fingerprint": fps, "parties": parties, "parties_digest": digests}


_PLAIN_FIELDS_ORDER = ("id", "debtor", "creditor", "currency", "amount")
