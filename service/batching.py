"""Adaptive micro-batching across concurrent requests.

``workers`` batches run at a time, each in its own thread (torch releases the GIL during its kernels,
so two single-threaded forward passes use two cores). When a worker is free, the next batch
takes every request that arrived meanwhile (up to ``max_batch_size`` texts), so under load batches grow
by themselves and no time is spent waiting; when the model is idle, a new request waits at most
``max_latency_ms`` for others to join it. A request is never split across batches (one larger than
``max_batch_size`` runs alone), so every text of a response comes from the same model version.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Out = TypeVar("Out")


@dataclass
class _Pending:
    texts: Sequence[str]
    future: asyncio.Future


@dataclass
class BatchStats:
    batches: int = 0
    texts: int = 0
    largest: int = 0
    sizes: collections.Counter = field(default_factory=collections.Counter)


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
        self.workers = workers
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000.0
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="driftline-infer")
        self.stats = BatchStats()

    async def submit(self, texts: Sequence[str]) -> tuple[Out, int]:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._work(), name="driftline-batcher")
        future: asyncio.Future = loop.create_future()
        self._queue.append(_Pending(texts, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    def _take(self) -> list[_Pending]:
        taken = [self._queue.popleft()]
        size = len(taken[0].texts)
        while self._queue and size + len(self._queue[0].texts) <= self.max_batch_size:
            item = self._queue.popleft()
            taken.append(item)
            size += len(item.texts)
        return taken

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        slots = asyncio.Semaphore(self.workers)
        busy = False  # were requests already waiting when the last batch started?
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                busy = False
            await slots.acquire()
            if not busy and self.max_latency_s > 0:
                waiting = sum(len(p.texts) for p in self._queue)
                if waiting < self.max_batch_size:
                    await asyncio.sleep(self.max_latency_s)  # idle model: give company a moment to arrive
            taken = [p for p in self._take() if not p.future.cancelled()]
            if not taken:
                slots.release()
                continue
            texts = [t for p in taken for t in p.texts]
            future = loop.run_in_executor(self._executor, self._run_batch, texts)
            future.add_done_callback(functools.partial(self._finish, taken, len(texts), slots))
            busy = bool(self._queue)

    def _finish(
        self, taken: list[_Pending], size: int, slots: asyncio.Semaphore, done: asyncio.Future
    ) -> None:
        slots.release()
        self.stats.batches += 1
        self.stats.texts += size
        self.stats.largest = max(self.stats.largest, size)
        self.stats.sizes[size] += 1
        exc = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if exc is not None:
            logger.error("batch of %d texts failed: %s", size, exc, exc_info=exc)
            for p in taken:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        out = done.result()
        start = 0
        for p in taken:
            if not p.future.done():
                p.future.set_result((out, start))
            start += len(p.texts)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
