"""The engine's commands and events, and the log format that stores them.

A command is what the log records: everything the engine needs to decide, time included (the
engine has no clock). The log stores `[kind, fields]` per command: fields by name, or, for
submissions, by position (`Submit.as_row`); a run of submissions that settled on arrival may be
stored as one `["submits", {field: column}]` entry standing for one command per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from setara.core.ledger import Posting

__all__ = [
    "CANCELLED",
    "COMMANDS",
    "HELD",
    "NORMAL",
    "QUEUED",
    "REJECTED",
    "SETTLED",
    "SUBMITS_MAX",
    "SUBMIT_FIELDS",
    "URGENT",
    "Cancel",
    "ChangeNetwork",
    "CloseCycle",
    "Command",
    "DayClose",
    "DayOpen",
    "EngineError",
    "EpochStart",
    "Event",
    "Freeze",
    "Fund",
    "Hold",
    "Init",
    "Notice",
    "PostRate",
    "Review",
    "SetSuspended",
    "SettleSet",
    "StatusEvent",
    "Submit",
    "column",
    "command_from_dict",
    "command_kind",
    "first_repeat",
    "log_commands",
    "submits_rows",
]

SETTLED, QUEUED, HELD, REJECTED, CANCELLED = "SETTLED", "QUEUED", "HELD", "REJECTED", "CANCELLED"
URGENT, NORMAL = 0, 1


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
class EpochStart:
    """A sequencer starts writing: `epoch` is its lease's revision (see docs/nodes.md)."""

    epoch: int
    sequencer: str
    time_ms: int


@dataclass(slots=True)
class CloseCycle:
    """Close the current deferred-net cycle of a currency: net, unwind who cannot cover, settle."""

    currency: str
    time_ms: int


Command = (Init | ChangeNetwork | SetSuspended | Fund | Submit | Cancel | Review | DayClose | DayOpen
           | PostRate | SettleSet | CloseCycle | Freeze | Hold | EpochStart)
COMMANDS: dict[str, type[Any]] = {
    "init": Init, "network": ChangeNetwork, "suspend": SetSuspended, "fund": Fund, "submit": Submit,
    "cancel": Cancel, "review": Review, "day_close": DayClose, "day_open": DayOpen, "rate": PostRate,
    "settle_set": SettleSet, "close_cycle": CloseCycle, "freeze": Freeze, "hold": Hold, "epoch": EpochStart,
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


def first_repeat(ids: Sequence[str], *known: dict[str, Any]) -> int:
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

