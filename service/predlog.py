"""The prediction log, written off the request path.

Requests hand rows to :meth:`PredictionLog.offer`, which never blocks and never raises. A writer thread
inserts them in batches. When the database is slow or down, rows wait in a bounded buffer and the
writer retries with back-off; rows that do not fit are dropped, counted and logged. ``close()`` flushes.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence

from registry.entities import NewPrediction

logger = logging.getLogger(__name__)

_WARN_EVERY_S = 10.0


class PredictionLog:
    def __init__(
        self,
        write: Callable[[Sequence[NewPrediction]], object],
        *,
        capacity: int,
        batch_size: int,
        flush_interval_s: float,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._write = write
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_backoff_s = max_backoff_s
        self._rows: collections.deque[NewPrediction] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self.offered = 0
        self.written = 0
        self.dropped = 0
        self.write_errors = 0
        self._last_drop_warning = 0.0
        self._thread = threading.Thread(target=self._run, name="driftline-predlog", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return len(self._rows)

    def offer(self, rows: Sequence[NewPrediction]) -> int:
        """Queue rows for writing; returns how many were accepted (the rest are dropped and counted)."""
        with self._cond:
            room = max(0, self.capacity - len(self._rows))
            accepted = rows[:room] if len(rows) > room else rows
            self._rows.extend(accepted)
            self.offered += len(rows)
            lost = len(rows) - len(accepted)
            if lost:
                self.dropped += lost
                now = time.monotonic()
                if now - self._last_drop_warning > _WARN_EVERY_S:
                    self._last_drop_warning = now
                    logger.warning(
                        "prediction log full (%d rows waiting): dropped %d rows so far",
                        len(self._rows),
                        self.dropped,
                    )
            if len(self._rows) >= self.batch_size:
                self._cond.notify_all()
            return len(accepted)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row offered so far is written (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self.offered
            self._cond.notify_all()
            while self.written + self.dropped < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
                self._cond.notify_all()
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Flush what is waiting (within ``timeout``) and stop the writer."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=max(1.0, timeout))
        if not flushed:
            logger.error("prediction log closed with %d rows unwritten", len(self._rows))
        return flushed

    def _run(self) -> None:
        backoff = 0.1
        while True:
            with self._cond:
                if len(self._rows) < self.batch_size and not self._closing:
                    self._cond.wait(self.flush_interval_s)  # woken early by a full batch, flush() or close()
                if self._closing and not self._rows:
                    return
                chunk = [self._rows[i] for i in range(min(self.batch_size, len(self._rows)))]
            if not chunk:
                continue
            try:
                self._write(chunk)
            except Exception as exc:  # noqa: BLE001 - the database is down or slow; keep the rows
                self.write_errors += 1
                if self.write_errors == 1 or self.write_errors % 20 == 0:
                    logger.warning(
                        "prediction log: write of %d rows failed (%d rows waiting, %d failures): %s",
                        len(chunk),
                        len(self._rows),
                        self.write_errors,
                        exc,
                    )
                time.sleep(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)
                if self._closing and backoff >= self.max_backoff_s:
                    logger.error("prediction log: giving up on %d rows at shutdown", len(self._rows))
                    return
                continue
            backoff = 0.1
            with self._cond:
                for _ in chunk:
                    self._rows.popleft()
                self.written += len(chunk)
                self._cond.notify_all()
