"""The settlement engine: a deterministic state machine, commands in, events out.

No clock, randomness or I/O lives here: every command carries its time (which never goes
backwards), and the same log of commands gives the same events and the same state hash on every
machine. Production, replay, verification and simulation all run this one class; storage and
interfaces are shells around it. This module holds dispatch, admission, the RTGS queue, holds and
the business day; its other concerns have their own modules: `bulk` (runs that settle at once),
`fx` (rates and PvP conversion), `cycles` (deferred-net settlement), `snapshot` (state and hash).

Settlement rules, in one place:
- A payment settles at once (RTGS) when its debtor's available balance (balance - floor -
  reservations) covers it and no earlier payment of equal or higher priority waits in the debtor's
  queue for that currency; otherwise it queues. Queues are URGENT before NORMAL, FIFO within a
  priority, and are retried whenever the debtor receives liquidity.
- On entry, a payment that must queue is offset bilaterally against payments queued the other way
  when together they fit (liquidity saving, cheap enough to run on every entry).
- A cross-currency payment settles payment-versus-payment: the debtor pays an FX provider in the
  first currency and the provider pays the creditor in the second in one atomic posting, or it
  waits whole.
- A screening hit for review puts the payment on HELD, earmarking its funds when the debtor has
  them (a two-phase reservation); release settles or queues it, reject voids the earmark.
- `DayClose` rejects whatever is still queued (TM01, cut-off); payments submitted while the day is
  closed wait for `DayOpen`.
- A settled payment is final: it never changes, and it settles at most once.

Growth: `final` and `funds` are the at-most-once records (one entry per payment or funding id
ever accepted, kept in snapshots); `reasons` keeps the last REASONS_MAX ended payments' reasons
(older ones live in the payments read model); locked FX quotes are purged at day close once
expired and capped at fx.QUOTES_MAX; rates are one per provider and pair; queues and holds are
bounded by the payments waiting.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, assert_never

import orjson

from setara.core.commands import (
    CANCELLED,
    HELD,
    NORMAL,
    QUEUED,
    REJECTED,
    SETTLED,
    URGENT,
    Cancel,
    ChangeNetwork,
    CloseCycle,
    Command,
    DayClose,
    DayOpen,
    EngineError,
    EpochStart,
    Event,
    Freeze,
    Fund,
    Hold,
    Init,
    Notice,
    PostRate,
    Review,
    SetSuspended,
    SettleSet,
    StatusEvent,
    Submit,
)
from setara.core.cycles import close_cycle
from setara.core.fx import Rate, convert, post_rate, purge_expired_quotes
from setara.core.ledger import InsufficientFunds, InvariantViolation, Ledger, Leg
from setara.core.network import Account as NetAccount
from setara.core.network import Network, account_from_cfg, member_from_cfg

__all__ = ["REASONS_MAX", "SETTLE_SET_MAX", "Engine", "Payment", "Queue"]

FINAL_CODES = {SETTLED: 0, REJECTED: 1, CANCELLED: 2}
_FINAL_NAMES = {v: k for k, v in FINAL_CODES.items()}
SETTLE_SET_MAX = 2_000_000
REASONS_MAX = 1_000_000
RATE_TTL_DEFAULT_MS = 24 * 3600 * 1000


# ====================================================================== state


@dataclass(slots=True)
class Payment:
    """A payment not yet final (queued or held). Final payments shrink to a fingerprint."""

    id: str
    debtor: str
    creditor: str
    currency: str
    amount_minor: int
    priority: int
    order: int
    fingerprint: int
    status: str
    accepted_ms: int
    to_currency: str | None = None
    provider: str | None = None
    credit_minor: int = 0  # amount the creditor receives in to_currency (PvP)
    rate: str = ""
    cycle: str | None = None  # currency of the deferred-net cycle it waits for, if any

    def legs(self) -> list[Leg]:
        if self.provider is None:
            return [Leg(self.currency, self.debtor, self.creditor, self.amount_minor)]
        if self.to_currency is None:
            raise InvariantViolation(f"payment {self.id} has an FX provider but no target currency")
        return [
            Leg(self.currency, self.debtor, self.provider, self.amount_minor, self.rate),
            Leg(self.to_currency, self.provider, self.creditor, self.credit_minor, self.rate),
        ]




@dataclass(slots=True)
class Queue:
    urgent: dict[str, None] = field(default_factory=dict)
    normal: dict[str, None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.urgent) or bool(self.normal)

    def blocks(self, priority: int) -> bool:
        """True when a new payment of `priority` must wait behind this queue (FIFO)."""
        return bool(self.urgent) or (priority == NORMAL and bool(self.normal))

    def add(self, pid: str, priority: int) -> None:
        (self.urgent if priority == URGENT else self.normal)[pid] = None

    def remove(self, pid: str) -> None:
        self.urgent.pop(pid, None)
        self.normal.pop(pid, None)

    def ordered(self) -> Iterator[str]:
        yield from self.urgent
        yield from self.normal


class Engine:
    """Deterministic settlement state machine. `apply(command) -> events`."""

    def __init__(self) -> None:
        self.network: Network | None = None
        self.ledger = Ledger()
        self.live: dict[str, Payment] = {}
        self.final: dict[str, int] = {}  # id -> fingerprint << 2 | final status code
        self.reasons: dict[str, list[str]] = {}  # why a payment was REJECTED or CANCELLED
        self.queues: dict[tuple[str, str], Queue] = {}
        self.cycle_pending: dict[str, dict[str, None]] = {}
        self.cycles_closed: dict[str, int] = {}
        self.pvp_waiting: dict[tuple[str, str], dict[str, None]] = {}
        self.rates: dict[tuple[str, str, str], Rate] = {}
        self.quotes: dict[str, Rate] = {}
        self.day_open = True
        self.business_day = 0
        self.order = 0
        self.applied = 0
        self.funds: set[str] = set()
        self.frozen: dict[str, str] = {}  # member -> why its assets are frozen
        self.time_ms = 0  # the latest command's time: time never goes backwards
        self.fast: dict[tuple[str, str, str], int] = {}  # bulk.fast_limit's cache, until a non-Submit
        self._out: list[Event] = []
        self._work: deque[tuple[str, str]] = deque()

    # ------------------------------------------------------------------ queries
    def status(self, pid: str) -> str | None:
        p = self.live.get(pid)
        if p is not None:
            return p.status
        code = self.final.get(pid)
        return None if code is None else _FINAL_NAMES[code & 3]

    def fingerprint(self, pid: str) -> int | None:
        p = self.live.get(pid)
        if p is not None:
            return p.fingerprint
        code = self.final.get(pid)
        return None if code is None else code >> 2

    def queued(self) -> Iterator[Payment]:
        for p in self.live.values():
            if p.status == QUEUED:
                yield p

    def held(self) -> Iterator[Payment]:
        for p in self.live.values():
            if p.status == HELD:
                yield p

    def available(self, member: str, currency: str) -> int:
        return self.ledger.available((member, currency))

    def valid_rates(self, time_ms: int) -> list[Rate]:
        return [r for r in self.rates.values() if r.expires_ms > time_ms]

    def supply(self, currency: str) -> int:
        net = self.net()
        return -self.ledger.balance((net.currencies[currency].agent, currency))

    def net(self) -> Network:
        if self.network is None:
            raise EngineError("the network is not initialised (run `setara init`)")
        return self.network

    # ------------------------------------------------------------------ apply
    def apply(self, cmd: Command) -> list[Event]:
        """Apply one command; return its events. Refused commands raise EngineError and change
        nothing."""
        if cmd.time_ms < self.time_ms:
            raise EngineError(f"time goes backwards: {cmd.time_ms} ms after {self.time_ms} ms")
        self._out = []
        # Payments that settle as a knock-on of this command settle at its time.
        self.time_ms = cmd.time_ms
        match cmd:
            case Submit():
                self._submit(cmd)
            case Fund():
                self._fund(cmd)
            case Cancel():
                self._cancel(cmd)
            case Review():
                self._review(cmd)
            case SettleSet():
                self._settle_set(cmd)
            case CloseCycle():
                close_cycle(self, cmd)
            case Hold():
                self._hold(cmd)
            case Freeze():
                self._freeze(cmd)
            case PostRate():
                post_rate(self, cmd)
            case DayClose():
                self._day_close(cmd)
            case DayOpen():
                self._day_open(cmd)
            case SetSuspended():
                self._set_suspended(cmd)
            case ChangeNetwork():
                self._change_network(cmd)
            case Init():
                self._init(cmd)
            case EpochStart():
                self._epoch_start(cmd)
            case _:
                assert_never(cmd)
        if type(cmd) is not Submit:
            # Any other command may change what bulk.fast_limit depends on.
            self.fast.clear()
        self.applied += 1
        return self._out

    def emit(self, event: Event) -> None:
        """Add an event to the current command's output (for the engine's concern modules)."""
        self._out.append(event)

    def emit_all(self, events: Iterable[Event]) -> None:
        self._out.extend(events)

    # ------------------------------------------------------------------ network
    def _init(self, cmd: Init) -> None:
        if self.network is not None:
            raise EngineError("network already initialised")
        net = Network.from_config(cmd.network)
        self.network = net
        for c in net.currencies.values():
            self.ledger.open((c.agent, c.code), None)
        openings: list[tuple[str, list[Leg]]] = []
        for a in net.accounts.values():
            self._open_account(a)
            if a.opening_minor:
                agent = net.currencies[a.currency].agent
                openings.append((f"open:{a.member}:{a.currency}",
                                 [Leg(a.currency, agent, a.member, a.opening_minor)]))
        if openings:
            self._out.extend(self.ledger.post(openings))
        self.business_day = 1
        self._out.append(Notice("network_initialised", {"members": len(net.members)}))

    def _open_account(self, a: NetAccount) -> None:
        self.ledger.open((a.member, a.currency), -a.credit_line_minor)

    def _change_network(self, cmd: ChangeNetwork) -> None:
        net = self.net()
        for add in cmd.change.get("add_members", []):
            member = member_from_cfg(add["member"])
            if member.id in net.members:
                raise EngineError(f"member {member.id} already exists")
            accts = [account_from_cfg(a) for a in add["accounts"]]
            net = net.with_member(member, accts)
        for a in cmd.change.get("credit_lines", []):
            acct = account_from_cfg(a)
            if (acct.member, acct.currency) not in net.accounts:
                raise EngineError(f"no account {acct.member}/{acct.currency}")
            old = net.accounts[(acct.member, acct.currency)]
            net = net.with_account(NetAccount(old.member, old.currency, old.opening_minor,
                                              acct.credit_line_minor, acct.net_debit_cap_minor))
        # Lowering a credit line below what is already used would break the floor invariant.
        for a in cmd.change.get("credit_lines", []):
            key = (a["member"], a["currency"])
            if self.ledger.balance(key) - self.ledger.reserved.get(key, 0) < -a["credit_line_minor"]:
                raise EngineError(f"{key[0]}/{key[1]}: balance already below the new floor")
        openings: list[tuple[str, list[Leg]]] = []
        for add in cmd.change.get("add_members", []):
            for a in add["accounts"]:
                acct = account_from_cfg(a)
                self._open_account(acct)
                if acct.opening_minor:
                    agent = net.currencies[acct.currency].agent
                    openings.append((f"open:{acct.member}:{acct.currency}",
                                     [Leg(acct.currency, agent, acct.member, acct.opening_minor)]))
        for a in cmd.change.get("credit_lines", []):
            self.ledger.set_floor((a["member"], a["currency"]), -a["credit_line_minor"])
        if cmd.change.get("nodes"):
            net = net.with_nodes(cmd.change["nodes"])
        self.network = net
        if openings:
            self._out.extend(self.ledger.post(openings))
        for a in cmd.change.get("credit_lines", []):
            self._liquidity_in(a["member"], a["currency"])
        self.drain()
        self._out.append(Notice("network_changed", {
            "added": [x["member"]["id"] for x in cmd.change.get("add_members", [])],
            "credit_lines": [[a["member"], a["currency"]] for a in cmd.change.get("credit_lines", [])],
            **({"nodes": [n["name"] for n in cmd.change["nodes"]]} if cmd.change.get("nodes") else {}),
        }))

    def _epoch_start(self, cmd: EpochStart) -> None:
        """A sequencer took over (its lease's revision is the epoch): settlement state does not
        change; the log records who writes from here, and replay voids later blocks of an older
        epoch (checked by the node, which sees the signed headers)."""
        net = self.net()
        node = net.nodes.get(cmd.sequencer)
        if node is None or not node.sequencer:
            raise EngineError(f"{cmd.sequencer} is not a registered sequencer")
        self._out.append(Notice("epoch_started", {"epoch": cmd.epoch, "sequencer": cmd.sequencer}))

    def _set_suspended(self, cmd: SetSuspended) -> None:
        net = self.net()
        if cmd.member not in net.members:
            raise EngineError(f"unknown member {cmd.member!r}")
        self.network = net.with_suspended(cmd.member, cmd.suspended)
        self._out.append(Notice("member_suspended" if cmd.suspended else "member_resumed",
                                {"member": cmd.member}))

    def _fund(self, cmd: Fund) -> None:
        net = self.net()
        if cmd.id in self.funds:
            raise EngineError(f"funding id {cmd.id} already used")
        if cmd.currency not in net.currencies:
            raise EngineError(f"currency {cmd.currency} is not in the network")
        if not self.ledger.has((cmd.member, cmd.currency)):
            raise EngineError(f"{cmd.member} has no {cmd.currency} account")
        if cmd.amount_minor <= 0:
            raise EngineError("amount must be > 0")
        agent = net.currencies[cmd.currency].agent
        leg = (Leg(cmd.currency, cmd.member, agent, cmd.amount_minor) if cmd.withdraw
               else Leg(cmd.currency, agent, cmd.member, cmd.amount_minor))
        try:
            self._out.extend(self.ledger.post([(cmd.id, [leg])]))
        except InsufficientFunds as e:
            raise EngineError(f"{cmd.member} has only {self.ledger.available((cmd.member, cmd.currency))}"
                              f" {cmd.currency} minor units available to withdraw") from e
        self.funds.add(cmd.id)
        if not cmd.withdraw:
            self._liquidity_in(cmd.member, cmd.currency)
            self.drain()

    # ------------------------------------------------------------------ payments
    def _reject(self, cmd: Submit, code: str, reason: str) -> None:
        self._end(cmd.id, cmd.fingerprint, REJECTED, code, reason, cmd.time_ms)

    def _end(self, pid: str, fp: int, status: str, code: str, reason: str, time_ms: int) -> None:
        """A payment ends without settling (REJECTED or CANCELLED)."""
        self.final[pid] = fp << 2 | FINAL_CODES[status]
        self.reasons[pid] = [code, reason]
        self._out.append(StatusEvent(pid, status, code, reason, time_ms))

    def static_refusal(self, debtor: str, creditor: str, currency: str) -> tuple[str, str] | None:
        """Why a payment between these members in this currency is refused whatever its amount,
        or None. Depends only on state that Submit never changes (membership, suspension,
        freezes, accounts), which is what lets bulk.settle_run cache it between other commands."""
        net = self.network
        if net is None:
            raise EngineError("the network is not initialised (run `setara init`)")
        members = net.members
        d = members.get(debtor)
        if d is None:
            return ("RC01", f"debtor {debtor} is not a member")
        c = members.get(creditor)
        if c is None:
            return ("RC01", f"creditor {creditor} is not a member")
        if debtor == creditor:
            return ("AG01", "debtor and creditor are the same member")
        if d.suspended:
            return ("AG01", f"debtor {debtor} is suspended")
        if c.suspended:
            return ("AG01", f"creditor {creditor} is suspended")
        frozen = self.frozen
        if frozen and (debtor in frozen or creditor in frozen):
            who = debtor if debtor in frozen else creditor
            return ("RR04", f"regulatory: assets of {who} are frozen ({frozen[who]})")
        if currency not in net.currencies:
            return ("AM03", f"currency {currency} is not in the network")
        if (debtor, currency) not in self.ledger.balances:
            return ("AC01", f"debtor {debtor} has no {currency} account")
        return None

    def amount_limit(self, currency: str) -> int:
        ccy = self.net().currencies[currency]
        return ccy.max_amount_minor if ccy.max_amount_minor is not None else self.supply(currency)

    def _submit(self, cmd: Submit) -> None:
        net = self.net()
        pid, debtor, creditor, currency = cmd.id, cmd.debtor, cmd.creditor, cmd.currency
        if pid in self.final or pid in self.live:
            # The shell answers duplicates before logging; a replayed log never repeats an id.
            raise EngineError(f"payment {pid} already exists")
        why = self.static_refusal(debtor, creditor, currency)
        if why is not None:
            return self._reject(cmd, *why)
        ccy = net.currencies[currency]
        balances = self.ledger.balances
        amount = cmd.amount_minor
        if amount <= 0:
            return self._reject(cmd, "AM12", "amount must be greater than zero")
        if amount > self.amount_limit(currency):
            return self._reject(cmd, "AM12", f"amount exceeds the {currency} maximum")
        to_currency = cmd.to_currency
        if (creditor, to_currency or currency) not in balances:
            return self._reject(cmd, "AC01", f"creditor {creditor} has no {to_currency or currency} account")
        screening = cmd.screening
        if to_currency is None and screening == "clear" and self.day_open and ccy.settlement == "rtgs":
            # Settles at once unless a queue of the debtor's comes first or liquidity is short.
            q = self.queues.get((debtor, currency))
            if not q or not q.blocks(cmd.priority):
                posting = self.ledger.post_one(pid, currency, debtor, creditor, amount)
                if posting is not None:
                    self.final[pid] = cmd.fingerprint << 2  # | SETTLED (0)
                    out = self._out
                    out.append(StatusEvent(pid, SETTLED, None, None, cmd.time_ms))
                    out.append(posting)
                    key = (creditor, currency)
                    if key in self.queues or key in self.pvp_waiting:
                        self._work.append(key)
                        self.drain()
                    return None
        if screening == "block":
            return self._reject(cmd, "RR04", f"regulatory: sanctions screening ({cmd.screening_ref})")
        self.order += 1
        p = Payment(cmd.id, cmd.debtor, cmd.creditor, cmd.currency, cmd.amount_minor, cmd.priority,
                    self.order, cmd.fingerprint, QUEUED, cmd.time_ms)
        if cmd.to_currency is not None and cmd.to_currency != cmd.currency:
            err = convert(self, p, cmd)
            if err is not None:
                self.order -= 1
                return self._reject(cmd, err[0], err[1])
        if cmd.screening == "review":
            p.status = HELD
            self.live[p.id] = p
            # Earmark the funds while compliance reviews, so a release settles at once.
            if not self._queue_of(p).blocks(p.priority):
                self.ledger.reserve(p.id, (p.debtor, p.currency), p.amount_minor)
            self._out.append(StatusEvent(p.id, HELD, "RR04", f"screening review ({cmd.screening_ref})",
                                         cmd.time_ms))
            return None
        self._enter(p, cmd.time_ms)
        return None

    def _queue_of(self, p: Payment) -> Queue:
        key = (p.debtor, p.currency)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = Queue()
        return q

    def _enter(self, p: Payment, time_ms: int) -> None:
        """A payment released into settlement: settle now, offset, or queue."""
        cycle = self._cycle_of(p)
        if cycle is not None:
            # Deferred net settlement: wait for the currency's next cycle close.
            p.status, p.cycle = QUEUED, cycle
            self.live[p.id] = p
            self.cycle_pending.setdefault(cycle, {})[p.id] = None
            self._out.append(StatusEvent(p.id, QUEUED, None, None, time_ms))
            return
        queue = self._queue_of(p)
        if self.day_open and not queue.blocks(p.priority):
            if self._try_settle(p, time_ms):
                self.drain()
                return
            if self.net().lsm.on_entry == "bilateral" and self._offset(p, time_ms):
                self.drain()
                return
        p.status = QUEUED
        self.live[p.id] = p
        queue.add(p.id, p.priority)
        if p.provider is not None and p.to_currency is not None:
            self.pvp_waiting.setdefault((p.provider, p.to_currency), {})[p.id] = None
        self._out.append(StatusEvent(p.id, QUEUED, None, None, time_ms))

    def _try_settle(self, p: Payment, time_ms: int) -> bool:
        if p.provider is None:
            posting = self.ledger.post_one(p.id, p.currency, p.debtor, p.creditor, p.amount_minor)
            if posting is None:
                return False
            self.finish(p, time_ms)
            self._out.append(posting)
            return True
        try:
            postings = self.ledger.post([(p.id, p.legs())])
        except InsufficientFunds:
            return False
        self.finish(p, time_ms)
        self._out.extend(postings)
        return True

    def finish(self, p: Payment, time_ms: int) -> None:
        """A payment settled: it becomes final, and liquidity it brought may release others."""
        if p.id in self.final:
            raise InvariantViolation(f"payment {p.id} would settle twice")
        self.live.pop(p.id, None)
        self.final[p.id] = p.fingerprint << 2 | FINAL_CODES[SETTLED]
        self._out.append(StatusEvent(p.id, SETTLED, None, None, time_ms))
        if p.provider is not None and p.to_currency is not None:
            self._liquidity_in(p.provider, p.currency)
            self._liquidity_in(p.creditor, p.to_currency)
        else:
            self._liquidity_in(p.creditor, p.currency)

    def _liquidity_in(self, member: str, currency: str) -> None:
        key = (member, currency)
        if key in self.queues or key in self.pvp_waiting:
            self._work.append(key)

    def _offset(self, p: Payment, time_ms: int) -> bool:
        """Bilateral offsetting on entry: settle `p` together with payments queued the other way
        (creditor to debtor, same currency, queue order) when both sides then stay above floor."""
        if p.provider is not None:
            return False
        back = self.queues.get((p.creditor, p.currency))
        if not back:
            return False
        need = p.amount_minor - self.ledger.available((p.debtor, p.currency))
        chosen: list[Payment] = []
        got = 0
        for pid in back.ordered():
            q = self.live[pid]
            if q.creditor != p.debtor or q.provider is not None:
                continue
            chosen.append(q)
            got += q.amount_minor
            if got >= need:
                break
        if got < need:
            return False
        batch = [(p.id, p.legs())] + [(q.id, q.legs()) for q in chosen]
        try:
            postings = self.ledger.post(batch)
        except InsufficientFunds:
            return False
        for q in chosen:
            back.remove(q.id)
            self.finish(q, time_ms)
        self.finish(p, time_ms)
        self._out.extend(postings)
        self._out.append(Notice("offset", {"payments": [p.id] + [q.id for q in chosen],
                                           "algorithm": "bilateral-on-entry"}))
        return True

    def drain(self) -> None:
        """Retry queues of accounts that received liquidity, until nothing more settles."""
        if not self.day_open:
            self._work.clear()
            return
        work = self._work
        while work:
            key = work.popleft()
            waiting = self.pvp_waiting.get(key)
            if waiting:
                for pid in list(waiting):
                    p = self.live.get(pid)
                    if p is not None:
                        self._retry_queue((p.debtor, p.currency))
            self._retry_queue(key)

    def _retry_queue(self, key: tuple[str, str]) -> None:
        queue = self.queues.get(key)
        if not queue:
            return
        for bucket in (queue.urgent, queue.normal):
            for pid in list(bucket):
                p = self.live[pid]
                if not self._try_settle(p, self.time_ms):
                    return
                del bucket[pid]
                self._unwatch(p)

    def _unwatch(self, p: Payment) -> None:
        if p.provider is not None and p.to_currency is not None:
            w = self.pvp_waiting.get((p.provider, p.to_currency))
            if w is not None:
                w.pop(p.id, None)
                if not w:
                    del self.pvp_waiting[(p.provider, p.to_currency)]

    def _cancel(self, cmd: Cancel) -> None:
        p = self.live.get(cmd.id)
        if p is None:
            st = self.status(cmd.id)
            raise EngineError(f"payment {cmd.id} is {st}; only QUEUED or HELD payments can be cancelled"
                              if st else f"unknown payment {cmd.id}")
        self._remove_live(p)
        self._end(p.id, p.fingerprint, CANCELLED, "CUST", "cancelled on request", cmd.time_ms)

    def _remove_live(self, p: Payment) -> None:
        del self.live[p.id]
        if p.status == QUEUED:
            if p.cycle is not None:
                self.cycle_pending[p.cycle].pop(p.id, None)
            else:
                self._queue_of(p).remove(p.id)
                self._unwatch(p)
        self.ledger.void(p.id)

    def _cycle_of(self, p: Payment) -> str | None:
        cur = self.net().currencies
        if cur[p.currency].settlement == "cycles":
            return p.currency
        if p.to_currency is not None and cur[p.to_currency].settlement == "cycles":
            return p.to_currency
        return None

    def _hold(self, cmd: Hold) -> None:
        p = self.live.get(cmd.id)
        if p is None or p.status != QUEUED:
            raise EngineError(f"payment {cmd.id} is not QUEUED")
        self._remove_live(p)
        p.status, p.cycle = HELD, None
        self.live[p.id] = p
        self._out.append(StatusEvent(p.id, HELD, "RR04", f"screening review: {cmd.reason}", cmd.time_ms))

    def _freeze(self, cmd: Freeze) -> None:
        net = self.net()
        if cmd.member not in net.members:
            raise EngineError(f"unknown member {cmd.member!r}")
        if not cmd.frozen:
            if self.frozen.pop(cmd.member, None) is None:
                raise EngineError(f"{cmd.member} is not frozen")
            self._out.append(Notice("member_unfrozen", {"member": cmd.member, "reason": cmd.reason}))
            return
        self.frozen[cmd.member] = cmd.reason
        held = []
        for p in [p for p in self.live.values() if p.status == QUEUED]:
            if cmd.member in (p.debtor, p.creditor, p.provider):
                self._remove_live(p)
                p.status, p.cycle = HELD, None
                self.live[p.id] = p
                held.append(p.id)
                self._out.append(StatusEvent(p.id, HELD, "RR04", f"assets of {cmd.member} frozen: {cmd.reason}",
                                             cmd.time_ms))
        self._out.append(Notice("member_frozen", {"member": cmd.member, "reason": cmd.reason, "held": held}))

    def _review(self, cmd: Review) -> None:
        p = self.live.get(cmd.id)
        if p is None or p.status != HELD:
            raise EngineError(f"payment {cmd.id} is not HELD")
        self._out.append(Notice("review", {"payment_id": p.id, "release": cmd.release,
                                           "officer": cmd.officer, "note": cmd.note}))
        if not cmd.release:
            self._remove_live(p)
            self._end(p.id, p.fingerprint, REJECTED, "RR04", f"rejected by compliance ({cmd.officer}): {cmd.note}",
                      cmd.time_ms)
            return
        blocked = [m for m in (p.debtor, p.creditor, p.provider) if m is not None and m in self.frozen]
        if blocked:
            raise EngineError(f"assets of {blocked[0]} are frozen: lift the freeze before releasing")
        del self.live[p.id]
        if self.ledger.is_reserved(p.id) and self.day_open and self._try_settle(p, cmd.time_ms):
            self.drain()
            return
        self.ledger.void(p.id)
        self._enter(p, cmd.time_ms)

    def _settle_set(self, cmd: SettleSet) -> None:
        if len(cmd.ids) > SETTLE_SET_MAX:
            raise EngineError(f"settle set larger than {SETTLE_SET_MAX}")
        if not self.day_open:
            raise EngineError("the business day is closed")
        seen: set[str] = set()
        chosen: list[Payment] = []
        for pid in cmd.ids:
            p = self.live.get(pid)
            if p is None or p.status != QUEUED or pid in seen:
                raise EngineError(f"payment {pid} is not a distinct QUEUED payment")
            seen.add(pid)
            chosen.append(p)
        try:
            postings = self.ledger.post([(p.id, p.legs()) for p in chosen])
        except InsufficientFunds as e:
            raise EngineError(f"settle set infeasible: {e}") from e
        for p in chosen:
            self._queue_of(p).remove(p.id)
            self._unwatch(p)
            self.finish(p, cmd.time_ms)
        self._out.extend(postings)
        self._out.append(Notice("liquidity_saving", {"algorithm": cmd.algorithm, "settled": len(chosen),
                                                     "value": sum(p.amount_minor for p in chosen)}))
        self.drain()

    # ------------------------------------------------------------------ the day
    def _day_close(self, cmd: DayClose) -> None:
        if not self.day_open:
            raise EngineError("the business day is already closed")
        rejected = 0
        for p in [p for p in self.live.values() if p.status == QUEUED]:
            self._remove_live(p)
            self._end(p.id, p.fingerprint, REJECTED, "TM01", "cut-off: unsettled at day close", cmd.time_ms)
            rejected += 1
        self.day_open = False
        purge_expired_quotes(self.quotes, cmd.time_ms)
        if len(self.reasons) > REASONS_MAX:
            for pid in list(itertools.islice(self.reasons, len(self.reasons) - REASONS_MAX)):
                del self.reasons[pid]
        self._out.append(Notice("day_closed", {"business_day": self.business_day, "rejected": rejected}))

    def _day_open(self, cmd: DayOpen) -> None:
        if self.day_open:
            raise EngineError("the business day is already open")
        self.day_open = True
        self.business_day += 1
        for key in list(self.queues):
            self._work.append(key)
        self.drain()
        self._out.append(Notice("day_opened", {"business_day": self.business_day}))

    # ------------------------------------------------------------------ invariants & state
    def check(self) -> None:
        """Assert every invariant; raises ledger.InvariantViolation."""
        self.ledger.check()
        if not self.final.keys().isdisjoint(self.live):
            pid = next(p for p in self.live if p in self.final)
            raise InvariantViolation(f"payment {pid} is both live and final")

    def to_state(self) -> dict[str, Any]:
        from setara.core.snapshot import to_state

        return to_state(self)

    @staticmethod
    def from_state(state: dict[str, Any]) -> Engine:
        from setara.core.snapshot import from_state

        return from_state(state)

    def state_bytes(self) -> bytes:
        return orjson.dumps(self.to_state())

    def state_hash(self) -> str:
        return hashlib.sha256(self.state_bytes()).hexdigest()
