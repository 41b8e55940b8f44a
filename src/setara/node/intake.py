"""Parallel intake of JSON Lines: decoding, validation and digests in worker processes.

Reading and validating a line costs about as much as settling it, and both are pure Python, so
workers do the former while the engine process does the latter (the GIL rules out threads). A
worker is a pure function of the input and the network's reference data; it sends chunks in input
order, as segments (batches of plain payments column by column, rows for the rest), through a pipe
whose small buffer applies backpressure. The engine process decides everything that depends on
state (duplicates, liquidity, suspension).
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import marshal
import multiprocessing as mp
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Literal

import orjson

from setara.core.instructions import (
    LINE_BYTES_MAX,
    Instruction,
    Rejection,
    fingerprint,
    parse_json_instruction,
    parse_json_line,
    parse_named,
    parse_named_many,
    parse_plain,
    parse_plain_many,
    parties_digest,
)
from setara.core.network import Network

if TYPE_CHECKING:
    from setara.ports import Screening

__all__ = ["NAMES_CACHED_MAX", "InputEncodingError", "NameScreening", "ParsedLine", "Segment", "intake_workers",
           "parallel_parse", "parse_chunk", "parse_lines", "prepare", "sniff_input", "xml_as_utf8"]

# (line_no, Submit row or None, private data or None, screening audits or None, rejection or None)
ParsedLine = tuple[int, list[Any] | None, list[Any] | None, list[dict[str, Any]] | None,
                   tuple[str, str, str | None] | None]
# ("rows", [ParsedLine, ...]) or ("batch", {Submit field: column or shared value}, [line_no, ...])
Segment = tuple[Any, ...]
CHUNK_LINES_MAX = 50_000
INTAKE_WORKERS_MAX = 4
UTF8_BOM = b"\xef\xbb\xbf"


class InputEncodingError(ValueError):
    """Input in an encoding it may not use (JSON Lines in UTF-16), or not valid in the one it uses."""


# (leading bytes, Python codec, name for messages), longest first: UTF-32's byte order marks begin
# with UTF-16's. The codecs named "utf-16"/"utf-32" read and drop the byte order mark themselves.
_BOMS = ((codecs.BOM_UTF32_BE, "utf-32", "UTF-32 (byte order mark 00 00 FE FF)"),
         (codecs.BOM_UTF32_LE, "utf-32", "UTF-32 (byte order mark FF FE 00 00)"),
         (codecs.BOM_UTF16_BE, "utf-16", "UTF-16 (byte order mark FE FF)"),
         (codecs.BOM_UTF16_LE, "utf-16", "UTF-16 (byte order mark FF FE)"))
_XML_ENCODING_DECL = re.compile(r"""\A(\s*<\?xml\s[^>]*?\bencoding\s*=\s*)(["'])[A-Za-z0-9._-]*\2""")


def _encoding(head: bytes) -> tuple[str, str]:
    """(codec, name) of text beginning with `head`: a byte order mark, else the pattern of zero
    bytes that an ASCII first character ('<', '{', a space) leaves in UTF-16 or UTF-32 (the XML
    1.0 recommendation's autodetection, Appendix F), else UTF-8."""
    for bom, codec, name in _BOMS:
        if head.startswith(bom):
            return codec, name
    b = head[:4]
    if len(b) == 4 and b[:3] == b"\0\0\0" and b[3]:
        return "utf-32-be", "UTF-32BE (no byte order mark)"
    if len(b) == 4 and b[0] and b[1:] == b"\0\0\0":
        return "utf-32-le", "UTF-32LE (no byte order mark)"
    if len(b) >= 2 and not b[0] and b[1]:
        return "utf-16-be", "UTF-16BE (no byte order mark)"
    if len(b) >= 2 and b[0] and not b[1]:
        return "utf-16-le", "UTF-16LE (no byte order mark)"
    return "utf-8", "UTF-8"


def sniff_input(head: bytes) -> Literal["xml", "jsonl"]:
    """Whether input beginning with `head` (its first line, or more) is ISO 20022 XML or JSON
    Lines. XML may come in UTF-16 or UTF-32 (pass it through `xml_as_utf8`); JSON Lines must be
    UTF-8 (RFC 8259 section 8.1), and anything else raises InputEncodingError naming the encoding,
    rather than answering every line with an error."""
    codec, name = _encoding(head)
    if codec == "utf-8":
        return "xml" if head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n").startswith(b"<") else "jsonl"
    text = codecs.getincrementaldecoder(codec)(errors="replace").decode(head)
    if text.lstrip(" \t\r\n").startswith("<"):  # XML's white space
        return "xml"
    raise InputEncodingError(f"the input is {name}: JSON Lines must be UTF-8 (convert it first, e.g. "
                             f"iconv -f {codec.upper().replace('-LE', 'LE').replace('-BE', 'BE')} -t UTF-8)")


def xml_as_utf8(data: bytes) -> bytes:
    """An XML document in UTF-8, as the ISO 20022 parser reads it: UTF-16 and UTF-32 (found as
    `sniff_input` finds them) are decoded, their byte order mark dropped and the encoding their XML
    declaration names replaced by UTF-8; UTF-8 passes unchanged. Raises InputEncodingError when the
    bytes are not valid in the encoding they begin in."""
    codec, name = _encoding(data[:4])
    if codec == "utf-8":
        return data
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as e:
        raise InputEncodingError(f"the input is {name} but not valid {codec.upper()} at byte {e.start}") from None
    return _XML_ENCODING_DECL.sub(r"\1\2UTF-8\2", text, count=1).encode("utf-8")


def prepare(ins: Instruction, net: Network, key: bytes, screening: Screening, time_ms: int,
            fp: int | None = None) -> tuple[list[Any], list[Any] | None, list[dict[str, Any]] | None]:
    """Everything about an instruction that does not depend on the engine's state: its content
    fingerprint, the keyed digest of its party data, the screening decision and the time stamp,
    as the positional row of a Submit command, plus its operator-private data and audits."""
    d = screening.decide(ins, net)
    row = [ins.id, ins.debtor, ins.creditor, ins.currency, ins.amount_minor, ins.priority,
           fingerprint(ins, key) if fp is None else fp, parties_digest(ins, key), d.decision, d.ref, time_ms,
           ins.to_currency, ins.quote_id, ins.uetr]
    private = [ins.end_to_end_id, ins.msg_id, ins.parties or None] \
        if ins.end_to_end_id or ins.msg_id or ins.parties else None
    return row, private, list(d.audits) or None


def _parse_one(line_no: int, raw: bytes, net: Network, key: bytes, screening: Screening,
               time_ms: int) -> ParsedLine:
    try:
        ins = parse_json_instruction(parse_json_line(raw), net)
    except Rejection as r:
        return (line_no, None, None, None, (r.code, r.text, r.payment_id))
    row, private, audits = prepare(ins, net, key, screening, time_ms)
    return (line_no, row, private, audits, None)


def _uniform(col: list[Any]) -> Any:
    # a value every payment shares is stored once: smaller blocks, cheaper to write and read
    return col[0] if col.count(col[0]) == len(col) else col


def _batch_segment(ids: list[str], debtors: list[str], creditors: list[str], currencies: list[str],
                   amounts: list[int], priorities: list[int], fps: list[int], digests: list[str] | str,
                   refs: list[str] | str, time_ms: int, line_nos: list[int],
                   parties: list[dict[str, str] | None] | None = None) -> Segment:
    """A batch of submissions (the log's columnar entry) and, beside it, what stays off the log:
    line numbers and each payment's party data (None where it has none; None for all)."""
    batch = {
        "id": ids, "debtor": debtors, "creditor": creditors, "currency": _uniform(currencies),
        "amount_minor": amounts, "priority": _uniform(priorities), "fingerprint": fps,
        "parties_digest": digests if isinstance(digests, str) else _uniform(digests), "screening": "clear",
        "screening_ref": refs if isinstance(refs, str) else _uniform(refs),
        "time_ms": time_ms, "to_currency": None, "quote_id": None, "uetr": None,
    }
    if parties is not None and parties.count(None) == len(parties):
        parties = None
    return ("batch", batch, line_nos, parties)


NAMES_CACHED_MAX = 500_000


def _matcher_digest() -> str:
    """Identifies the matcher's code: a stored decision is reused only by the matcher that made it."""
    import hashlib

    from setara.compliance import matcher, normalize

    h = hashlib.sha256()
    for mod in (matcher, normalize):
        if mod.__file__:
            with open(mod.__file__, "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]


class NameScreening:
    """Screening decisions for named payments on the columnar path, with each distinct
    (list versions in force, name, country) screened once.

    Only the answer "clear, nothing to audit" is decided here; anything else (a name that scores
    at or above the review threshold, a country rule, a screening this does not know) is left to
    `Screening.decide` on the full path, so the decisions are those of `decide` by construction
    (property tests hold them to it). The cache is keyed on the list versions, so a new list
    version screens every name again. `known` seeds it (from the store); `new` collects what this
    process screened for the first time, to be stored."""

    def __init__(self, screening: Screening, net: Network,
                 known: dict[tuple[str, str, str], bool] | None = None) -> None:
        from setara.node.screening import PaymentScreening

        self.screening = screening
        self.net = net
        self.payment = screening if isinstance(screening, PaymentScreening) else None
        self.null = type(screening).__name__ == "NullScreening"
        self.names: dict[tuple[str, str, str], bool] = dict(known or {})
        self.new: list[tuple[str, str, str, bool]] = []
        self._pairs: dict[tuple[str, str], tuple[Any, str, list[str]]] = {}
        self._countries: dict[tuple[str, str, str | None, str | None], bool] = {}
        # Without a list loaded no name is matched: don't load the matcher (numpy, ICU) for nothing.
        loaded = self.payment is not None and self.payment.loaded
        self._review = self.payment.review_threshold if loaded and self.payment is not None else 0.0
        self._tag = f"#{self._review!r}:{_matcher_digest()}" if loaded else ""
        self.screened = 0  # names sent to the matcher

    def cache_refs(self) -> list[str]:
        """The cache's list-version keys for every pair of members under the lists now in force:
        what to load from the store. Builds each pair's screener now, so that intake workers forked
        after this share its index instead of each building their own."""
        if self.payment is None:
            return []
        ms = list(self.net.members)
        return sorted({self._pair(d, c)[1] for d in ms for c in ms if d != c})

    def release_screeners(self) -> None:
        """Drop this process's screeners and their indexes (they load again when next used): the
        engine's process calls it once its intake workers are forked, each with its own copy, so
        that it does not hold an index it no longer screens with beside a growing ledger."""
        self._pairs.clear()
        if self.payment is not None:
            self.payment.drop_screeners()

    def _pair(self, debtor: str, creditor: str) -> tuple[Any, str, list[str]]:
        pair = self._pairs.get((debtor, creditor))
        if pair is None:
            ps = self.payment
            assert ps is not None
            sources = ps.sources_for(Instruction("", debtor, creditor, "", 0), self.net)
            members = self.net.members
            pair = (ps.screener(sources), ps._refs(sources) + self._tag,
                    [members[m].bic for m in (debtor, creditor) if m in members])
            self._pairs[(debtor, creditor)] = pair
        return pair

    def clear_ref(self, ins_id: str, debtor: str, creditor: str, currency: str, amount_minor: int,
                  parties: dict[str, str]) -> str | None:
        """The screening reference when screening clears this payment with nothing to audit, else
        None."""
        ps = self.payment
        if ps is None:
            if self.null:
                return "no-list"
            d = self.screening.decide(Instruction(ins_id, debtor, creditor, currency, amount_minor,
                                                  parties=parties), self.net)
            return d.ref if d.decision == "clear" and not d.audits else None
        pair = self._pairs.get((debtor, creditor)) or self._pair(debtor, creditor)
        screener, refs, bics = pair
        dc, cc = parties.get("debtor_country"), parties.get("creditor_country")
        if self.net.comprehensive_sanction_countries:
            ck = (debtor, creditor, dc, cc)
            hit = self._countries.get(ck)
            if hit is None:
                from setara.compliance.countries import country_rule_hit

                hit = country_rule_hit([c for c in (dc, cc) if c], None, bics,
                                       self.net.comprehensive_sanction_countries) is not None
                self._countries[ck] = hit
            if hit:
                return None
        if screener is None:
            return "no-list"
        dn, cn = parties.get("debtor_name"), parties.get("creditor_name")
        ref = refs[:len(refs) - len(self._tag)]
        if not dn and not cn:
            return ref
        for name, country in ((dn, dc), (cn, cc)):
            if not name:
                continue
            key = (refs, name, country or "")
            ok = self.names.get(key)
            if ok is None:
                m = screener.screen(name, country)
                self.screened += 1
                ok = not m.hit and m.score < self._review
                if len(self.names) >= NAMES_CACHED_MAX:  # a bound on memory; names are screened again
                    self.names.clear()
                self.names[key] = ok
                self.new.append((*key, ok))
            if not ok:
                return None
        return ref[:200]


class _Chunk:
    """One chunk's segments. Consecutive payments that need no more than the engine's fast rule
    (one currency, no data beyond names and countries, cleared by screening) are collected column
    by column into one batch; everything else, rejections included, goes in row segments between
    batches, so input order is kept."""

    def __init__(self, time_ms: int) -> None:
        self.time_ms = time_ms
        self.segments: list[Segment] = []
        self._rows: list[ParsedLine] = []
        # The open batch: (id, debtor, creditor, currency, amount, priority, fp), and beside it
        # line numbers, party digests, screening references and party data.
        self.plain: list[tuple[Any, ...]] = []
        self.line_nos: list[int] = []
        self.digests: list[str] = []
        self.refs: list[str] = []
        self.parties: list[dict[str, str] | None] = []

    def open_batch(self) -> None:
        """End the open row segment, if any: what follows goes in a batch."""
        if self._rows:
            self.segments.append(("rows", self._rows))
            self._rows = []

    def add(self, parsed: ParsedLine) -> None:
        row = parsed[1]
        if row is not None and row[8] == "clear" and row[10] == self.time_ms \
                and row[11] is None and row[12] is None and row[13] is None and parsed[3] is None \
                and (parsed[2] is None or (parsed[2][0] is None and parsed[2][1] is None)):
            self.open_batch()
            self.plain.append(tuple(row[:7]))
            self.line_nos.append(parsed[0])
            self.digests.append(row[7])
            self.refs.append(row[9])
            self.parties.append(None if parsed[2] is None else parsed[2][2])
            return
        self._close_batch()
        self._rows.append(parsed)

    def _close_batch(self) -> None:
        if not self.plain:
            return
        ids, debtors, creditors, currencies, amounts, priorities, fps = (
            list(c) for c in zip(*self.plain, strict=True))
        self.segments.append(_batch_segment(ids, debtors, creditors, currencies, amounts, priorities, fps,
                                            self.digests[:], self.refs[:], self.time_ms, self.line_nos[:],
                                            self.parties[:]))
        # emptied in place: the intake loop holds their append methods
        for col in (self.plain, self.line_nos, self.digests, self.refs, self.parties):
            col.clear()

    def take(self) -> list[Segment]:
        self._close_batch()
        if self._rows:
            self.segments.append(("rows", self._rows))
            self._rows = []
        return self.segments


def _named_segments(cols: dict[str, list[Any]], first_line_no: int, lines: Sequence[bytes], net: Network,
                    key: bytes, screening: Screening, time_ms: int, names: NameScreening) -> list[Segment]:
    """The segments of a chunk of named payments (see `parse_named_many`): those screening clears
    in batches, the others on the full path, in input order."""
    parties = cols["parties"]
    ids, debtors, creditors, currencies, amounts = (cols[f] for f in ("id", "debtor", "creditor", "currency",
                                                                     "amount_minor"))
    if names.null:
        all_refs: list[str | None] | str = "no-list"
    else:
        all_refs = list(map(names.clear_ref, ids, debtors, creditors, currencies, amounts, parties))
    if isinstance(all_refs, str) or None not in all_refs:  # the common case: all cleared, one batch
        segments = [_batch_segment(ids, debtors, creditors, currencies, amounts, [1] * len(ids), cols["fingerprint"],
                                   cols["parties_digest"], all_refs, time_ms,  # type: ignore[arg-type]
                                   list(range(first_line_no, first_line_no + len(ids))), parties)]
        if names.new:
            segments.append(("screened", names.new[:]))
            names.new.clear()
        return segments
    cur = _Chunk(time_ms)
    refs = cur.refs
    for i, row in enumerate(zip(cols["id"], cols["debtor"], cols["creditor"], cols["currency"],
                                cols["amount_minor"], strict=True)):
        p: dict[str, str] = parties[i]
        ref = all_refs[i]
        if ref is None:
            cur.add(_parse_one(first_line_no + i, lines[i], net, key, screening, time_ms))
            continue
        cur.open_batch()
        cur.plain.append((*row, 1, cols["fingerprint"][i]))
        cur.line_nos.append(first_line_no + i)
        cur.digests.append(cols["parties_digest"][i])
        refs.append(ref)
        cur.parties.append(p)
    segments = cur.take()
    if names.new:
        segments.append(("screened", names.new[:]))
        names.new.clear()
    return segments


def parse_chunk(lines: Sequence[bytes], first_line_no: int, net: Network, key: bytes, screening: Screening,
                time_ms: int, names: NameScreening | None = None) -> list[Segment]:
    """Parse consecutive input lines (the first is line `first_line_no`) into segments in input
    order; blank lines are skipped, numbering kept. They are stamped with `time_ms`. `names`
    screens named payments (and keeps its cache between chunks)."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    if first_line_no == 1 and lines and lines[0].startswith(UTF8_BOM):
        # Files saved by some Windows tools begin with one; JSON parsers may ignore it (RFC 8259).
        lines = [lines[0][len(UTF8_BOM):], *lines[1:]]
    if lines and max(map(len, lines)) <= LINE_BYTES_MAX:
        # A bulk file's chunk is usually nothing but plain payments: judged all at once.
        try:
            objs = list(map(loads, lines))
        except decode_error:
            objs = None
        cols = None if objs is None else parse_plain_many(objs, net, lines)
        if cols is None and objs is not None and names is not None:
            named_cols = parse_named_many(objs, net, lines, key)
            if named_cols is not None:
                return _named_segments(named_cols, first_line_no, lines, net, key, screening, time_ms, names)
        if cols is not None:
            ids = cols["id"]
            d = screening.decide(Instruction(ids[0], cols["debtor"][0], cols["creditor"][0], cols["currency"][0],
                                             cols["amount_minor"][0]), net)
            if d.decision == "clear" and not d.audits:
                return [_batch_segment(ids, cols["debtor"], cols["creditor"], cols["currency"],
                                       cols["amount_minor"], [1] * len(ids), cols["fingerprint"], "", d.ref,
                                       time_ms, list(range(first_line_no, first_line_no + len(lines))))]
    names = names or NameScreening(screening, net)
    clear_ref = names.clear_ref
    plain_ref: str | None = None  # screening's verdict on instructions without party data
    cur = _Chunk(time_ms)
    add_plain, add_line_no, add_digest, add_ref, add_parties = (
        cur.plain.append, cur.line_nos.append, cur.digests.append, cur.refs.append, cur.parties.append)
    for n, raw in enumerate(lines, start=first_line_no):
        plain = None
        obj = None
        if len(raw) <= LINE_BYTES_MAX:
            try:
                obj = loads(raw)
            except decode_error:
                obj = None
            if type(obj) is dict:
                plain = parse_plain(obj, net, raw)
        if plain is not None:
            if plain_ref is None:
                d = screening.decide(Instruction(*plain[:5]), net)
                plain_ref = d.ref if d.decision == "clear" and not d.audits else ""
            if plain_ref:
                cur.open_batch()
                add_plain(plain)
                add_line_no(n)
                add_digest("")
                add_ref(plain_ref)
                add_parties(None)
                continue
        elif type(obj) is dict and len(obj) > 5:
            named = parse_named(obj, net, raw, key)
            if named is not None:
                parties = named[7]
                ref = clear_ref(*named[:5], parties)
                if ref is not None:
                    cur.open_batch()
                    add_plain(named[:7])
                    add_line_no(n)
                    add_digest(named[8])
                    add_ref(ref)
                    add_parties(parties)
                    continue
        if not raw.isspace():
            cur.add(_parse_one(n, raw, net, key, screening, time_ms))
    segments = cur.take()
    if names.new:
        segments.append(("screened", names.new[:]))
        names.new.clear()
    return segments


def parse_lines(lines: Iterator[bytes], net: Network, key: bytes, chunk: int, screening: Screening,
                clock: Callable[[], int], first_line_no: int = 1,
                names: NameScreening | None = None) -> Iterator[list[Segment]]:
    """The in-process form: `parse_chunk` over each `chunk` lines."""
    n = first_line_no
    names = names or NameScreening(screening, net)
    while block := list(islice(lines, chunk)):
        yield parse_chunk(block, n, net, key, screening, clock(), names)
        n += len(block)


def _detach_from_parent(*keep: int) -> None:
    """A forked worker inherits every descriptor of the engine process, among them the writer lock
    and the read end of its own pipe. Holding either would outlive a killed parent (a stale lock, a
    worker blocked forever), so close all but what it needs and ask to die with the parent."""
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


Blocks = Iterator[tuple[int, list[bytes]]]  # (number of the first line, the lines)


def _worker(conn: Connection, blocks: Blocks, keep: tuple[int, ...], net: Network, key: bytes,
            screening: Screening, clock: Callable[[], int], names: NameScreening | None) -> None:
    """Parse blocks of lines and send them, in order, to the engine process."""
    _detach_from_parent(conn.fileno(), *keep)
    # Each worker keeps its own name cache, seeded from the store's through the fork.
    names = names or NameScreening(screening, net)
    try:
        for first_line_no, block in blocks:
            # marshal: the cheapest encoding to decode on the engine's side, and both ends are the
            # same interpreter (a fork), so its version-specific format is no concern.
            conn.send_bytes(marshal.dumps(parse_chunk(block, first_line_no, net, key, screening, clock(), names)))
        conn.send_bytes(marshal.dumps(None))
    except BrokenPipeError:  # the engine process went away; nothing to do
        pass
    except BaseException as e:  # report, never hang the reader
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send_bytes(marshal.dumps({"error": f"{type(e).__name__}: {e}"}))
    finally:
        conn.close()


def _file_blocks(path: str, chunk: int, me: int, workers: int) -> Blocks:
    """Chunks me, me + workers, me + 2 * workers, ... of a file (chunks of `chunk` lines); the
    other workers take the rest. Every worker reads the whole file, which costs little beside
    parsing, so chunk boundaries and line numbers need no coordination. Opened on first use, in
    the worker."""
    with open(path, "rb") as f:
        lines: Iterator[bytes] = iter(f)
        others = chunk * (workers - 1)
        deque(islice(lines, chunk * me), maxlen=0)  # skip what the workers before this one parse
        n = 1 + chunk * me
        while block := list(islice(lines, chunk)):
            yield n, block
            deque(islice(lines, others), maxlen=0)
            n += chunk + others


def _piped_blocks(raw: Connection) -> Blocks:
    """Blocks handed over by the engine process's feeder thread (stdin, which a forked child
    cannot read itself)."""
    try:
        n = 1
        while (block := marshal.loads(raw.recv_bytes())) is not None:
            if isinstance(block, dict):  # the feeder could not read the input
                raise OSError(block.get("error"))
            yield n, block
            n += len(block)
    finally:
        raw.close()


def _chain_first(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _feed(raw: Connection, lines: Iterator[bytes], chunk: int) -> None:
    """A thread of the engine process: hand the input to the piped worker, chunk by chunk (the
    pipe's small buffer holds it back while the worker is busy)."""
    try:
        while block := list(islice(lines, chunk)):
            raw.send_bytes(marshal.dumps(block))
        raw.send_bytes(marshal.dumps(None))
    except (BrokenPipeError, ConnectionResetError):  # the worker is gone; the reader reports why
        pass
    except BaseException as e:
        with contextlib.suppress(OSError):
            raw.send_bytes(marshal.dumps({"error": f"reading the input: {type(e).__name__}: {e}"}))
    finally:
        raw.close()


def intake_workers() -> int:
    """How many processes parse input beside the engine's: SETARA_INTAKE_WORKERS, else one per
    CPU but the engine process's own, up to INTAKE_WORKERS_MAX."""
    env = os.environ.get("SETARA_INTAKE_WORKERS")
    if env is not None:
        try:
            return max(1, min(int(env), INTAKE_WORKERS_MAX))
        except ValueError:
            raise ValueError(f"SETARA_INTAKE_WORKERS must be a number, not {env!r}") from None
    return max(1, min((os.cpu_count() or 2) - 1, INTAKE_WORKERS_MAX))


def parallel_parse(path: str | None, prefix: bytes, net: Network, key: bytes, chunk: int,
                   screening: Screening, clock: Callable[[], int],
                   names: NameScreening | None = None) -> Iterator[list[Segment]]:
    """Parse `path` (None: stdin, after `prefix`, the bytes already read from it) in worker
    processes; yield chunks in input order. A file is shared by `intake_workers()` workers taking
    chunks in turn. Stdin goes to one worker through a pipe, fed by a thread of this process: a
    forked child's stdin is closed (by multiprocessing), and what this process has read ahead
    into its buffer is not in the pipe any more. Where fork is absent, this process parses."""
    chunk = max(1, min(chunk, CHUNK_LINES_MAX))
    if "fork" not in mp.get_all_start_methods():
        f = sys.stdin.buffer if path is None else open(path, "rb")  # noqa: SIM115
        lines: Iterator[bytes] = iter(f)
        yield from parse_lines(_chain_first(prefix, lines) if prefix else lines, net, key, chunk, screening, clock,
                               names=names)
        return
    workers = 1 if path is None else intake_workers()
    ctx = mp.get_context("fork")
    conns: list[Connection] = []
    procs = []
    try:
        feed: tuple[Connection, Iterator[bytes]] | None = None
        if path is None:
            raw_recv, raw_send = ctx.Pipe(duplex=False)
            stdin: Iterator[bytes] = iter(sys.stdin.buffer)
            feed = (raw_send, _chain_first(prefix, stdin) if prefix else stdin)
            sources: list[tuple[Blocks, tuple[int, ...]]] = [(_piped_blocks(raw_recv), (raw_recv.fileno(),))]
        else:
            sources = [(_file_blocks(path, chunk, me, workers), ()) for me in range(workers)]
        for blocks, keep in sources:
            recv, send = ctx.Pipe(duplex=False)
            # Forked, so workers share the network, the screening lists and their indexes as they are.
            proc = ctx.Process(target=_worker, args=(send, blocks, keep, net, key, screening, clock, names),
                               daemon=True)
            proc.start()
            send.close()
            conns.append(recv)
            procs.append(proc)
        if names is not None:
            names.release_screeners()
            gc.collect()  # the index's objects are gone from this process now, not at some later pass
        if feed is not None:
            raw_recv.close()
            threading.Thread(target=_feed, args=(*feed, chunk), name="setara-intake-feed", daemon=True).start()
        turn = 0
        while True:
            try:
                msg = marshal.loads(conns[turn].recv_bytes())
            except EOFError:
                raise RuntimeError("an intake worker stopped unexpectedly") from None
            if msg is None:  # chunk `turn` of this round does not exist: the input has ended
                break
            if isinstance(msg, dict):
                raise RuntimeError(f"intake worker: {msg.get('error')}")
            yield msg
            turn = (turn + 1) % workers
    finally:
        for c in conns:
            c.close()
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
