"""What the operator dashboard, the metrics endpoint and the compliance holds panel show.

Two halves, so that a server never reads the engine from a request thread:
- `engine_summary(node)` reads the engine's live state (queue, holds, day) and is bounded; the
  server runs it in its writer thread between blocks.
- the rest reads the store's read models (payments, balances, blocks' notices) through named
  store methods, from any thread.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from setara.core.money import format_amount
from setara.core.network import Network
from setara.node import views
from setara.node.node import Node
from setara.store import PaymentRow, Store

__all__ = ["LATENCY_BUCKETS_MS", "STATUSES", "Cycles", "EngineSummary", "HoldDecision", "decisions",
           "engine_summary", "metrics_text", "overview", "parse_screening_reason"]

LATENCY_BUCKETS_MS = (1, 5, 10, 50, 100, 500, 1000, 5000, 60_000, 300_000, 3_600_000)
STATUSES = ("SETTLED", "QUEUED", "HELD", "REJECTED", "CANCELLED")
THROUGHPUT_MINUTES = 60
CYCLES_KEPT = 500


@dataclass(frozen=True, slots=True)
class EngineSummary:
    """The engine's live state in numbers, as of the last block."""

    queued: int
    queued_by_currency: dict[str, tuple[int, int]]  # currency -> (count, value minor)
    holds: int
    business_day: int
    day_open: bool
    block: int


def engine_summary(node: Node) -> EngineSummary:
    """Run by the node's owner (the writer thread in a server)."""
    n, waiting = views.queue(node.engine)
    by: dict[str, tuple[int, int]] = {}
    for p in waiting:
        c, v = by.get(p.currency, (0, 0))
        by[p.currency] = (c + 1, v + p.amount_minor)
    held, _ = views.holds(node.engine, limit=0)
    eng = node.engine
    return EngineSummary(n, by, held, eng.business_day, eng.day_open, node.block_seq)


