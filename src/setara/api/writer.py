"""The one owner of the engine: a thread that drains queued requests into group commits.

Every change goes through `Writer`. Concurrent submissions that arrive while a block is being
written wait in the queue and go into the next block together (group commit), so the engine
still sees one ordered log. A request's future resolves only after `Node.flush` returned, i.e.
after the block holding it was fsynced: a 2xx is never sent for something a crash can lose.

Readers that need the engine's live state take `lock` (held while a block is applied and
written, so they never see state that is not yet durable, and wait at most one commit).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from setara.core import EngineError
from setara.core.instructions import Instruction
from setara.node import Ack, Node
from setara.ports import now_ms

__all__ = ["Submitted", "Writer", "WriterFailed"]

T = TypeVar("T")
BLOCK_INSTRUCTIONS_MAX = 20_000  # most instructions put into one group commit
QUEUE_MAX = 10_000  # most requests waiting for the writer; more get 503

log = logging.getLogger("setara.api")


class WriterFailed(RuntimeError):
    """The writer stopped (storage failure); nothing more can be acknowledged by this process."""


@dataclass(slots=True)
class Submitted:
    ack: Ack
    existed: bool  # the id was already known before this request (idempotent replay or DUPL)


@dataclass(slots=True)
class _SubmitJob:
    items: list[Instruction]
    source: str
    future: Future[list[Submitted]]


@dataclass(slots=True)
class _CallJob:
    fn: Callable[[Node], Any]
    future: Future[Any]


_STOP = object()


class Writer:
    def __init__(self, node: Node, before_block: Callable[[Node], None] | None = None) -> None:
        self.node = node
        self.before_block = before_block  # runs in the writer, under the lock, before each submission block
        self.lock = threading.Lock()
        self.failed: str | None = None
        self.blocks = 0
        self.instructions = 0
        self._q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_MAX)
        self._thread = threading.Thread(target=self._loop, name="setara-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ client side
    def submit(self, items: list[Instruction], source: str) -> Future[list[Submitted]]:
        fut: Future[list[Submitted]] = Future()
        self._put(_SubmitJob(items, source, fut), fut)
        return fut

    def call(self, fn: Callable[[Node], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._put(_CallJob(fn, fut), fut)
        return fut

    def _put(self, job: object, fut: Future[Any]) -> None:
        if self.failed is not None:
            fut.set_exception(WriterFailed(self.failed))
            return
        try:
            self._q.put_nowait(job)
        except queue.Full:
            fut.set_exception(WriterFailed("the writer queue is full; retry later"))

    @property
    def alive(self) -> bool:
        return self.failed is None and self._thread.is_alive()

    def queue_depth(self) -> int:
        return self._q.qsize()

    def close(self, timeout_s: float = 30.0) -> None:
        self._q.put(_STOP)
        self._thread.join(timeout_s)

    # ------------------------------------------------------------------ writer thread
    def _loop(self) -> None:
        pending: Any = None
        while True:
            job = pending if pending is not None else self._q.get()
            pending = None
            if job is _STOP:
                self._fail_rest("the server is shutting down")
                return
            if isinstance(job, _CallJob):
                self._run_call(job)
                continue
            batch = [job]
            n = len(job.items)
            while n < BLOCK_INSTRUCTIONS_MAX:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(nxt, _SubmitJob):
                    pending = nxt
                    break
                batch.append(nxt)
                n += len(nxt.items)
            self._run_submits(batch)
            if self.failed is not None:
                self._fail_rest(self.failed)
                return

    def _run_call(self, job: _CallJob) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            with self.lock:
                result = job.fn(self.node)
        except Exception as e:
            job.future.set_exception(e)
        else:
            job.future.set_result(result)

    def _run_submits(self, batch: list[_SubmitJob]) -> None:
        node = self.node
        results: list[list[Submitted] | BaseException] = []
        try:
            with self.lock:
                if self.before_block is not None:
                    self.before_block(node)
                b = node.begin()
                eng = node.engine
                for job in batch:
                    out: list[Submitted] = []
                    try:
                        for n, ins in enumerate(job.items, start=1):
                            existed = eng.fingerprint(ins.id) is not None
                            out.append(Submitted(node.submit_instruction(b, ins, n, job.source, now_ms()), existed))
                    except EngineError as e:  # refused before changing anything; earlier items stand
                        results.append(e)
                        continue
                    results.append(out)
                node.flush(b)  # durable from here on: only now may anyone be told
                self.blocks += 1
                self.instructions += sum(len(j.items) for j in batch)
        except Exception as e:  # storage failure: the engine may be ahead of the store; stop
            log.exception("writer failed")
            self.failed = f"the writer stopped after a storage failure: {e}"
            for job in batch:
                job.future.set_exception(WriterFailed(self.failed))
            return
        for job, res in zip(batch, results, strict=True):
            if isinstance(res, BaseException):
                job.future.set_exception(res)
            else:
                job.future.set_result(res)

    def _fail_rest(self, why: str) -> None:
        while True:
            try:
                job = self._q.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, (_SubmitJob, _CallJob)):
                job.future.set_exception(WriterFailed(why))
