"""The settlement engine: a deterministic state machine, commands in, events out.

No clock, randomness or I/O lives here: every command carries its time, and the same log of
commands gives the same events and the same state hash on every machine. Production, replay,
verification and simulation all run this one class; storage and interfaces are shells around it.

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
"""

from __future__ import annotations

import hashlib
import operator
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any

import orjson

from setara.ledger import InsufficientFunds, InvariantViolation, Ledger, Leg, Posting
from setara.network import Account as NetAccount
from setara.network import Network, account_from_cfg, member_from_cfg

__all__ = [
    "CANCELLED",
    "COMMANDS",
    "HELD",
    "QUEUED",
    "REJECTED",
    "SETTLED",
    "SUBMIT_FIELDS",
    "CloseCycle",
    "Command",
    "Engine",
    "EngineError",
    "Freeze",
    "Hold",
    "Notice",
    "Payment",
    "StatusEvent",
    "apply_logged",
    "column",
    "command_from_dict",
    "command_kind",
    "log_commands",
    "submits_rows",
]

SETTLED, QUEUED, HELD, REJECTED, CANCELLED = "SETTLED", "QUEUED", "HELD", "REJECTED", "CANCELLED"
_FINAL_CODES = {SETTLED: 0, REJECTED: 1, CANCELLED: 2}
_FINAL_NAMES = {v: k for k, v in _FINAL_CODES.items()}
URGENT, NORMAL = 0, 1
SETTLE_SET_MAX = 2_000_000
SETTLE_WINDOW_FIRST = 4  # rows settle_run looks at first; it doubles while they all settle
RATE_TTL_DEFAULT_MS = 24 * 3600 * 1000


class EngineError(ValueError):
    """A command the engine refuses as a whole (nothing changed)."""


# ====================================================================== commands


@dataclass(slots=True)
class Init:
    network: dict[str, Any]
    time_ms: int


@dataclass(slots=True)
class ChangeNetwork:
    change: dict[str, Any]
    time_ms: int


@dataclass(slots=True)
class SetSuspended:
    member: str
    suspended: bool
    time_ms: int


@dataclass(slots=True)
class Fund:
    """The settlement agent issues (or, withdraw=True, drains) central bank money."""

    id: str
    member: str
    currency: str
    amount_minor: int
    withdraw: bool
    time_ms: int


@dataclass(slots=True)
class Submit:
    id: str
    debtor: str
    creditor: str
    currency: str
    amount_minor: int
    priority: int
    fingerprint: int  # 60-bit digest of the whole instruction, party data included
    parties_digest: str  # keyed digest of party names/addresses; the names stay off the log
    screening: str  # "clear" | "review" | "block" (decided by the shell before submission)
    screening_ref: str
    time_ms: int
    to_currency: str | None = None
    quote_id: str | None = None
    uetr: str | None = None

    def as_row(self) -> list[Any]:
        return [self.id, self.debtor, self.creditor, self.currency, self.amount_minor, self.priority,
                self.fingerprint, self.parties_digest, self.screening, self.screening_ref, self.time_ms,
                self.to_currency, self.quote_id, self.uetr]


@dataclass(slots=True)
class Cancel:
    id: str
    time_ms: int


@dataclass(slots=True)
class Review:
    """A compliance officer's decision on a HELD payment."""

    id: str
    release: bool
    officer: str
    note: str
    time_ms: int


@dataclass(slots=True)
class DayClose:
    time_ms: int


@dataclass(slots=True)
class DayOpen:
    time_ms: int


@dataclass(slots=True)
class PostRate:
    provider: str
    base: str
    quote: str
    rate: str  # decimal string: units of `quote` per unit of `base`
    expires_ms: int
    time_ms: int
    quote_id: str | None = None  # set: a locked quote only instructions naming it may use


@dataclass(slots=True)
class SettleSet:
    """Settle a chosen set of queued payments in one atomic step (liquidity saving)."""

    ids: tuple[str, ...]
    algorithm: str
    time_ms: int


@dataclass(slots=True)
class Freeze:
    """Asset freeze (a member became designated) or its lifting."""

    member: str
    frozen: bool
    reason: str
    time_ms: int