def by_currency_json(network: Network, by: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    return [{"currency": c, "count": n, "value": format_amount(v, network.minor_units(c) or 0)}
            for c, (n, v) in sorted(by.items())]


# ====================================================================== netting cycles


class Cycles:
    """Notices of kind cycle_closed, scanned incrementally from the blocks (the last CYCLES_KEPT)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._upto = 0
        self._cycles: list[dict[str, Any]] = []

    def read(self, store: Store) -> list[dict[str, Any]]:
        with self._lock:
            for b in store.iter_blocks(self._upto):
                for n in _notices(b.events):
                    if n[1] == "cycle_closed" and isinstance(n[2], dict):
                        self._cycles.append({**n[2], "block": b.seq, "time_ms": b.time_ms})
                self._upto = b.seq
            self._cycles = self._cycles[-CYCLES_KEPT:]
            return [dict(c, efficiency=_efficiency(c)) for c in self._cycles]


def _notices(events: bytes) -> list[list[Any]]:
    try:
        notices = orjson.loads(events).get("notices", []) if events else []
    except (orjson.JSONDecodeError, AttributeError):
        return []
    return [n for n in notices if isinstance(n, list) and len(n) >= 3]


def _efficiency(c: dict[str, Any]) -> float | None:
    ppm = c.get("netting_efficiency_ppm")
    if isinstance(ppm, int | float) and c.get("gross_minor"):
        return float(ppm) / 1_000_000
    for k in ("efficiency", "netting_efficiency"):
        v = c.get(k)
        if isinstance(v, int | float):
            return float(v)
    gross = c.get("gross_minor", c.get("gross"))
    net = c.get("liquidity_needed_minor", c.get("net_minor", c.get("net")))
    try:
        g, n = float(gross), float(net)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if g <= 0 else 1.0 - n / g


# ====================================================================== metrics


def _num(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    return repr(float(v))


def metrics_text(store: Store, network: Network, summary: EngineSummary, *, group_commits: int,
                 instructions: int, writer_up: bool) -> str:
    """Prometheus text format (the payments read model caught up by the caller)."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: Iterable[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, v in samples:
            lines.append(f"{name}{labels} {_num(v)}")

    counts = dict.fromkeys(STATUSES, 0)
    counts.update(store.payment_counts())
    metric("setara_payments", "gauge", "Payments by current status.",
           ((f'{{status="{s}"}}', n) for s, n in sorted(counts.items())))
    by = {c: summary.queued_by_currency.get(c, (0, 0)) for c in network.currencies}
    by.update(summary.queued_by_currency)
    metric("setara_queue_length", "gauge", "Payments waiting in the RTGS queue.",
           ((f'{{currency="{c}"}}', v[0]) for c, v in sorted(by.items())))
    metric("setara_queue_value", "gauge", "Value waiting in the RTGS queue, in major units.",
           ((f'{{currency="{c}"}}', v[1] / 10 ** (network.minor_units(c) or 0)) for c, v in sorted(by.items())))
    metric("setara_screening_holds", "gauge", "Payments held for compliance review.", [("", summary.holds)])
    total, sum_ms, within = store.settlement_latency(LATENCY_BUCKETS_MS)
    name = "setara_settlement_latency_seconds"
    lines.append(f"# HELP {name} Time from acceptance to settlement of settled payments.")
    lines.append(f"# TYPE {name} histogram")
    for b, n in zip(LATENCY_BUCKETS_MS, within, strict=True):
        lines.append(f'{name}_bucket{{le="{_num(b / 1000)}"}} {n}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {total}')
    lines.append(f"{name}_sum {_num(sum_ms / 1000)}")
    lines.append(f"{name}_count {total}")
    metric("setara_block_height", "gauge", "Last durable block.", [("", summary.block)])
    metric("setara_api_group_commits_total", "counter", "Group commits written by this server.",
           [("", group_commits)])
    metric("setara_api_instructions_total", "counter", "Instructions committed by this server.",
           [("", instructions)])
    metric("setara_api_writer_up", "gauge", "1 while the writer accepts work.", [("", int(writer_up))])
    return "\n".join(lines) + "\n"


# ====================================================================== overview


def finality_json(store: Store) -> dict[str, Any] | None:
    """The last final checkpoint this store holds and which member nodes signed it."""
    doc = store.checkpoint("final")
    if doc is None:
        return None
    cp = orjson.loads(doc)
    return {"seq": cp["seq"], "state_hash": cp["state_hash"], "block_hash": cp["block_hash"],
            "signers": [{"node": sg["node"], "member": sg["member"]} for sg in cp["signatures"]]}


def overview(store: Store, network: Network, summary: EngineSummary, cycles: list[dict[str, Any]], *,
             time_ms: int, started_ms: int) -> dict[str, Any]:
    """What the dashboard draws: balances and positions, queue, throughput, liquidity, netting."""
    def amount(v: int, c: str) -> str:
        return format_amount(v, network.minor_units(c) or 0)

    balances = []
    for m, c, bal, avail in sorted(store.balances()):
        if m not in network.members:
            continue
        acct = network.accounts.get((m, c))
        opening = acct.opening_minor if acct is not None else 0
        balances.append({"member": m, "currency": c, "balance": amount(bal, c), "available": amount(avail, c),
                         "position": amount(bal - opening, c)})
    since = (time_ms // 60_000 - THROUGHPUT_MINUTES + 1) * 60_000
    per_min = store.settled_per_minute(since)
    first = since // 60_000
    throughput = [{"minute_ms": (first + i) * 60_000, "settled": per_min.get(first + i, 0)}
                  for i in range(THROUGHPUT_MINUTES)]
    # Liquidity: gross settled value against the sum of members' net debit positions it needed.
    flows: dict[str, dict[str, int]] = {}
    gross: dict[str, int] = {}
    for ccy, dr, cr, amt in store.settled_flows():
        f = flows.setdefault(ccy, {})
        f[dr] = f.get(dr, 0) - amt
        f[cr] = f.get(cr, 0) + amt
        gross[ccy] = gross.get(ccy, 0) + amt
    liquidity = []
    for ccy in sorted(gross):
        used = sum(-v for v in flows[ccy].values() if v < 0)
        liquidity.append({"currency": ccy, "gross": amount(gross[ccy], ccy), "used": amount(used, ccy),
                          "ratio": used / gross[ccy] if gross[ccy] else None})
    return {
        "finality": finality_json(store),
        "time_ms": time_ms, "business_day": summary.business_day, "day_open": summary.day_open,
        "block": summary.block,
        "currencies": [{"code": c, "minor_units": network.minor_units(c) or 0} for c in network.currencies],
        "balances": balances,
        "queue": {"count": summary.queued, "by_currency": by_currency_json(network, summary.queued_by_currency)},
        "holds": summary.holds, "payments_by_status": store.payment_counts(), "throughput": throughput,
        "liquidity": liquidity, "cycles": cycles, "started_ms": started_ms,
        "uptime_s": (time_ms - started_ms) / 1000, "now_s": time.time(),
    }


# ====================================================================== screening decisions (compliance)

# "screening review (un-xml@1 creditor_name 0.895 un-xml:111209)", "screening review: <hold reason>",
# "regulatory: sanctions screening (<ref>)": the engine's reasons carry the decision's reference.
_REF = re.compile(r"(?P<lists>(?:[\w.-]+@\d+;?)+)\s+(?P<field>\w+)\s+(?P<score>\d+(?:\.\d+)?)\s+"
                  r"(?P<list>[\w.-]+):(?P<entity>\S+?)\)?$")


@dataclass(slots=True)
class HoldDecision:
    """The screening decision behind a hold or a regulatory rejection, for compliance and audit."""

    payment_id: str
    reason: str | None
    lists: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # [{source, version}]
    subject: str | None = None  # the screened field that decided (creditor_name, ...)
    score: float | None = None
    source: str | None = None  # the list the entity is on
    entity_id: str | None = None
    matched_name: str | None = None
    hits: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # every name that hit (block audits)

    def as_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "lists": self.lists, "field": self.subject, "score": self.score,
                "list": self.source, "entity_id": self.entity_id, "matched_name": self.matched_name,
                "hits": self.hits}


def parse_screening_reason(payment_id: str, reason: str | None) -> HoldDecision:
    d = HoldDecision(payment_id, reason)
    if not reason:
        return d
    m = _REF.search(reason)
    if m is None:
        return d
    d.lists = [{"source": s.split("@")[0], "version": int(s.split("@")[1])}
               for s in m.group("lists").split(";") if "@" in s]
    d.subject, d.score = m.group("field"), float(m.group("score"))
    d.source, d.entity_id = m.group("list"), m.group("entity")
    return d


def decisions(store: Store, rows: Iterable[PaymentRow]) -> dict[str, HoldDecision]:
    """Structured screening decisions of payments (from their reasons, and the screening audits
    the block that accepted each one recorded: matched name and score of every hit)."""
    out: dict[str, HoldDecision] = {}
    by_block: dict[int, list[str]] = {}
    for r in rows:
        out[r.id] = parse_screening_reason(r.id, r.reason)
        by_block.setdefault(r.block, []).append(r.id)
    for seq in sorted(by_block):
        want = set(by_block[seq])
        for b in _one_block(store, seq):
            for n in _notices(b.events):
                data = n[2]
                if n[1] != "screening" or not isinstance(data, dict) or data.get("payment_id") not in want:
                    continue
                d = out[data["payment_id"]]
                hit = {k: data.get(k) for k in ("subject", "decision", "score", "list", "entity_id",
                                                "matched_name", "list_versions")}
                d.hits.append(hit)
                if d.entity_id is not None and data.get("entity_id") == d.entity_id and \
                        data.get("subject") == d.subject:
                    d.matched_name = data.get("matched_name")
            for d in (out[pid] for pid in want):
                if d.matched_name is None and d.hits:
                    best: dict[str, Any] = max(d.hits, key=lambda h: float(h.get("score") or 0))
                    d.matched_name = best.get("matched_name")
    return out


def _one_block(store: Store, seq: int) -> Iterator[Any]:
    for b in store.iter_blocks(seq - 1):
        yield b
        return
