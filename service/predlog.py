"""The prediction log, written off the request path.

Requests hand rows to :meth:`PredictionLog.offer`, which never blocks and never raises. A writer thread
inserts them in batches. When the database is slow or down, rows wait in a bounded buffer and the
writer retries with back-off; rows that do not fit are dropped, counted and logged. A batch the
database *refuses* (anything but being unreachable: a value it will not store) is split in halves
until the refused rows stand alone; those are dropped and counted (``reason="refused"``), never
retried forever, and every row around them is written. ``close()`` flushes; rows still unwritten when
it gives up are counted too (``reason="shutdown"``). Log lines name prediction ids and the error,
never the texts.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence

from registry.entities import NewPrediction
from registry.errors import DatabaseError


def new_prediction_id(now: float | None = None) -> str:
    """32 hex characters: the time it was minted in milliseconds (12 hex digits), then 80 random bits.

    Ids sort by time, and ``/feedback`` can tell an id minted a moment ago (perhaps still in another
    replica's log buffer) from one that was never issued."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:012x}{secrets.token_hex(10)}"


def minted_within(prediction_id: str, seconds: float, now: float | None = None, skew_s: float = 1.0) -> bool:
    """Whether ``prediction_id`` (from :func:`new_prediction_id`) was minted in the last ``seconds``
    (allowing ``skew_s`` of clock difference between replicas); False for any other string."""
    try:
        millis = int(prediction_id[:12], 16)
    except ValueError:
        return False
    age_s = (time.time() if now is None else now) - millis / 1000
    return len(prediction_id) == 32 and -skew_s <= age_s <= seconds


logger = logging.getLogger(__name__)

_WARN_EVERY_S = 10.0
# why a row was dropped: the label values of driftline_prediction_log_dropped_total
BUFFER_FULL = "buffer_full"
REFUSED = "refused"
SHUTDOWN = "shutdown"
DROP_REASONS = (BUFFER_FULL, REFUSED, SHUTDOWN)


def is_transient(exc: BaseException) -> bool:
    """An error that says the database is unreachable, busy or not ready (retry the same rows later), as
    opposed to one that refuses these rows (a value it will not store, a constraint, or an error that
    is not the database's: isolate them)."""
    if isinstance(exc, DatabaseError):
        return exc.transient
    return isinstance(exc, ConnectionError | TimeoutError)


class _Unavailable(Exception):
    """The database is unreachable: stop splitting, back off, retry what is left."""


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
        self.dropped_by_reason: collections.Counter[str] = collections.Counter()
        self.write_errors = 0
        self._last_drop_warning = 0.0
        self._thread = threading.Thread(target=self._run, name="driftline-predlog", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return len(self._rows)

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_reason.values())

    def offer(self, rows: Sequence[NewPrediction]) -> int:
        """Queue rows for writing; returns how many were accepted (the rest are dropped and counted)."""
        with self._cond:
            room = max(0, self.capacity - len(self._rows))
            accepted = rows[:room] if len(rows) > room else rows
            self._rows.extend(accepted)
            self.offered += len(rows)
            lost = len(rows) - len(accepted)
            if lost:
                self.dropped_by_reason[BUFFER_FULL] += lost
                now = time.monotonic()
                if now - self._last_drop_warning > _WARN_EVERY_S:
                    self._last_drop_warning = now
                    logger.warning(
                        "prediction log full (%d rows waiting): dropped %d rows so far",
                        len(self._rows),
                        self.dropped_by_reason[BUFFER_FULL],
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
        """Flush what is waiting (within ``timeout``) and stop the writer; what is still unwritten then
        is dropped and counted as ``shutdown``."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=max(1.0, timeout))
        self._give_up()
        return flushed

    def _give_up(self) -> None:
        with self._cond:
            left = len(self._rows)
            if not left:
                return
            self._rows.clear()
            self.dropped_by_reason[SHUTDOWN] += left
            self._cond.notify_all()
        logger.error("prediction log closed with %d rows unwritten: dropped", left)

    def _settle(self, n: int, *, reason: str | None = None) -> None:
        """The first ``n`` waiting rows are done: written (``reason`` None) or dropped for ``reason``."""
        with self._cond:
            for _ in range(min(n, len(self._rows))):  # fewer only if close() gave up meanwhile
                self._rows.popleft()
            if reason is None:
                self.written += n
            else:
                self.dropped_by_reason[reason] += n
            self._cond.notify_all()

    def _write_isolating(self, rows: Sequence[NewPrediction]) -> None:
        """Write ``rows``; where the database refuses them, split until the refused rows stand alone and
        drop only those. Raises :class:`_Unavailable` when the database cannot be reached; rows written
        or dropped before that are settled, the rest stay first in the queue."""
        try:
            self._write(rows)
        except Exception as exc:  # sorted below: unreachable (wait) or refused (isolate)
            self.write_errors += 1
            if is_transient(exc):
                raise _Unavailable(str(exc)) from exc
            if len(rows) == 1:
                logger.warning(
                    "prediction log: the database refused prediction %s (dropped): %s", rows[0].id, exc
                )
                self._settle(1, reason=REFUSED)
                return
            logger.info(
                "prediction log: the database refused a batch of %d rows (%s); isolating the refused rows",
                len(rows),
                type(exc).__name__,
            )
            half = len(rows) // 2
            self._write_isolating(rows[:half])
            self._write_isolating(rows[half:])
            return
        self._settle(len(rows))

    def _run(self) -> None:
        backoff = 0.1
        outages = 0
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
                self._write_isolating(chunk)
            except _Unavailable as exc:  # the database is down or slow; keep the rows
                outages += 1
                if outages == 1 or outages % 20 == 0:
                    logger.warning(
                        "prediction log: database unavailable (%d rows waiting, %d failed writes): %s",
                        len(self._rows),
                        self.write_errors,
                        exc,
                    )
                time.sleep(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)
                if self._closing and backoff >= self.max_backoff_s:
                    self._give_up()
                    return
                continue
            backoff = 0.1
