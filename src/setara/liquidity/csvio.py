"""`setara settle` on files: read balances and queue CSVs, solve each currency, write settled ids.

The CSV carries no currency table, so amounts are read exactly at the finest scale seen per currency
(the most decimals among that currency's balances and amounts): "12.5" and "3.25" in one currency
become 1250 and 325 hundredths. Nothing is rounded and floats never touch an amount.
"""

from __future__ import annotations

import csv
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ALGORITHMS, solve_problem
from ._model import ITEMS_MAX, problem_from_arrays

__all__ = ["read_balances", "read_queue", "run_settle", "write_ids"]

_DEC_RE = re.compile(r"^(-?)(\d{1,30})(?:\.(\d{1,12}))?$")
_INT_RE = re.compile(r"^-?\d{1,18}$")
_CODE_RE = re.compile(r"^[A-Z]{3}$")
_FIELD_MAX = 200
BALANCE_HEADER = ("member", "currency", "balance")
QUEUE_HEADER = ("id", "debtor", "creditor", "currency", "amount", "priority", "submitted_at")
_PRIORITY = {"URGENT": 0, "NORMAL": 1, "0": 0, "1": 1, "": 1}
# Startup, parsing and writing happen outside the solver; keep this much of the caller's limit for them.
IO_RESERVE_S = 3.0


class _Decimal:
    """A parsed decimal: sign * digits / 10**decimals, kept as text parts until the scale is known."""

    __slots__ = ("decimals", "negative", "whole")

    def __init__(self, negative: bool, whole: str, decimals: str) -> None:
        self.negative = negative
        self.whole = whole
        self.decimals = decimals

    def at_scale(self, scale: int) -> int:
        v = int(self.whole) * int(10**scale) + (int(self.decimals.ljust(scale, "0")) if scale else 0)
        return -v if self.negative else v


def _err(path: Path, line: int, field: str, msg: str) -> ValueError:
    return ValueError(f"{path}: line {line}: field {field!r}: {msg}")


def _decimal(path: Path, line: int, field: str, text: str) -> _Decimal:
    m = _DEC_RE.match(text.strip())
    if m is None:
        raise _err(path, line, field, f"{text[:40]!r} is not a decimal number like 1250.50")
    return _Decimal(m.group(1) == "-", m.group(2), m.group(3) or "")


