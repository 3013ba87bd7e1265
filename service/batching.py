"""Adaptive micro-batching across concurrent requests.

Requests wait in a shared queue; ``workers`` inference threads (default one) each loop: take every
request waiting, up to ``max_batch_size`` texts, run one batch, hand each request its slice, repeat.
Under load batches grow by themselves and a worker starts its next batch the moment the last one ends,
without waiting for the event loop; when the model is idle, a new request waits at most
``max_latency_ms`` for others to join it. A request is never split across batches (one larger than
``max_batch_size`` runs alone), so every text of a response comes from the same model version.

Overload: a request whose client has gone (``submit(..., gone=...)``) or whose task is cancelled leaves
the queue at once; if its batch has not started, its texts never reach the model. With ``max_wait_ms``
set, a request that would wait longer than that for the model while others are queued is refused at
once (:class:`Overloaded`) instead of queued; with nothing queued it always joins the next batch, so
light load is never refused, whatever the size of the batch running. The wait is estimated as what is
left of the batches running plus the texts queued, at the seconds per text of the recent batches: their
seconds over their texts, both decayed by :data:`_DECAY` per batch, so that large batches (those of a
loaded model) weigh most and a burst after a quiet spell is judged by full batches within a few of them.
Counting every queued text (though those short of a full batch share the new request's batch) keeps the
queue under ``max_wait_ms`` of work, and so the batch an admitted request runs in: it is answered within
about twice ``max_wait_ms`` (bench/overload.py measured the alternative: a full batch queued, and answers
too late for clients with a 1 s timeout).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Out = TypeVar("Out")
_DECAY = 0.8  # what the last batches' seconds and texts still count for when the next one ends


class Overloaded(Exception):
    """The request would wait ``expected_wait_s`` for the model, over the limit ``limit_s``."""

    def __init__(self, expected_wait_s: float, limit_s: float) -> None:
        super().__init__(
            f"a new request would wait about {expected_wait_s * 1000:.0f} ms for the model; "
            f"the limit is {limit_s * 1000:.0f} ms"
        )
        self.expected_wait_s = expected_wait_s
        self.limit_s = limit_s

    @property
    def retry_after_s(self) -> int:
        """Whole seconds after which the work queued now is done: the ``Retry-After`` to send."""
        return max(1, math.ceil(self.expected_wait_s))


class Abandoned(Exception):
    """The client went away before the answer was ready."""


@dataclass(eq=False)  # identity: a request is found in the queue by itself, not by its texts
class _Pending:
    texts: Sequence[str]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


def _resolve(future: asyncio.Future, result: object, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class MicroBatcher(Generic[Out]):
    """``await submit(texts)`` returns ``(output, start)``: the batch output and where this request's
    texts begin in it."""

    def __init__(
        self,
        run_batch: Callable[[list[str]], Out],
        *,
        max_batch_size: int,
        max_latency_ms: float,
        workers: int = 1,
        max_wait_ms: float | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000.0
        self.workers = workers
        self.max_wait_s = max_wait_ms / 1000.0 if max_wait_ms is not None else None
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queued_texts = 0
        self._running: dict[int, tuple[int, float]] = {}  # worker -> (texts, perf_counter at start)
        # decayed seconds and texts of the recent batches; until a batch has run, nothing is refused
        self._recent_seconds = 0.0
        self._recent_texts = 0.0
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []
        # counters, read by the metrics exporter
        self.texts_computed = 0
        self.abandoned = 0  # requests withdrawn before their batch started: no forward pass spent
        self.shed = 0  # requests refused with Overloaded

    def _start(self) -> None:
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, args=(n,), name=f"driftline-infer-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def expected_wait_s(self) -> float:
        """How long a request sent now would wait for the model to start on it (0.0 before any batch
        has run)."""
        with self._cond:
            return self._expected_wait_locked()

    def _expected_wait_locked(self) -> float:
        if not self._recent_texts:
            return 0.0
        per_text = self._recent_seconds / self._recent_texts
        now = time.perf_counter()
        running = sum(max(0.0, n * per_text - (now - started)) for n, started in self._running.values())
        return (running + self._queued_texts * per_text) / self.workers

    def admit(self) -> None:
        """Raises (and counts) :class:`Overloaded` when a request sent now would wait over ``max_wait_ms``
        behind others queued: a caller can refuse before it has read the request."""
        with self._cond:
            self._admit_locked()

    def _admit_locked(self) -> None:
        if self.max_wait_s is None or not self._queue:
            return
        wait = self._expected_wait_locked()
        if wait > self.max_wait_s:
            self.shed += 1
            raise Overloaded(wait, self.max_wait_s)

    async def submit(
        self, texts: Sequence[str], *, gone: Callable[[], Awaitable[object]] | None = None
    ) -> tuple[Out, int]:
        """Queue ``texts``; raises :class:`Overloaded` at once when the wait would pass ``max_wait_ms``.
        ``gone()``, when given, is awaited once the request is queued and completes when its client has
        gone away: the request is then withdrawn and :class:`Abandoned` raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        pending = _Pending(texts, future, loop)
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._admit_locked()
            if not self._threads:
                self._start()
            self._queue.append(pending)
            self._queued_texts += len(texts)
            self._cond.notify()
        if gone is None:
            try:
                return await future
            except asyncio.CancelledError:
                self._withdraw(pending)
                raise
        watcher = asyncio.ensure_future(gone())
        try:
            await asyncio.wait((future, watcher), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._withdraw(pending)
            raise
        finally:
            watcher.cancel()
        if future.done():
            return future.result()
        self._withdraw(pending)
        raise Abandoned("the client went away before the answer was ready")

    def _withdraw(self, pending: _Pending) -> None:
        """Take a request nobody waits for any more out of the queue (if its batch has not started)."""
        pending.future.cancel()
        with self._cond:
            try:
                self._queue.remove(pending)
            except ValueError:  # already taken: its batch is running or done
                return
            self._queued_texts -= len(pending.texts)
            self.abandoned += 1

    def _take(self, worker: int) -> list[_Pending]:
        """Called with the lock held and the queue non-empty: the next batch, now running on ``worker``."""
        taken = [self._queue.popleft()]
        size = len(taken[0].texts)
        while self._queue and size + len(self._queue[0].texts) <= self.max_batch_size:
            item = self._queue.popleft()
            taken.append(item)
            size += len(item.texts)
        self._queued_texts -= size
        self._running[worker] = (size, time.perf_counter())
        return taken

    def _measured(self, worker: int, *, failed: bool) -> None:
        """Called with the lock held when the batch of ``worker`` ends (a failed one's time says nothing
        about the model's pace)."""
        texts, started = self._running.pop(worker)
        seconds = time.perf_counter() - started
        self.texts_computed += texts
        if not failed:
            self._recent_seconds = self._recent_seconds * _DECAY + seconds
            self._recent_texts = self._recent_texts * _DECAY + texts

    def _work(self, worker: int) -> None:
        busy = False  # did the last batch end with requests already waiting?
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                    busy = False
                if self._closed:
                    return
                if not busy and self.max_latency_s > 0 and self._queued_texts < self.max_batch_size:
                    self._cond.wait(self.max_latency_s)  # idle model: give company a moment to arrive
                    if not self._queue:
                        continue
                taken = self._take(worker)
                busy = bool(self._queue)
            texts = [t for p in taken for t in p.texts]
            result: object = None
            error: BaseException | None = None
            try:
                result = self._run_batch(texts)
            except Exception as exc:  # every request of the batch gets the error
                logger.exception("batch of %d texts failed", len(texts))
                error = exc
            with self._cond:
                self._measured(worker, failed=error is not None)
            start = 0
            for p in taken:
                value = (result, start) if error is None else None
                try:
                    p.loop.call_soon_threadsafe(_resolve, p.future, value, error)
                except RuntimeError:  # that request's event loop is gone
                    pass
                start += len(p.texts)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            waiting = list(self._queue)
            self._queue.clear()
            self._queued_texts = 0
            self._cond.notify_all()
        for p in waiting:
            try:
                p.loop.call_soon_threadsafe(
                    _resolve, p.future, None, RuntimeError("the service is shutting down")
                )
            except RuntimeError:
                pass
