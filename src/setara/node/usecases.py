"""The use cases every front end calls: the CLI, the HTTP API and the simulator do the same thing
the same way, by calling these functions on a writable Node.

Each use case checks what it can say about its input before anything moves, stamps its command
with the given clock, applies it durably, and answers only after the block holding it is
committed. Refusals raise `Refused` (the input cannot be done: an unknown id, a payment in the
wrong state, a bad value), with `kind` telling front ends how to answer (CLI exit 2; HTTP 404,
409 or 422); failures of the system raise SetaraError (CLI exit 1; HTTP 503).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from setara.core import (
    HELD,
    QUEUED,
    REJECTED,
    Cancel,
    ChangeNetwork,
    CloseCycle,
    DayClose,
    DayOpen,
    EngineError,
    Freeze,
    Fund,
    Hold,
    Notice,
    PostRate,
    Review,
    SetSuspended,
    StatusEvent,
)
from setara.core.instructions import Instruction, payment_id_problem
from setara.core.ledger import Posting
from setara.core.money import format_amount
from setara.core.network import Network, NetworkError, parse_network_change
from setara.node.node import Node, SetaraError
from setara.node.projection import project_entries
from setara.ports import Clock, now_ms

__all__ = [
    "FundResult",
    "Refused",
    "apply_network_change",
    "cancel_payment",
    "close_cycle",
    "close_day",
    "copy_network",
    "fund",
    "open_day",
    "post_rate",
    "rescreen",
    "review_hold",
    "set_suspended",
    "start_replication",
]

RefusalKind = Literal["not_found", "conflict", "invalid"]
RATE_VALID_S_MAX = 366 * 24 * 3600


class Refused(SetaraError):
    """The use case cannot be done with this input; nothing changed."""

    def __init__(self, kind: RefusalKind, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.field = field


def _apply(node: Node, cmd: Any, field: str | None = None) -> list[Any]:
    """Apply one command durably; the engine's refusal becomes a Refused (invalid input)."""
    try:
        return node.execute([cmd])[0]
    except EngineError as e:
        raise Refused("invalid", str(e), field) from None


def _member(net: Network, member: str, field: str = "member") -> None:
    if member not in net.members:
        raise Refused("not_found", f"unknown member {member}", field)


def _currency(net: Network, currency: str, field: str = "currency") -> int:
    units = net.minor_units(currency)
    if units is None:
        raise Refused("not_found", f"currency {currency} is not in the network", field)
    return units


# ====================================================================== money in and out


@dataclass(frozen=True, slots=True)
class FundResult:
    id: str
    member: str
    currency: str
    balance_minor: int  # the account's balance right after the movement (before what it released)


def fund(node: Node, member: str, currency: str, amount_minor: int, *, withdraw: bool = False,
         fund_id: str | None = None, clock: Clock = now_ms) -> FundResult:
    """The settlement agent issues central bank money into a member's account (or drains it).

    Idempotent on `fund_id`: a retry with the same content answers the first movement's result
    (nothing is posted again); the same id with other content is refused, naming what differs."""
    net = node.network
    _member(net, member)
    units = _currency(net, currency)
    if (member, currency) not in net.accounts:
        raise Refused("not_found", f"{member} has no {currency} account", "currency")
    if amount_minor <= 0:
        raise Refused("invalid", "amount must be greater than zero", "amount")
    if fund_id is not None:
        problem = payment_id_problem(fund_id)
        if problem is not None:
            raise Refused("invalid", f"funding id {fund_id} {problem}", "id")
        if fund_id in node.engine.funds:
            return _fund_again(node, _Movement(member, currency, amount_minor, withdraw), fund_id, units)
    if withdraw:
        # Said in the currency's units; the engine's own refusal would speak in minor units.
        available = node.engine.ledger.available((member, currency))
        if available < amount_minor:
            raise Refused("invalid", f"{member} has only {format_amount(available, units)} {currency} "
                          "available to withdraw", "amount")
    fid = fund_id or f"{'withdraw' if withdraw else 'fund'}:{uuid.uuid4()}"
    events = _apply(node, Fund(fid, member, currency, amount_minor, withdraw, clock()), "amount")
    # Queued payments the funding released settle in the same command: take them back out, so
    # the answer is the balance the funding's own posting left, which a retry can read again.
    balance = node.engine.ledger.balance((member, currency))
    after = False
    for e in events:
        if isinstance(e, Posting):
            if after and e.currency == currency:
                balance += (e.amount_minor if e.debit == member else 0) - (e.amount_minor if e.credit == member else 0)
            after = after or e.payment_id == fid
    return FundResult(fid, member, currency, balance)