@dataclass(slots=True)
class Hold:
    """Put a queued payment on compliance hold (e.g. a list update now hits one of its parties)."""

    id: str
    reason: str
    time_ms: int


@dataclass(slots=True)
class CloseCycle:
    """Close the current deferred-net cycle of a currency: net, unwind who cannot cover, settle."""

    currency: str
    time_ms: int


Command = (Init | ChangeNetwork | SetSuspended | Fund | Submit | Cancel | Review | DayClose | DayOpen
           | PostRate | SettleSet | CloseCycle | Freeze | Hold)
COMMANDS: dict[str, type[Any]] = {
    "init": Init, "network": ChangeNetwork, "suspend": SetSuspended, "fund": Fund, "submit": Submit,
    "cancel": Cancel, "review": Review, "day_close": DayClose, "day_open": DayOpen, "rate": PostRate,
    "settle_set": SettleSet, "close_cycle": CloseCycle, "freeze": Freeze, "hold": Hold,
}
_KIND = {cls: k for k, cls in COMMANDS.items()}


def command_kind(cmd: Command) -> str:
    return _KIND[type(cmd)]


def command_from_dict(kind: str, data: dict[str, Any] | list[Any]) -> Command:
    """Rebuild a logged command (the log stores `[kind, fields]`, fields by name, or by position
    for submissions)."""
    cls = COMMANDS.get(kind)
    if cls is None:
        raise EngineError(f"unknown command kind {kind!r}")
    if isinstance(data, list):
        if cls is not Submit:
            raise EngineError(f"command {kind!r} cannot be positional")
        return Submit(*data)
    if not isinstance(data, dict):
        raise EngineError(f"command {kind!r} is malformed")
    if cls is SettleSet:
        data["ids"] = tuple(data["ids"])
    cmd: Command = cls(**data)
    return cmd


SUBMIT_FIELDS = ("id", "debtor", "creditor", "currency", "amount_minor", "priority", "fingerprint",
                 "parties_digest", "screening", "screening_ref", "time_ms", "to_currency", "quote_id", "uetr")
SUBMITS_MAX = 50_000


def column(value: Any, start: int, end: int) -> Sequence[Any]:
    """Rows start..end of one field of a batch of submissions: a batch stores a field either as a
    list, one value per payment, or as one value that every payment shares."""
    return value[start:end] if isinstance(value, list) else [value] * (end - start)


def _first_repeat(ids: Sequence[str], *known: dict[str, Any]) -> int:
    """Index of the first id already in `known` or earlier in `ids` (len(ids) if none)."""
    seen: set[str] = set()
    for i, pid in enumerate(ids):
        if pid in seen or any(pid in k for k in known):
            return i
        seen.add(pid)
    return len(ids)


def submits_rows(batch: dict[str, Any]) -> list[list[Any]]:
    """The Submit rows (see Submit.as_row) of a logged batch `["submits", {field: column}]`. One
    such log entry stands for as many commands as it has rows."""
    try:
        n = len(batch["id"])
        if not isinstance(batch["id"], list) or n > SUBMITS_MAX:
            raise EngineError("a batch of submissions needs a list of at most "
                              f"{SUBMITS_MAX} ids")
        cols = [column(batch[f], 0, n) for f in SUBMIT_FIELDS]
    except (KeyError, TypeError) as e:
        raise EngineError(f"a batch of submissions is malformed ({e})") from None
    if any(len(c) != n for c in cols):
        raise EngineError("a batch of submissions has columns of different lengths")
    return [list(r) for r in zip(*cols, strict=True)]


def apply_logged(engine: Engine, entries: Iterable[Sequence[Any]]) -> None:
    """Apply a block's log entries, as when a node loads: batches of submissions go through
    `settle_run` (to the same state as `apply`, which `verify` uses instead)."""
    for kind, body in entries:
        if kind != "submits":
            engine.apply(command_from_dict(kind, body))
            continue
        for _, _, row in engine.settle_batch(body):
            if row is not None:
                engine.apply(Submit(*row))


def log_commands(entries: Iterable[Sequence[Any]]) -> Iterator[tuple[int, Command]]:
    """The commands of a block's log, with the index of the entry each came from."""
    for n, (kind, body) in enumerate(entries):
        if kind == "submits":
            for row in submits_rows(body):
                yield n, Submit(*row)
        else:
            yield n, command_from_dict(kind, body)


