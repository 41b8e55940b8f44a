"""The core: money, the network, the ledger, instructions, commands and the log format, and the
settlement engine. Pure: it imports nothing outside `setara.core` and has no clock, randomness or
I/O (enforced by the import contracts in pyproject.toml)."""

from setara.core.bulk import apply_logged, settle_batch, settle_run
from setara.core.commands import (
    CANCELLED,
    COMMANDS,
    HELD,
    NORMAL,
    QUEUED,
    REJECTED,
    SETTLED,
    SUBMIT_FIELDS,
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
    column,
    command_from_dict,
    command_kind,
    log_commands,
    submits_rows,
)
from setara.core.engine import Engine, Payment
from setara.core.fx import Rate
from setara.core.ledger import GENESIS, InvariantViolation, Posting

__all__ = [
    "CANCELLED", "COMMANDS", "GENESIS", "HELD", "NORMAL", "QUEUED", "REJECTED", "SETTLED", "SUBMIT_FIELDS",
    "URGENT", "Cancel", "ChangeNetwork", "CloseCycle", "Command", "DayClose", "DayOpen", "Engine",
    "EngineError", "EpochStart", "Event", "Freeze", "Fund", "Hold", "Init", "InvariantViolation", "Notice", "Payment",
    "PostRate", "Posting", "Rate", "Review", "SetSuspended", "SettleSet", "StatusEvent", "Submit",
    "apply_logged", "column", "command_from_dict", "command_kind", "log_commands", "settle_batch",
    "settle_run", "submits_rows",
]