@dataclass(frozen=True, slots=True)
class _Movement:
    member: str
    currency: str
    amount_minor: int
    withdraw: bool

    def describe(self, units: int | None) -> str:
        amount = str(self.amount_minor) if units is None else format_amount(self.amount_minor, units)
        return f"{'withdraw' if self.withdraw else 'fund'} {self.member} {amount} {self.currency}"


def _fund_again(node: Node, this: _Movement, fund_id: str, units: int) -> FundResult:
    """A used funding id: the first movement's result when `this` is the same movement, else a
    refusal. The first movement is found on its settlement agent's issuance account in the
    entries read model (the engine keeps only the id, and its state format stays as it is)."""
    net = node.network
    project_entries(node.store)
    agents = [(c.agent, code) for code, c in net.currencies.items()]
    rows = [e for e in node.store.posting_entries(fund_id, agents) if e.counterparty in net.members]
    if len(rows) != 1:
        raise SetaraError(f"funding id {fund_id} is recorded but its posting is not found in the entries read model")
    agent_side = rows[0]
    # The agent's side is credited when the member's account was drained.
    first = _Movement(agent_side.counterparty, agent_side.currency, agent_side.amount_minor, agent_side.credit)
    if first != this:
        field = next((f.removesuffix("_minor") for f in ("member", "currency", "amount_minor")
                      if getattr(first, f) != getattr(this, f)), "id")
        was = first.describe(net.minor_units(first.currency))
        raise Refused("conflict", f"funding id {fund_id} already used for {was}, not {this.describe(units)}", field)
    mine = [e for e in node.store.posting_entries(fund_id, [(this.member, this.currency)]) if e.seq == agent_side.seq]
    if not mine:
        raise SetaraError(f"funding id {fund_id}: the member's side of its posting is not in the entries read model")
    return FundResult(fund_id, this.member, this.currency, mine[0].balance_after_minor)


# ====================================================================== payments


def cancel_payment(node: Node, payment_id: str, *, clock: Clock = now_ms) -> str:
    """Cancel a QUEUED or HELD payment; returns its new status."""
    status = node.engine.status(payment_id)
    if status is None:
        raise Refused("not_found", f"unknown payment {payment_id}", "id")
    if status not in (QUEUED, HELD):
        raise Refused("conflict", f"payment {payment_id} is {status}; only QUEUED or HELD payments can be cancelled",
                      "id")
    _apply(node, Cancel(payment_id, clock()), "id")
    return node.engine.status(payment_id) or ""


def review_hold(node: Node, payment_id: str, *, release: bool, officer: str, note: str,
                clock: Clock = now_ms) -> str:
    """A compliance officer's decision on a HELD payment; returns its new status. Both the
    officer and the reason are required: an anonymous decision is not a review."""
    if not officer.strip():
        raise Refused("invalid", "the officer is required: say who decides", "officer")
    if not note.strip():
        raise Refused("invalid", "a note is required: say why", "note")
    status = node.engine.status(payment_id)
    if status is None:
        raise Refused("not_found", f"unknown payment {payment_id}", "id")
    if status != HELD:
        raise Refused("conflict", f"payment {payment_id} is {status}, not HELD", "id")
    _apply(node, Review(payment_id, release, officer.strip(), note.strip(), clock()), "id")
    return node.engine.status(payment_id) or ""


# ====================================================================== FX


def post_rate(node: Node, provider: str, base: str, quote: str, rate: str, *, valid_for_s: int,
              locked: bool = False, clock: Clock = now_ms) -> str:
    """An FX provider posts a rate (or, locked, a quote only instructions naming it may use);
    returns the quote id, or `provider base/quote rate`."""
    net = node.network
    _member(net, provider, "provider")
    _currency(net, base, "pair")
    _currency(net, quote, "pair")
    if not 0 < valid_for_s <= RATE_VALID_S_MAX:
        raise Refused("invalid", f"validity must be between 1 s and {RATE_VALID_S_MAX} s", "expires_in")
    t = clock()
    qid = f"Q-{uuid.uuid4()}" if locked else None
    _apply(node, PostRate(provider, base, quote, rate, t + valid_for_s * 1000, t, qid), "rate")
    return qid or f"{provider} {base}/{quote} {rate}"


# ====================================================================== the day and cycles


def close_day(node: Node, *, clock: Clock = now_ms) -> tuple[int, int]:
    """End the business day; returns (business day, queued payments rejected at cut-off)."""
    if not node.engine.day_open:
        raise Refused("conflict", "the business day is already closed")
    events = _apply(node, DayClose(clock()))
    rejected = sum(1 for e in events if type(e) is StatusEvent and e.status == REJECTED)
    return node.engine.business_day, rejected


def open_day(node: Node, *, clock: Clock = now_ms) -> int:
    if node.engine.day_open:
        raise Refused("conflict", "the business day is already open")
    _apply(node, DayOpen(clock()))
    return node.engine.business_day


