"""What the routes share: the writer-owned node, read connections, and the shapes of answers.

Requests never read the engine: writes and engine-state views go to the writer thread
(`Api.call`), which runs them between blocks; payments, entries and balances are read from the
store's read models through per-thread read connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import Request

from setara.api.keys import Principal
from setara.api.problems import ApiProblem, not_found, refused
from setara.api.writer import Writer, WriterFailed
from setara.core.money import format_amount
from setara.core.network import Network
from setara.node import Node, PaymentRow, SetaraError, Store, open_store, usecases, views
from setara.node.dashboard import Cycles
from setara.node.projection import project, project_entries_step
from setara.node.usecases import Refused
from setara.ports import Screening, now_ms

__all__ = ["HELD_NEUTRAL", "Api", "api_of"]

T = TypeVar("T")
STATEMENT_REST_RATIO = 3.0
LISTS_CHECK_S = 10.0  # how often the writer looks for a newly imported sanctions list
FINALITY_READ_S = 1.0  # how stale the `final` of a payment may be
FINALITY_RECORD_S = 2.0  # how often a replicating server records the member nodes' latest final checkpoint
# What a member sees of a screening hold or a regulatory rejection: that it happened, never why
# (which list, entity or score): telling a party it matched a list would tip it off.
HELD_NEUTRAL = "held for compliance review"
REJECTED_NEUTRAL = "rejected for regulatory reasons"


class Api:
    """The writer-owned node, read connections, and small caches."""

    def __init__(self, db_url: str, screening: Screening | None = None, replication: Any = None) -> None:
        self.db_url = db_url
        self.node = Node.open(db_url, write=True)
        self._finality: Any = None
        self._finality_read = -FINALITY_READ_S
        self._stop_finality = threading.Event()
        if replication is not None:
            try:
                usecases.start_replication(self.node, replication)
            except BaseException:
                self.node.close()
                raise
        self.lists_version = -1
        self._lists_checked = 0.0
        self.fixed_screening = screening is not None
        if screening is not None:
            self.node.screening = screening
        else:
            self.refresh_screening(self.node, force=True)
        self.writer = Writer(self.node, before_block=None if self.fixed_screening else self.refresh_screening)
        if self.node.replicator is not None:
            threading.Thread(target=self._record_finality, name="setara-finality", daemon=True).start()
        self._local = threading.local()
        self._readers: list[Store] = []
        self._readers_lock = threading.Lock()
        self._project_lock = threading.Lock()
        self.cycles = Cycles()
        self.started_ms = now_ms()
        self.metrics_public = os.environ.get("SETARA_METRICS_PUBLIC", "") == "1"
        self.auth_cache: dict[str, tuple[Principal, float]] = {}
        # Statements are built by one thread of their own, on one read connection of their own.
        self._statements = ThreadPoolExecutor(1, thread_name_prefix="setara-statements")
        self._statement_store: Store | None = None
        self._entries_step: asyncio.Future[int] | None = None
        self.entries_upto = 0

    async def in_statement_thread(self, fn: Callable[[Store], T]) -> T:
        """Run `fn` in the statement thread with its read connection."""
        def run() -> T:
            if self._statement_store is None:
                self._statement_store = open_store(self.db_url)
            t = time.perf_counter()
            try:
                return fn(self._statement_store)
            finally:
                # Statements are background work: the thread rests STATEMENT_REST_RATIO times as
                # long as each step took, so all statements together use at most 1 / (1 + ratio) of
                # one core, however many there are, and submissions keep the rest.
                time.sleep((time.perf_counter() - t) * STATEMENT_REST_RATIO)

        return await asyncio.get_running_loop().run_in_executor(self._statements, run)

    async def entries_caught_up(self) -> None:
        """Bring the entries read model up to the block durable now, in the writer thread between
        blocks, one bounded step at a time (so it contends for the store's write lock with nobody,
        and a long catch-up lets submissions through between its steps). At most one step is
        queued at a time, whoever asks: concurrent statements wait for the same one."""
        target = self.block_seq
        while self.entries_upto < target:
            step = self._entries_step
            if step is None or step.done():
                step = self._entries_step = asyncio.ensure_future(self.call(_entries_step))
            self.entries_upto = max(self.entries_upto, await asyncio.shield(step))

    @property
    def network(self) -> Network:
        """The network as of the last block (an immutable value the writer replaces on a change)."""
        return self.node.network

    @property
    def block_seq(self) -> int:
        """The last durable block (the writer moves it after each commit)."""
        return self.node.block_seq

    @property
    def screening_loaded(self) -> bool:
        return self.fixed_screening or self.lists_version > 0

    def refresh_screening(self, node: Node, *, force: bool = False) -> None:
        """Screen with the sanctions lists in the store, as `setara submit` does; a list imported while
        the server runs (`setara lists import`) is picked up within LISTS_CHECK_S. Runs in the writer."""
        t = time.monotonic()
        if not force and t - self._lists_checked < LISTS_CHECK_S:
            return
        self._lists_checked = t
        try:
            from setara.node.screening import PaymentScreening
        except ImportError:  # an engine without list screening: keep the node's own
            return
        version = node.store.lists_version()
        if version != self.lists_version:
            node.screening = PaymentScreening.from_store(node.store)
            if self.lists_version:  # a new version while serving: members and queue are screened again
                from setara.node.usecases import rescreen

                rescreen(node)
            self.lists_version = version

    # ------------------------------------------------------------------ the writer
    async def call(self, fn: Callable[[Node], T]) -> T:
        """Run `fn` on the node in the writer thread, between blocks; refusals become problems."""
        try:
            result: T = await asyncio.wrap_future(self.writer.call(fn))
        except WriterFailed as e:
            raise ApiProblem(503, "Service Unavailable", str(e)) from None
        except Refused as e:
            raise refused(e) from None
        except SetaraError as e:
            raise ApiProblem(409, "Conflict", str(e)) from None
        return result

    # ------------------------------------------------------------------ read connections
    def reader(self) -> Store:
        """This thread's read connection (SQLite connections are not shared between threads)."""
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = open_store(self.db_url)
            self._local.store = store
            with self._readers_lock:
                self._readers.append(store)
        return store

    def fresh_reader(self) -> Store:
        """A read connection whose payments projection includes every durable block."""
        store = self.reader()
        with self._project_lock:
            project(store)
        return store

    def close(self) -> None:
        self._stop_finality.set()
        self._statements.shutdown(wait=True, cancel_futures=True)
        if self._statement_store is not None:
            with contextlib.suppress(Exception):
                self._statement_store.close()
        self.writer.close()
        with self.writer.lock:
            self.node.close()
        with self._readers_lock:
            for s in self._readers:
                with contextlib.suppress(Exception):  # a connection of a finished thread
                    s.close()
            self._readers.clear()

    # ------------------------------------------------------------------ shapes
    def units(self, ccy: str | None) -> int:
        return (self.network.minor_units(ccy) if ccy else None) or 0

    def amount(self, minor: int, ccy: str) -> str:
        return format_amount(minor, self.units(ccy))

    def payment_json(self, p: PaymentRow, who: Principal) -> dict[str, Any]:
        code, reason = visible_reason(who, p.status, p.reason_code, p.reason)
        final = self.finality()
        return {
            "id": p.id, "debtor": p.debtor, "creditor": p.creditor, "currency": p.currency,
            "amount": self.amount(p.amount_minor, p.currency), "status": p.status,
            "reason_code": code, "reason": reason, "priority": p.priority,
            "to_currency": p.to_currency,
            "credit_amount": None if p.credit_minor is None or not p.to_currency
            else self.amount(p.credit_minor, p.to_currency),
            "provider": p.provider, "rate": p.rate, "uetr": p.uetr, "end_to_end_id": p.end_to_end_id,
            "accepted_ms": p.accepted_ms, "updated_ms": p.updated_ms,
            "final": final is not None and final.covers(p),
        }

    def _record_finality(self) -> None:
        """Keep the member nodes' latest final checkpoint in the store (run by the writer thread,
        between blocks)."""
        def record(node: Node) -> None:
            if node.replicator is not None:
                node.replicator.record_finality(node.store, node.network)

        while not self._stop_finality.wait(FINALITY_RECORD_S):
            with contextlib.suppress(Exception):  # the stream may be electing a leader: next time
                self.writer.call(record).result(timeout=30)

    def finality(self) -> Any:
        """The latest final checkpoint (views.Finality), read at most once a second."""
        t = time.monotonic()
        if t - self._finality_read > FINALITY_READ_S:
            self._finality = views.finality(self.reader())
            self._finality_read = t
        return self._finality

    def visible_payment(self, who: Principal, pid: str) -> PaymentRow:
        row = self.fresh_reader().get_payment(pid)
        if row is None or (who.role == "member" and who.member not in (row.debtor, row.creditor)):
            raise not_found(pid)  # another member's payment is indistinguishable from none
        return row


def _entries_step(node: Node) -> int:
    project_entries_step(node.store)
    return node.store.entries_upto()[0]


def visible_reason(who: Principal, status: str, code: str | None, reason: str | None
                   ) -> tuple[str | None, str | None]:
    """The reason a key may see. A member sees that a payment is held, or rejected for a
    regulatory reason (RR04), never the screening decision behind it; admin roles see it all."""
    if who.role != "member":
        return code, reason
    if status == "HELD":
        return None, HELD_NEUTRAL
    if code == "RR04":
        return code, REJECTED_NEUTRAL
    return code, reason


def api_of(request: Request) -> Api:
    api: Api = request.app.state.api
    return api