def _rows(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        f = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with f:
        reader = csv.reader(f)
        try:
            head = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: line 1: empty file, expected header {','.join(header)}") from None
        except csv.Error as exc:
            raise ValueError(f"{path}: line 1: {exc}") from exc
        cols = [h.strip().lower() for h in head]
        missing = [h for h in header if h not in cols]
        if missing:
            raise ValueError(f"{path}: line 1: header lacks field(s) {', '.join(missing)} "
                             f"(expected {','.join(header)})")
        pos = {h: cols.index(h) for h in header}
        line = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ValueError(f"{path}: line {reader.line_num}: {exc}") from exc
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(cols):
                raise ValueError(f"{path}: line {line}: {len(row)} fields, header has {len(cols)}")
            rec = {}
            for h, i in pos.items():
                v = row[i].strip()
                if len(v) > _FIELD_MAX:
                    raise _err(path, line, h, f"longer than {_FIELD_MAX} characters")
                rec[h] = v
            yield line, rec


def _currency(path: Path, line: int, text: str) -> str:
    if not _CODE_RE.match(text):
        raise _err(path, line, "currency", f"{text[:20]!r} is not a three-letter upper-case code")
    return text


@dataclass(frozen=True, slots=True)
class _Queue:
    ids: list[str]
    debtor: list[str]
    creditor: list[str]
    currency: list[str]
    amount: list[_Decimal]
    priority: list[int]
    order: list[int]


def read_balances(path: Path) -> dict[tuple[str, str], _Decimal]:
    out: dict[tuple[str, str], _Decimal] = {}
    for line, r in _rows(path, BALANCE_HEADER):
        if not r["member"]:
            raise _err(path, line, "member", "empty")
        key = (r["member"], _currency(path, line, r["currency"]))
        if key in out:
            raise _err(path, line, "member", f"{key[0]} {key[1]} appears twice")
        out[key] = _decimal(path, line, "balance", r["balance"])
    return out


def read_queue(path: Path) -> _Queue:
    q = _Queue([], [], [], [], [], [], [])
    seen: set[str] = set()
    for line, r in _rows(path, QUEUE_HEADER):
        pid = r["id"]
        if not pid:
            raise _err(path, line, "id", "empty")
        if pid in seen:
            raise _err(path, line, "id", f"{pid!r} appears twice")
        seen.add(pid)
        if not r["debtor"]:
            raise _err(path, line, "debtor", "empty")
        if not r["creditor"]:
            raise _err(path, line, "creditor", "empty")
        if r["debtor"] == r["creditor"]:
            raise _err(path, line, "creditor", "a debtor cannot pay itself")
        cur = _currency(path, line, r["currency"])
        amt = _decimal(path, line, "amount", r["amount"])
        if amt.negative or (not amt.whole.strip("0") and not amt.decimals.strip("0")):
            raise _err(path, line, "amount", f"{r['amount']!r} must be greater than zero")
        pri = _PRIORITY.get(r["priority"].upper())
        if pri is None:
            raise _err(path, line, "priority", f"{r['priority'][:20]!r} is not URGENT or NORMAL")
        if not _INT_RE.match(r["submitted_at"]):
            raise _err(path, line, "submitted_at", f"{r['submitted_at'][:20]!r} is not an integer")
        q.ids.append(pid)
        q.debtor.append(r["debtor"])
        q.creditor.append(r["creditor"])
        q.currency.append(cur)
        q.amount.append(amt)
        q.priority.append(pri)
        q.order.append(int(r["submitted_at"]))
        if len(q.ids) > ITEMS_MAX:
            raise ValueError(f"{path}: more than {ITEMS_MAX} payments")
    return q


def _format(v: int, scale: int) -> str:
    sign = "-" if v < 0 else ""
    q, r = divmod(abs(v), 10**scale)
    return f"{sign}{q}.{r:0{scale}d}" if scale else f"{sign}{q}"


def _bound_minor(bound: float) -> int:
    # an upper bound: round up, but not for float noise just below an integer
    near = round(bound)
    return int(near) if abs(bound - near) < 1e-3 else math.ceil(bound)


def write_ids(path: Path, ids: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id"])
        for pid in ids:
            w.writerow([pid])


def run_settle(
    balances_path: Path,
    queue_path: Path,
    algorithm: str,
    out_path: Path | None,
    *,
    respect_priority: bool,
    fifo: bool,
    time_limit_s: float,
) -> dict[str, object]:
    """Solve the CSV instance; write ids to out_path. Returns the JSON summary; when out_path is None
    the settled ids are in summary["settled_ids"] (queue order) for the caller to print."""
    t0 = time.perf_counter()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    balances = read_balances(balances_path)
    q = read_queue(queue_path)
    scale: dict[str, int] = {}
    for (_, cur), d in balances.items():
        scale[cur] = max(scale.get(cur, 0), len(d.decimals))
    for cur, d in zip(q.currency, q.amount, strict=True):
        scale[cur] = max(scale.get(cur, 0), len(d.decimals))
    currencies = sorted({c for c in q.currency} | {c for _, c in balances})
    cur_arr = np.array([currencies.index(c) for c in q.currency], dtype=np.int64) if q.ids else np.zeros(0, np.int64)
    selected_pos: list[int] = []
    settled: dict[str, str] = {}
    bounds: dict[str, str | None] = {}
    queue_value: dict[str, str] = {}
    stats: dict[str, object] = {}
    n_total = max(len(q.ids), 1)
    for ci, cur in enumerate(currencies):
        pos = np.flatnonzero(cur_arr == ci)
        sc = scale.get(cur, 0)
        members = sorted({m for m, c in balances if c == cur} | {q.debtor[i] for i in pos.tolist()}
                         | {q.creditor[i] for i in pos.tolist()})
        index = {m: k for k, m in enumerate(members)}
        avail = np.array([balances[(m, cur)].at_scale(sc) if (m, cur) in balances else 0 for m in members],
                         dtype=np.int64)
        plist = pos.tolist()
        amt = np.array([q.amount[i].at_scale(sc) for i in plist], dtype=np.int64)
        queue_value[cur] = _format(int(amt.sum()), sc)
        if not plist:
            settled[cur] = _format(0, sc)
            bounds[cur] = _format(0, sc)
            continue
        prob = problem_from_arrays(
            avail, tuple(q.ids[i] for i in plist),
            np.array([index[q.debtor[i]] for i in plist], dtype=np.int64),
            np.array([index[q.creditor[i]] for i in plist], dtype=np.int64),
            amt, amt, np.array([q.priority[i] for i in plist], dtype=np.int64),
            np.array([q.order[i] for i in plist], dtype=np.int64))
        left = time_limit_s - (time.perf_counter() - t0) - IO_RESERVE_S
        budget = max(left * len(plist) / n_total, 0.5)
        n_total -= len(plist)
        sol = solve_problem(prob, algorithm, respect_priority=respect_priority, fifo=fifo, time_limit_s=budget)
        chosen = set(sol.selected)
        selected_pos.extend(i for i in plist if q.ids[i] in chosen)
        settled[cur] = _format(sol.settled_value, sc)
        bounds[cur] = None if sol.lp_bound is None else _format(_bound_minor(sol.lp_bound), sc)
        stats[cur] = {k: v for k, v in sol.stats.items() if isinstance(v, int | float | str)}
    selected_pos.sort()
    ids = [q.ids[i] for i in selected_pos]
    if out_path is not None:
        write_ids(out_path, ids)
    summary: dict[str, object] = {
        "algorithm": algorithm,
        "count": len(ids),
        "settled_value": settled,
        "lp_bound": bounds,
        "seconds": round(time.perf_counter() - t0, 3),
        "queue_count": len(q.ids),
        "queue_value": queue_value,
        "stats": stats,
    }
    if out_path is None:
        summary["settled_ids"] = ids
    return summary