def close_cycle(node: Node, currency: str, *, clock: Clock = now_ms) -> list[dict[str, Any]]:
    """Close deferred-net cycles (one currency, or "*" for all in one netting); returns the
    cycle notices (closed, unwound)."""
    net = node.network
    if currency != "*":
        _currency(net, currency)
    events = _apply(node, CloseCycle(currency, clock()), "currency")
    return [{"event": e.kind, **e.data} for e in events
            if type(e) is Notice and e.kind in ("cycle_closed", "cycle_unwound")]


# ====================================================================== membership


def set_suspended(node: Node, member: str, suspended: bool, *, clock: Clock = now_ms) -> None:
    _member(node.network, member)
    _apply(node, SetSuspended(member, suspended, clock()))


def apply_network_change(node: Node, change_toml: str, *, clock: Clock = now_ms) -> dict[str, Any]:
    """Apply a network change file (add members, change credit lines) as a command in the log;
    new members are screened when they join (a designated one is frozen at once)."""
    try:
        body = parse_network_change(change_toml, node.network)
    except NetworkError as e:
        raise Refused("invalid", str(e)) from None
    _apply(node, ChangeNetwork(body, clock()))
    report: dict[str, Any] = {"added": [a["member"]["id"] for a in body["add_members"]],
                              "credit_lines": len(body["credit_lines"]), "frozen": 0}
    if body["add_members"] and getattr(node.screening, "loaded", False):
        report["frozen"] = rescreen(node, clock=clock)["frozen"]
    return report


# ====================================================================== member nodes


def start_replication(node: Node, settings: Any, *, clock: Clock = now_ms) -> None:
    """Replicate this writer's log from now on (`--replicate`): hold the sequencer lease, bring the
    stream up to this store's head, and, when this sequencer starts a new epoch, record it in the
    log first. Raises replicate.NotASequencer for a key that may not sign blocks."""
    from setara.core import EpochStart
    from setara.node.replicate import Replicator

    rep = Replicator.open(settings, node.network, node.store)
    node.replicator = rep
    if rep.new_epoch:
        node.execute([EpochStart(rep.epoch, rep.signer, clock())])


# ====================================================================== operations


def copy_network(source: str, target: str) -> tuple[int, str]:
    """Copy a network's block log into an empty store and rebuild it by replay (a backup restored,
    or a move between SQLite and PostgreSQL), then verify it; returns (blocks copied, state hash).
    Raises StoreError (a store cannot be used) or VerificationError (the copy does not verify)."""
    from setara.node.verify import verify_store
    from setara.store import copy_log, open_store

    src = open_store(source)
    try:
        dst = open_store(target, create=True)
    except BaseException:
        src.close()
        raise
    try:
        src.check_schema()
        n = copy_log(src, dst)
    finally:
        src.close()
        dst.close()
    with Node.open(target, write=True) as node:
        node.snapshot()
        node.catch_up()
    store = open_store(target)
    try:
        report = verify_store(store)
    finally:
        store.close()
    return n, report.state_hash


# ====================================================================== compliance


def rescreen(node: Node, *, clock: Clock = now_ms) -> dict[str, int]:
    """After a list changes (or members join): screen members (designated ones are frozen) and
    every queued payment again (hits go on hold). Held payments stay held for the officer."""
    from setara.compliance.countries import country_rule_hit
    from setara.node.screening import PaymentScreening

    screening = node.screening
    net = node.network
    report = {"members": 0, "payments": 0, "frozen": 0, "held": 0}
    cmds: list[Any] = []
    screener = None
    block_threshold = 1.0
    if isinstance(screening, PaymentScreening):
        screener = screening.screener(sorted({s for m in net.members.values() for s in m.lists} | {"un-xml"}))
        block_threshold = screening.block_threshold
    for m in net.members.values():
        report["members"] += 1
        why = country_rule_hit([m.country], None, [m.bic], net.comprehensive_sanction_countries)
        if why is None and screener is not None and m.name:
            hit = screener.screen(m.name, m.country)
            if hit.score >= block_threshold:
                why = f"designated: {hit.list}:{hit.entity_id} {hit.matched_name!r} score {hit.score:.3f}"
        if why is not None and m.id not in node.engine.frozen:
            cmds.append(Freeze(m.id, True, why[:200], clock()))
            report["frozen"] += 1
    node.catch_up()
    for p in list(node.engine.live.values()):
        report["payments"] += 1
        if p.status != QUEUED:
            continue
        parties = node.store.payment_parties(p.id)
        if not parties:
            continue
        ins = Instruction(p.id, p.debtor, p.creditor, p.currency, p.amount_minor, p.priority, p.to_currency,
                          parties=parties)
        d = screening.decide(ins, net)
        if d.decision != "clear":
            cmds.append(Hold(p.id, d.ref[:200], clock()))
            report["held"] += 1
    if cmds:
        node.execute(cmds)
    return report
