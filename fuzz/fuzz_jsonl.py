"""Fuzz the JSON Lines intake with atheris: `parse_json_line` + `parse_json_instruction` (one line)
and `parse_chunk` (a chunk of lines, on both its column-wise and line-by-line paths).

What must hold for any input bytes:
- a line is accepted or refused with `Rejection` (an ISO 20022 reason code), never another
  exception;
- an accepted line round-trips: written back as a JSON line from the `Instruction`, it parses to
  the same instruction, with the same fingerprint, and the fast path (`parse_plain`) agrees;
- `parse_chunk` never raises, and answers every non-blank line exactly once, in order, with the
  same verdict (accepted, or refused with the same code) as the line parsed alone.

    .venv/bin/python fuzz/fuzz_jsonl.py fuzz/corpus/jsonl -max_total_time=60

(see docs/usage.md, "Fuzzing"; tests/test_fuzz_atheris.py runs it for a bounded time).
"""

from __future__ import annotations

import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["setara"]):
    import orjson

    from setara.core.instructions import (
        Instruction,
        Rejection,
        fingerprint,
        parse_json_instruction,
        parse_json_line,
        parse_plain,
    )
    from setara.core.money import format_amount
    from setara.core.network import example_toml, load_network
    from setara.node.intake import UTF8_BOM, parse_chunk
    from setara.ports import NullScreening

# The reasons a line can be refused for by itself (docs/usage.md); DUPL, AG09 and RR04 need the
# engine's state or screening.
CODES_REFUSED = frozenset({"FF01", "RC01", "AC01", "AM03", "AM12", "AG01"})
NET = load_network(example_toml())
KEY = b"k" * 32
SCREENING = NullScreening()


def parse(line: bytes) -> Instruction | Rejection:
    try:
        return parse_json_instruction(parse_json_line(line), NET)
    except Rejection as r:
        assert r.code in CODES_REFUSED, (r.code, r.text)
        return r


def as_line(ins: Instruction) -> bytes:
    units = NET.minor_units(ins.currency)
    assert units is not None
    obj: dict[str, Any] = {"id": ins.id, "debtor": ins.debtor, "creditor": ins.creditor, "currency": ins.currency,
                           "amount": format_amount(ins.amount_minor, units)}
    if ins.priority == 0:
        obj["priority"] = "URGENT"
    for key in ("to_currency", "quote_id", "uetr", "end_to_end_id", "msg_id"):
        if getattr(ins, key) is not None:
            obj[key] = getattr(ins, key)
    obj.update(ins.parties)
    return orjson.dumps(obj)


def check_line(line: bytes) -> Instruction | Rejection:
    got = parse(line)
    if isinstance(got, Instruction):
        again = parse(as_line(got))
        assert isinstance(again, Instruction), (line, again)
        assert again == got and fingerprint(again, KEY) == fingerprint(got, KEY), (line, got, again)
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            fast = parse_plain(obj, NET, line)
            if fast is not None:
                assert fast == (got.id, got.debtor, got.creditor, got.currency, got.amount_minor, got.priority,
                                fingerprint(got, KEY)), (line, fast, got)
    return got


def verdicts(segments: list[Any]) -> list[tuple[int, str | None]]:
    """(line number, None when accepted else the reason code) of every answered line, in order."""
    out: list[tuple[int, str | None]] = []
    for seg in segments:
        if seg[0] == "rows":
            for line_no, _row, _private, _audits, rejection in seg[1]:
                out.append((line_no, None if rejection is None else rejection[0]))
        elif seg[0] == "batch":
            assert len(seg[2]) == len(seg[1]["id"]), seg
            out.extend((line_no, None) for line_no in seg[2])
        elif seg[0] != "screened":
            raise AssertionError(f"unknown segment kind {seg[0]!r}")
    return out


def TestOneInput(data: bytes) -> None:  # atheris calls it by this name
    # Lines as a file gives them: each with its line ending, so a blank line is whitespace.
    lines = [line + b"\n" for line in data.split(b"\n")[:64]]
    if lines[-1] == b"\n" and len(lines) > 1:
        lines.pop()
    expected = []
    for n, raw in enumerate(lines, start=1):
        # A UTF-8 byte order mark at the start of the input is dropped (docs/usage.md).
        raw = raw[len(UTF8_BOM):] if n == 1 and raw.startswith(UTF8_BOM) else raw
        got = check_line(raw)
        if not raw.isspace():
            expected.append((n, None if isinstance(got, Instruction) else got.code))
    segments = parse_chunk(lines, 1, NET, KEY, SCREENING, 1_767_225_600_000)
    answered = verdicts(segments)
    assert [n for n, _ in answered] == [n for n, _ in expected], (lines, answered, expected)
    for (n, code), (_, alone) in zip(answered, expected, strict=True):
        assert code == alone, (n, lines[n - 1], code, alone)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