# ====================================================================== events


@dataclass(slots=True)
class StatusEvent:
    payment_id: str
    status: str
    reason_code: str | None
    reason: str | None
    time_ms: int


@dataclass(slots=True)
class Notice:
    kind: str
    data: dict[str, Any]


Event = StatusEvent | Posting | Notice


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
        assert self.to_currency is not None
        return [
            Leg(self.currency, self.debtor, self.provider, self.amount_minor, self.rate),
            Leg(self.to_currency, self.provider, self.creditor, self.credit_minor, self.rate),
        ]


# asdict() copies deeply and costs ~20x this; a snapshot may hold a million queued payments.
_PAYMENT_FIELDS = tuple(f.name for f in fields(Payment))
_payment_values = operator.attrgetter(*_PAYMENT_FIELDS)


@dataclass(slots=True)
class Rate:
    provider: str
    base: str
    quote: str
    text: str
    value: Fraction
    expires_ms: int
    posted_ms: int


@dataclass(slots=True)
class _Queue:
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
        self.queues: dict[tuple[str, str], _Queue] = {}
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
        self._out: list[Event] = []
        self._now = 0
        self._work: deque[tuple[str, str]] = deque()
        self._fast: dict[tuple[str, str, str], int] = {}

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
        net = self._net()
        return -self.ledger.balance((net.currencies[currency].agent, currency))

    def _net(self) -> Network:
        if self.network is None:
            raise EngineError("the network is not initialised (run `setara init`)")
        return self.network

    # ------------------------------------------------------------------ apply
    def apply(self, cmd: Command) -> list[Event]:
        """Apply one command; return its events. Refused commands raise EngineError and change
        nothing."""
        self._out = []
        # Payments that settle as a knock-on of this command settle at its time.
        self._now = cmd.time_ms
        if isinstance(cmd, Submit):
            self._submit(cmd)
        else:
            # Any other command may change what `_fast_limit` depends on.
            self._fast.clear()
            self._apply_other(cmd)
        self.applied += 1
        return self._out

    def _apply_other(self, cmd: Command) -> None:
        if isinstance(cmd, Fund):
            self._fund(cmd)
        elif isinstance(cmd, Cancel):
            self._cancel(cmd)
        elif isinstance(cmd, Review):
            self._review(cmd)
        elif isinstance(cmd, SettleSet):
            self._settle_set(cmd)
        elif isinstance(cmd, CloseCycle):
            self._close_cycle(cmd)
        elif isinstance(cmd, Hold):
            self._hold(cmd)
        elif isinstance(cmd, Freeze):
            self._freeze(cmd)
        elif isinstance(cmd, PostRate):
            self._post_rate(cmd)
        elif isinstance(cmd, DayClose):
            self._day_close(cmd)
        elif isinstance(cmd, DayOpen):
            self._day_open(cmd)
        elif isinstance(cmd, SetSuspended):
            self._set_suspended(cmd)
        elif isinstance(cmd, ChangeNetwork):
            self._change_network(cmd)
        elif isinstance(cmd, Init):
            self._init(cmd)
        else:  # pragma: no cover - the Command union is closed
            raise EngineError(f"unknown command {cmd!r}")

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
        net = self._net()
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
        self.network = net
        if openings:
            self._out.extend(self.ledger.post(openings))
        for a in cmd.change.get("credit_lines", []):
            self._liquidity_in(a["member"], a["currency"])
        self._drain()
        self._out.append(Notice("network_changed", {
            "added": [x["member"]["id"] for x in cmd.change.get("add_members", [])],
            "credit_lines": [[a["member"], a["currency"]] for a in cmd.change.get("credit_lines", [])],
        }))

    def _set_suspended(self, cmd: SetSuspended) -> None:
        net = self._net()
        if cmd.member not in net.members:
            raise EngineError(f"unknown member {cmd.member!r}")
        self.network = net.with_suspended(cmd.member, cmd.suspended)
        self._out.append(Notice("member_suspended" if cmd.suspended else "member_resumed",
                                {"member": cmd.member}))

    def _fund(self, cmd: Fund) -> None:
        net = self._net()
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
            self._drain()

    # ------------------------------------------------------------------ payments
    def _reject(self, cmd: Submit, code: str, reason: str) -> None:
        self._end(cmd.id, cmd.fingerprint, REJECTED, code, reason, cmd.time_ms)

    def _end(self, pid: str, fp: int, status: str, code: str, reason: str, time_ms: int) -> None:
        """A payment ends without settling (REJECTED or CANCELLED)."""
        self.final[pid] = fp << 2 | _FINAL_CODES[status]
        self.reasons[pid] = [code, reason]
        self._out.append(StatusEvent(pid, status, code, reason, time_ms))

    def _static_refusal(self, debtor: str, creditor: str, currency: str) -> tuple[str, str] | None:
        """Why a payment between these members in this currency is refused whatever its amount,
        or None. Depends only on state that Submit never changes (membership, suspension,
        freezes, accounts), which is what lets `settle_run` cache it between other commands."""
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

    def _amount_limit(self, currency: str) -> int:
        ccy = self._net().currencies[currency]
        return ccy.max_amount_minor if ccy.max_amount_minor is not None else self.supply(currency)

    def _fast_limit(self, debtor: str, creditor: str, currency: str) -> int:
        """The largest amount a same-currency payment of this pair may settle at once by the fast
        rule, or -1 where the pair never qualifies (refused, or settled in cycles, or the day is
        closed). Cached until the next command that is not a Submit."""
        key = (debtor, creditor, currency)
        limit = -1
        if self._static_refusal(debtor, creditor, currency) is None and self.day_open \
                and self._net().currencies[currency].settlement == "rtgs" \
                and (creditor, currency) in self.ledger.balances:
            limit = self._amount_limit(currency)
        self._fast[key] = limit
        return limit

    def settle_run(self, batch: dict[str, Any], start: int) -> int:
        """The common case in bulk: from row `start` of a batch of submissions (see `submits_rows`),
        settle the longest run of payments that each settle at once and release no queued payment,
        without building commands or events. Returns the run's length; 0 when row `start` is not
        that case and nothing changed (then apply it as a Submit).

        Settling a run here and applying its rows one by one through `apply` give the same state;
        verify replays every logged batch through `apply` and compares.
        """
        if batch["screening"] != "clear" or batch["to_currency"] is not None:
            return 0
        # In windows of doubling size: a run that stops early has cost little more than its
        # length, so a batch that keeps stopping (queues, repeats) stays linear, not quadratic.
        n, done, window = len(batch["id"]), 0, SETTLE_WINDOW_FIRST
        while start + done < n:
            end = min(n, start + done + window)
            k = self._settle_window(batch, start + done, end)
            done += k
            if start + done < end:
                break
            window *= 2
        self.applied += done
        return done

    def settle_batch(self, batch: dict[str, Any]) -> Iterator[tuple[int, int, list[Any] | None]]:
        """Walk a batch of submissions: yields (i, k, None) when `settle_run` settled rows i..i+k-1,
        and (i, 0, row) when row i is for the full path, which the caller applies (as a Submit, or
        through the shell's duplicate handling) before asking for the next."""
        rows: list[list[Any]] | None = None  # made once, if any row needs it
        i, n = 0, len(batch["id"])
        while i < n:
            k = self.settle_run(batch, i)
            if k:
                yield i, k, None
                i += k
            else:
                rows = rows or submits_rows(batch)
                yield i, 0, rows[i]
                i += 1

    def _settle_window(self, batch: dict[str, Any], start: int, end: int) -> int:
        ids = batch["id"][start:end]
        n = len(ids)
        final, live = self.final, self.live
        if not (final.keys().isdisjoint(ids) and live.keys().isdisjoint(ids) and len(set(ids)) == n):
            n = _first_repeat(ids, final, live)  # the full path answers a repeated id
            ids = ids[:n]
            end = start + n
        triples = list(zip(batch["debtor"][start:end], batch["creditor"][start:end],
                           column(batch["currency"], start, end), strict=True))
        # One entry per debtor/creditor/currency: the largest amount that settles at once by the
        # fast rule (-1: never), and the two accounts by position.
        accounts: dict[tuple[str, str], int] = {}
        entries: dict[tuple[str, str, str], tuple[int, int, int]] = {}
        queues, pvp = self.queues, self.pvp_waiting
        for t in dict.fromkeys(triples):  # in first-seen order: no set iteration in the engine
            debtor, creditor, currency = t
            limit = self._fast.get(t)
            if limit is None:
                limit = self._fast_limit(debtor, creditor, currency)
            debit, credit = (debtor, currency), (creditor, currency)
            # A payment behind a queue waits, and liquidity to an account with payments waiting
            # releases them: both are for the full path, which does it in order.
            if limit < 0 or queues.get(debit) or queues.get(credit) or pvp.get(credit):
                entries[t] = (-1, 0, 0)
            else:
                entries[t] = (limit, accounts.setdefault(debit, len(accounts)),
                              accounts.setdefault(credit, len(accounts)))
        k = self.ledger.move_run(list(accounts), [entries[t] for t in triples], batch["amount_minor"][start:end])
        if k:
            final.update(zip(ids[:k], [fp << 2 for fp in batch["fingerprint"][start:start + k]],  # | SETTLED
                             strict=True))
        return k

    def _submit(self, cmd: Submit) -> None:
        net = self._net()
        pid, debtor, creditor, currency = cmd.id, cmd.debtor, cmd.creditor, cmd.currency
        if pid in self.final or pid in self.live:
            # The shell answers duplicates before logging; a replayed log never repeats an id.
            raise EngineError(f"payment {pid} already exists")
        why = self._static_refusal(debtor, creditor, currency)
        if why is not None:
            return self._reject(cmd, *why)
        ccy = net.currencies[currency]
        balances = self.ledger.balances
        amount = cmd.amount_minor
        if amount <= 0:
            return self._reject(cmd, "AM12", "amount must be greater than zero")
        if amount > self._amount_limit(currency):
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
                        self._drain()
                    return None
        if screening == "block":
            return self._reject(cmd, "RR04", f"regulatory: sanctions screening ({cmd.screening_ref})")
        self.order += 1
        p = Payment(cmd.id, cmd.debtor, cmd.creditor, cmd.currency, cmd.amount_minor, cmd.priority,
                    self.order, cmd.fingerprint, QUEUED, cmd.time_ms)
        if cmd.to_currency is not None and cmd.to_currency != cmd.currency:
            err = self._convert(p, cmd)
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

    def _convert(self, p: Payment, cmd: Submit) -> tuple[str, str] | None:
        net = self._net()
        to = cmd.to_currency
        assert to is not None
        if to not in net.currencies:
            return ("AM03", f"currency {to} is not in the network")
        if cmd.quote_id is not None:
            q = self.quotes.get(cmd.quote_id)
            if q is None or q.expires_ms <= cmd.time_ms:
                return ("AG09", f"FX quote {cmd.quote_id} is unknown or expired")
            if (q.base, q.quote) != (p.currency, to):
                return ("AG09", f"FX quote {cmd.quote_id} is for {q.base}/{q.quote}")
            best: tuple[Fraction, str, str] | None = (q.value, q.provider, q.text)
        else:
            best = self._best_rate(p.currency, to, cmd.time_ms, exclude=(p.debtor, p.creditor))
        if best is None:
            return ("AG09", f"no valid FX rate for {p.currency}/{to}")
        value, provider, text = best
        u1 = net.currencies[p.currency].currency.minor_units
        u2 = net.currencies[to].currency.minor_units
        credit = _round_half_even(p.amount_minor * value * 10**u2 / 10**u1)
        if credit <= 0:
            return ("AM12", f"amount converts to less than one {to} minor unit")
        limit = net.currencies[to].max_amount_minor
        if credit > (limit if limit is not None else self.supply(to)):
            return ("AM12", f"converted amount exceeds the {to} maximum")
        p.to_currency, p.provider, p.credit_minor = to, provider, credit
        p.rate = f"{p.currency}/{to}={text}@{provider}"
        return None

    def _best_rate(self, base: str, quote: str, time_ms: int, exclude: tuple[str, ...]
                   ) -> tuple[Fraction, str, str] | None:
        """Best valid rate for the payer (most `quote` per `base`); ties go to the lower id so
        the choice is deterministic. A provider's B/A rate serves A->B at its reciprocal unless
        it posted A/B itself."""
        net = self._net()
        best: tuple[Fraction, str, str] | None = None
        for (prov, b, q), r in sorted(self.rates.items()):
            if r.expires_ms <= time_ms or prov in exclude:
                continue
            m = net.members.get(prov)
            if m is None or m.suspended or prov in self.frozen:
                continue
            if (b, q) == (base, quote):
                cand = (r.value, prov, r.text)
            elif (b, q) == (quote, base) and (prov, base, quote) not in self.rates:
                cand = (1 / r.value, prov, f"1/{r.text}")
            else:
                continue
            if best is None or cand[0] > best[0]:
                best = cand
        return best

    def _queue_of(self, p: Payment) -> _Queue:
        key = (p.debtor, p.currency)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = _Queue()
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
                self._drain()
                return
            if self._net().lsm.on_entry == "bilateral" and self._offset(p, time_ms):
                self._drain()
                return
        p.status = QUEUED
        self.live[p.id] = p
        queue.add(p.id, p.priority)
        if p.provider is not None:
            assert p.to_currency is not None
            self.pvp_waiting.setdefault((p.provider, p.to_currency), {})[p.id] = None
        self._out.append(StatusEvent(p.id, QUEUED, None, None, time_ms))

    def _try_settle(self, p: Payment, time_ms: int) -> bool:
        if p.provider is None:
            posting = self.ledger.post_one(p.id, p.currency, p.debtor, p.creditor, p.amount_minor)
            if posting is None:
                return False
            self._finish(p, time_ms)
            self._out.append(posting)
            return True
        try:
            postings = self.ledger.post([(p.id, p.legs())])
        except InsufficientFunds:
            return False
        self._finish(p, time_ms)
        self._out.extend(postings)
        return True

    def _finish(self, p: Payment, time_ms: int) -> None:
        assert p.id not in self.final, f"payment {p.id} would settle twice"
        self.live.pop(p.id, None)
        self.final[p.id] = p.fingerprint << 2 | _FINAL_CODES[SETTLED]
        self._out.append(StatusEvent(p.id, SETTLED, None, None, time_ms))
        if p.provider is not None:
            assert p.to_currency is not None
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
            self._finish(q, time_ms)
        self._finish(p, time_ms)
        self._out.extend(postings)
        self._out.append(Notice("offset", {"payments": [p.id] + [q.id for q in chosen],
                                           "algorithm": "bilateral-on-entry"}))
        return True

    def _drain(self) -> None:
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
                if not self._try_settle(p, self._now):
                    return
                del bucket[pid]
                self._unwatch(p)

    def _unwatch(self, p: Payment) -> None:
        if p.provider is not None:
            assert p.to_currency is not None
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
        cur = self._net().currencies
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
        net = self._net()
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

    def _close_cycle(self, cmd: CloseCycle) -> None:
        """Close one currency's cycle, or with currency "*" every cycled currency in one netting:
        cross-currency payments then net across both currencies instead of waiting in one."""
        net = self._net()
        if cmd.currency == "*":
            currencies = [c for c, cfg in net.currencies.items() if cfg.settlement == "cycles"]
            if not currencies:
                raise EngineError("no currency settles in cycles")
        else:
            cfg = net.currencies.get(cmd.currency)
            if cfg is None or cfg.settlement != "cycles":
                raise EngineError(f"currency {cmd.currency} does not settle in cycles")
            currencies = [cmd.currency]
        if not self.day_open:
            raise EngineError("the business day is closed")
        chosen = [self.live[pid] for c in currencies for pid in self.cycle_pending.get(c, {})]
        numbers = {}
        for c in currencies:
            numbers[c] = self.cycles_closed.get(c, 0) + 1
            self.cycles_closed[c] = numbers[c]
        gross = {c: sum(leg.amount_minor for p in chosen for leg in p.legs() if leg.currency == c)
                 for c in currencies}
        unwound: list[dict[str, Any]] = []
        while chosen:
            failing = self._cycle_shortfalls(chosen)
            if not failing:
                break
            shortfall, member = max(failing)
            removed = [p for p in chosen if member in (p.debtor, p.creditor, p.provider)]
            chosen = [p for p in chosen if member not in (p.debtor, p.creditor, p.provider)]
            unwound.append({"member": member, "shortfall_minor": shortfall, "payments": [p.id for p in removed]})
            self._out.append(Notice("cycle_unwound", {
                "currency": cmd.currency, "cycle": numbers[currencies[0]], "member": member,
                "shortfall_minor": shortfall, "carried_over": [p.id for p in removed]}))
        needed = dict.fromkeys(currencies, 0)
        if chosen:
            deltas: dict[tuple[str, str], int] = {}
            for p in chosen:
                for leg in p.legs():
                    if leg.currency in needed:
                        da, ca = (leg.debit, leg.currency), (leg.credit, leg.currency)
                        deltas[da] = deltas.get(da, 0) - leg.amount_minor
                        deltas[ca] = deltas.get(ca, 0) + leg.amount_minor
            for (_, ccy), v in deltas.items():
                if v < 0:
                    needed[ccy] -= v
            postings = self.ledger.post([(p.id, p.legs()) for p in chosen])  # covered: checked above
            for p in chosen:
                assert p.cycle is not None
                del self.cycle_pending[p.cycle][p.id]
                self._finish(p, cmd.time_ms)
            self._out.extend(postings)
        for c in currencies:
            settled_gross = sum(leg.amount_minor for p in chosen for leg in p.legs() if leg.currency == c)
            self._out.append(Notice("cycle_closed", {
                "currency": c, "cycle": numbers[c], "payments": sum(1 for p in chosen if c in (p.currency,
                                                                                           p.to_currency)),
                "gross_minor": settled_gross, "submitted_gross_minor": gross[c],
                "liquidity_needed_minor": needed[c],
                # 1 - liquidity needed / gross value, in parts per million (no floats in the engine)
                "netting_efficiency_ppm": (settled_gross - needed[c]) * 1_000_000 // settled_gross
                if settled_gross else 0,
                "unwound": unwound, "carried_over": len(self.cycle_pending.get(c, {})),
            }))
        self._drain()

    def _cycle_shortfalls(self, chosen: Sequence[Payment]) -> list[tuple[int, str]]:
        """(shortfall, member) for every account whose net debit the cycle cannot take: beyond its
        available balance, or beyond its net debit cap."""
        net = self._net()
        deltas: dict[tuple[str, str], int] = {}
        for p in chosen:
            for leg in p.legs():
                d = (leg.debit, leg.currency)
                c = (leg.credit, leg.currency)
                deltas[d] = deltas.get(d, 0) - leg.amount_minor
                deltas[c] = deltas.get(c, 0) + leg.amount_minor
        out = []
        for acct, delta in deltas.items():
            if delta >= 0:
                continue
            room = self.ledger.available(acct)
            cfg = net.accounts.get(acct)
            if cfg is not None and cfg.net_debit_cap_minor is not None:
                room = min(room, cfg.net_debit_cap_minor)
            if -delta > room:
                out.append((-delta - room, acct[0]))
        return out

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
            self._drain()
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
            self._finish(p, cmd.time_ms)
        self._out.extend(postings)
        self._out.append(Notice("liquidity_saving", {"algorithm": cmd.algorithm, "settled": len(chosen),
                                                     "value": sum(p.amount_minor for p in chosen)}))
        self._drain()

    # ------------------------------------------------------------------ FX
    def _post_rate(self, cmd: PostRate) -> None:
        net = self._net()
        m = net.members.get(cmd.provider)
        if m is None or not m.is_fx_provider:
            raise EngineError(f"{cmd.provider} is not an FX provider")
        for c in (cmd.base, cmd.quote):
            if c not in net.currencies:
                raise EngineError(f"currency {c} is not in the network")
            if not self.ledger.has((cmd.provider, c)):
                raise EngineError(f"{cmd.provider} has no {c} account")
        if cmd.base == cmd.quote:
            raise EngineError("a rate needs two different currencies")
        value = _parse_rate(cmd.rate)
        rate = Rate(cmd.provider, cmd.base, cmd.quote, cmd.rate, value, cmd.expires_ms, cmd.time_ms)
        if cmd.quote_id is not None:
            if cmd.quote_id in self.quotes:
                raise EngineError(f"quote id {cmd.quote_id} already used")
            self.quotes[cmd.quote_id] = rate
        else:
            self.rates[(cmd.provider, cmd.base, cmd.quote)] = rate
        self._out.append(Notice("rate", {"provider": cmd.provider, "pair": f"{cmd.base}/{cmd.quote}",
                                         "rate": cmd.rate, "quote_id": cmd.quote_id}))

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
        self._out.append(Notice("day_closed", {"business_day": self.business_day, "rejected": rejected}))

    def _day_open(self, cmd: DayOpen) -> None:
        if self.day_open:
            raise EngineError("the business day is already open")
        self.day_open = True
        self.business_day += 1
        for key in list(self.queues):
            self._work.append(key)
        self._drain()
        self._out.append(Notice("day_opened", {"business_day": self.business_day}))

    # ------------------------------------------------------------------ invariants & state
    def check(self) -> None:
        """Assert every invariant; raises ledger.InvariantViolation."""
        self.ledger.check()
        if not self.final.keys().isdisjoint(self.live):
            pid = next(p for p in self.live if p in self.final)
            raise InvariantViolation(f"payment {pid} is both live and final")

    def to_state(self) -> dict[str, Any]:
        return {
            "network": None if self.network is None else self.network.to_config(),
            "ledger": self.ledger.to_state(),
            "live": [dict(zip(_PAYMENT_FIELDS, _payment_values(p), strict=True)) for p in self.live.values()],
            "final": self.final,
            "reasons": self.reasons,
            "queues": [[d, c, list(q.urgent), list(q.normal)] for (d, c), q in self.queues.items() if q],
            "cycle_pending": {c: list(ids) for c, ids in self.cycle_pending.items()},
            "cycles_closed": self.cycles_closed,
            "rates": [_rate_state(r) for r in self.rates.values()],
            "quotes": [[k, _rate_state(r)] for k, r in self.quotes.items()],
            "day_open": self.day_open,
            "business_day": self.business_day,
            "order": self.order,
            "applied": self.applied,
            "funds": sorted(self.funds),
            "frozen": self.frozen,
        }

    @staticmethod
    def from_state(state: dict[str, Any]) -> Engine:
        e = Engine()
        e.network = None if state["network"] is None else Network.from_config(state["network"])
        e.ledger = Ledger.from_state(state["ledger"])
        for d in state["live"]:
            p = Payment(**d)
            e.live[p.id] = p
        e.final = dict(state["final"])
        e.reasons = {k: list(v) for k, v in state["reasons"].items()}
        for d, c, urgent, normal in state["queues"]:
            q = e.queues[(d, c)] = _Queue(dict.fromkeys(urgent), dict.fromkeys(normal))
            for pid in q.ordered():
                p = e.live[pid]
                if p.provider is not None:
                    assert p.to_currency is not None
                    e.pvp_waiting.setdefault((p.provider, p.to_currency), {})[pid] = None
        e.cycle_pending = {c: dict.fromkeys(ids) for c, ids in state["cycle_pending"].items()}
        e.cycles_closed = dict(state["cycles_closed"])
        for r in state["rates"]:
            rate = _rate_from(r)
            e.rates[(rate.provider, rate.base, rate.quote)] = rate
        for k, r in state["quotes"]:
            e.quotes[k] = _rate_from(r)
        e.day_open = state["day_open"]
        e.business_day = state["business_day"]
        e.order = state["order"]
        e.applied = state["applied"]
        e.funds = set(state["funds"])
        e.frozen = dict(state["frozen"])
        return e

    def state_bytes(self) -> bytes:
        return orjson.dumps(self.to_state())

    def state_hash(self) -> str:
        return hashlib.sha256(self.state_bytes()).hexdigest()


def _rate_state(r: Rate) -> list[Any]:
    return [r.provider, r.base, r.quote, r.text, r.expires_ms, r.posted_ms]


def _rate_from(r: Sequence[Any]) -> Rate:
    return Rate(r[0], r[1], r[2], r[3], _parse_rate(r[3]), r[4], r[5])


def _parse_rate(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise EngineError(f"rate {text!r} is not a decimal number") from None
    if value <= 0 or "/" in text or len(text) > 32:
        raise EngineError(f"rate {text!r} must be a positive decimal")
    return value


def _round_half_even(x: Fraction) -> int:
    """Documented FX rounding rule: the credited amount is amount x rate rounded to the target
    currency's minor unit, halves to even (error at most half a minor unit, no bias)."""
    return round(x)
