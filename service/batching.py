"""Adaptive micro-batching across concurrent requests.

Requests wait in a shared queue; ``workers`` inference threads (default one) each loop: take every
request waiting, up to ``max_batch_size`` texts, run one batch, hand each request its slice, repeat.
Under load batches grow by themselves and a worker starts its next batch the moment the last one ends,
without waiting for the event loop; when the model is idle, a new request waits at most
``max_latency_ms`` for others to join it. A request is never split across batches (one larger than
``max_batch_size`` runs alone), so every text of a response comes from the same model version.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Out = TypeVar("Out")


@dataclass
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
    ) -> None:
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000.0
        self.workers = workers
        self._queue: collections.deque[_Pending] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []

    def _start(self) -> None:
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"driftline-infer-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def submit(self, texts: Sequence[str]) -> tuple[Out, int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if not self._threads:
                self._start()
            self._queue.append(_Pending(texts, future, loop))
            self._cond.notify()
        return await future

    def _take(self) -> list[_Pending]:
        """Called with the lock held and the queue non-empty."""
        taken = [self._queue.popleft()]
        size = len(taken[0].texts)
        while self._queue and size + len(self._queue[0].texts) <= self.max_batch_size:
            item = self._queue.popleft()
            taken.append(item)
            size += len(item.texts)
        return taken

    def _work(self) -> None:
        busy = False  # did the last batch end with requests already waiting?
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                    busy = False
                if self._closed:
                    return
                if not busy and self.max_latency_s > 0:
                    waiting = sum(len(p.texts) for p in self._queue)
                    if waiting < self.max_batch_size:
                        self._cond.wait(self.max_latency_s)  # idle model: give company a moment to arrive
                        if not self._queue:
                            continue
                taken = [p for p in self._take() if not p.future.cancelled()]
                busy = bool(self._queue)
            if not taken:
                continue
            texts = [t for p in taken for t in p.texts]
            result: object = None
            error: BaseException | None = None
            try:
                result = self._run_batch(texts)
            except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
                logger.exception("batch of %d texts failed", len(texts))
                error = exc
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
            self._cond.notify_all()
        for p in waiting:
            try:
                p.loop.call_soon_threadsafe(
                    _resolve, p.future, None, RuntimeError("the service is shutting down")
                )
            except RuntimeError:
                pass
