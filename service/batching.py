"""Adaptive micro-batching across concurrent requests.

A single worker runs one batch at a time in a dedicated thread. When a batch finishes, the next one
takes every request that arrived meanwhile (up to ``max_batch_size`` texts), so under load batches grow
by themselves and no time is spent waiting; when the model is idle, a new request waits at most
``max_latency_ms`` for others to join it. A request is never split across batches (one larger than
``max_batch_size`` runs alone), so every text of a response comes from the same model version.
"""

from __future__ import annotations

import asyncio
import collections
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
    ) -> None:
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000.0
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftline-infer")
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
        busy = False  # did the previous batch end with requests already waiting?
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                busy = False
            if not busy and self.max_latency_s > 0:
                waiting = sum(len(p.texts) for p in self._queue)
                if waiting < self.max_batch_size:
                    await asyncio.sleep(self.max_latency_s)  # idle model: give company a moment to arrive
            taken = [p for p in self._take() if not p.future.cancelled()]
            if not taken:
                continue
            texts = [t for p in taken for t in p.texts]
            try:
                out = await loop.run_in_executor(self._executor, self._run_batch, texts)
            except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
                logger.exception("batch of %d texts failed", len(texts))
                for p in taken:
                    if not p.future.done():
                        p.future.set_exception(exc)
            else:
                start = 0
                for p in taken:
                    if not p.future.done():
                        p.future.set_result((out, start))
                    start += len(p.texts)
            self.stats.batches += 1
            self.stats.texts += len(texts)
            self.stats.largest = max(self.stats.largest, len(texts))
            self.stats.sizes[len(texts)] += 1
            busy = bool(self._queue)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
