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
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from setara.instructions import (
    Instruction,
    Rejection,
    fingerprint,
    parse_json_instruction,
    parse_json_line,
    parties_digest,
)
from setara.network import Network

__all__ = ["ParsedLine", "parallel_parse", "parse_lines"]

# (line_no, instruction or None, fingerprint, parties digest, rejection (code, text, id) or None)
ParsedLine = tuple[int, Instruction | None, int, str, tuple[str, str, str | None] | None]
CHUNK_LINES_MAX = 50_000


def _parse_one(line_no: int, raw: bytes, net: Network, key: bytes) -> ParsedLine:
    try:
        ins = parse_json_instruction(parse_json_line(raw), net)
    except Rejection as r:
        return (line_no, None, 0, "", (r.code, r.text, r.payment_id))
    return (line_no, ins, fingerprint(ins), parties_digest(ins, key), None)


def parse_lines(lines: Iterator[bytes], net: Network, key: bytes, chunk: int, first_line_no: int = 1
                ) -> Iterator[list[ParsedLine]]:
    """The in-process form: chunks of parsed lines (blank lines skipped, numbering kept)."""
    out: list[ParsedLine] = []
    for n, raw in enumerate(lines, start=first_line_no):
        if not raw.strip():
            continue
        out.append(_parse_one(n, raw, net, key))
        if len(out) >= chunk:
            yield out
            out = []
    if out:
        yield out


def _pack(items: list[ParsedLine]) -> list[tuple[Any, ...]]:
    # Plain tuples pickle several times faster than dataclass instances.
    packed: list[tuple[Any, ...]] = []
    for n, ins, fp, digest, rej in items:
        if ins is None:
            packed.append((n, rej))
        else:
            packed.append((n, ins.id, ins.debtor, ins.creditor, ins.currency, ins.amount_minor, ins.priority,
                           ins.to_currency, ins.quote_id, ins.uetr, ins.end_to_end_id, ins.msg_id,
                           ins.parties or None, fp, digest))
    return packed


def _unpack(packed: list[tuple[Any, ...]]) -> list[ParsedLine]:
    out: list[ParsedLine] = []
    for t in packed:
        if len(t) == 2:
            out.append((t[0], None, 0, "", t[1]))
        else:
            ins = Instruction(t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12] or {})
            out.append((t[0], ins, t[13], t[14], None))
    return out


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


def _worker(conn: Connection, path: str | None, prefix: bytes, net_cfg: dict[str, Any], key: bytes,
            chunk: int) -> None:
    _detach_from_parent(conn.fileno())
    try:
        net = Network.from_config(net_cfg)
        f = sys.stdin.buffer if path is None else open(path, "rb")  # noqa: SIM115 - closed on exit
        lines: Iterator[bytes] = iter(f)
        if prefix:
            lines = _chain_first(prefix, lines)
        for part in parse_lines(lines, net, key, chunk):
            conn.send(_pack(part))
        conn.send(None)
    except BrokenPipeError:  # the engine process went away; nothing to do
        pass
    except BaseException as e:  # report, never hang the reader
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def _chain_first(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def parallel_parse(path: str | None, prefix: bytes, net: Network, key: bytes, chunk: int
                   ) -> Iterator[list[ParsedLine]]:
    """Parse `path` (None: stdin, after `prefix`, the bytes already read from it) in a worker
    process; yield chunks in input order. Falls back to in-process parsing where fork is absent."""
    chunk = max(1, min(chunk, CHUNK_LINES_MAX))
    if "fork" not in mp.get_all_start_methods():
        f = sys.stdin.buffer if path is None else open(path, "rb")  # noqa: SIM115
        lines: Iterator[bytes] = iter(f)
        yield from parse_lines(_chain_first(prefix, lines) if prefix else lines, net, key, chunk)
        return
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker, args=(send, path, prefix, net.to_config(), key, chunk), daemon=True)
    proc.start()
    send.close()
    try:
        while True:
            try:
                msg = recv.recv()
            except EOFError:
                raise RuntimeError("the intake worker stopped unexpectedly") from None
            if msg is None:
                break
            if isinstance(msg, tuple) and msg and msg[0] == "error":
                raise RuntimeError(f"intake worker: {msg[1]}")
            yield _unpack(msg)
    finally:
        recv.close()
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
