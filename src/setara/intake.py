"""Parallel intake of JSON Lines: decoding, validation and digests in a second process.

Reading and validating a line costs about as much as settling it, and both are pure Python, so a
second process does the former while the engine process does the latter (the GIL rules out
threads). The worker is a pure function of the input and the network's reference data; it sends
compact tuples in input order, in chunks, through a pipe whose small buffer applies backpressure.
The engine process decides everything that depends on state (duplicates, liquidity, suspension).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import orjson

from setara.instructions import (
    Instruction,
    Rejection,
    fingerprint,
    parse_json_instruction,
    parse_json_line,
    parties_digest,
)
from setara.network import Network

if TYPE_CHECKING:
    from setara.service import Screening

__all__ = ["ParsedLine", "parallel_parse", "parse_lines", "prepare"]

# (line_no, Submit row or None, private data or None, screening audits or None, rejection or None)
ParsedLine = tuple[int, list[Any] | None, list[Any] | None, list[dict[str, Any]] | None,
                   tuple[str, str, str | None] | None]
CHUNK_LINES_MAX = 50_000


def prepare(ins: Instruction, net: Network, key: bytes, screening: Screening, time_ms: int,
            fp: int | None = None) -> tuple[list[Any], list[Any] | None, list[dict[str, Any]] | None]:
    """Everything about an instruction that does not depend on the engine's state: its content
    fingerprint, the keyed digest of its party data, the screening decision and the time stamp,
    as the positional row of a Submit command, plus its operator-private data and audits."""
    d = screening.decide(ins, net)
    row = [ins.id, ins.debtor, ins.creditor, ins.currency, ins.amount_minor, ins.priority,
           fingerprint(ins) if fp is None else fp, parties_digest(ins, key), d.decision, d.ref, time_ms,
           ins.to_currency, ins.quote_id, ins.uetr]
    private = [ins.end_to_end_id, ins.msg_id, ins.parties or None] \
        if ins.end_to_end_id or ins.msg_id or ins.parties else None
    return row, private, list(d.audits) or None


def _parse_one(line_no: int, raw: bytes, net: Network, key: bytes, screening: Screening,
               clock: Callable[[], int]) -> ParsedLine:
    try:
        ins = parse_json_instruction(parse_json_line(raw), net)
    except Rejection as r:
        return (line_no, None, None, None, (r.code, r.text, r.payment_id))
    row, private, audits = prepare(ins, net, key, screening, clock())
    return (line_no, row, private, audits, None)


def parse_lines(lines: Iterator[bytes], net: Network, key: bytes, chunk: int, screening: Screening,
                clock: Callable[[], int], first_line_no: int = 1) -> Iterator[list[ParsedLine]]:
    """The in-process form: chunks of parsed lines (blank lines skipped, numbering kept)."""
    out: list[ParsedLine] = []
    for n, raw in enumerate(lines, start=first_line_no):
        if not raw.strip():
            continue
        out.append(_parse_one(n, raw, net, key, screening, clock))
        if len(out) >= chunk:
            yield out
            out = []
    if out:
        yield out


def _detach_from_parent(keep: int) -> None:
    """A forked worker inherits every descriptor of the engine process, among them the writer lock
    and the read end of its own pipe. Holding either would outlive a killed parent (a stale lock, a
    worker blocked forever), so close all but what it needs and ask to die with the parent."""
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def _worker(conn: Connection, path: str | None, prefix: bytes, net: Network, key: bytes, chunk: int,
            screening: Screening, clock: Callable[[], int]) -> None:
    _detach_from_parent(conn.fileno())
    try:
        f = sys.stdin.buffer if path is None else open(path, "rb")  # noqa: SIM115 - closed on exit
        lines: Iterator[bytes] = iter(f)
        if prefix:
            lines = _chain_first(prefix, lines)
        for part in parse_lines(lines, net, key, chunk, screening, clock):
            # JSON rather than pickle: several times cheaper to decode on the engine's side.
            conn.send_bytes(orjson.dumps(part))
        conn.send_bytes(b"null")
    except BrokenPipeError:  # the engine process went away; nothing to do
        pass
    except BaseException as e:  # report, never hang the reader
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send_bytes(orjson.dumps({"error": f"{type(e).__name__}: {e}"}))
    finally:
        conn.close()


def _chain_first(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def parallel_parse(path: str | None, prefix: bytes, net: Network, key: bytes, chunk: int,
                   screening: Screening, clock: Callable[[], int]) -> Iterator[list[ParsedLine]]:
    """Parse `path` (None: stdin, after `prefix`, the bytes already read from it) in a worker
    process; yield chunks in input order. Falls back to in-process parsing where fork is absent."""
    chunk = max(1, min(chunk, CHUNK_LINES_MAX))
    if "fork" not in mp.get_all_start_methods():
        f = sys.stdin.buffer if path is None else open(path, "rb")  # noqa: SIM115
        lines: Iterator[bytes] = iter(f)
        yield from parse_lines(_chain_first(prefix, lines) if prefix else lines, net, key, chunk, screening, clock)
        return
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    # Forked, so the worker shares the network, the screening lists and their indexes as they are.
    proc = ctx.Process(target=_worker, args=(send, path, prefix, net, key, chunk, screening, clock), daemon=True)
    proc.start()
    send.close()
    try:
        while True:
            try:
                msg = orjson.loads(recv.recv_bytes())
            except EOFError:
                raise RuntimeError("the intake worker stopped unexpectedly") from None
            if msg is None:
                break
            if isinstance(msg, dict):
                raise RuntimeError(f"intake worker: {msg.get('error')}")
            yield msg
    finally:
        recv.close()
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
