"""Replay a labeled stream through a running Driftline over HTTP, as production traffic would reach it.

Rows go to ``/predict`` in order, a few texts per request; each row's true label goes to ``/feedback``
only ``label_delay`` rows later (labels arrive late in real life), and only for a seeded
``label_fraction`` share of rows. With a label budget (``label_budget``, a share of the rows), the
replay's labeler answers only what its strategy asks for: ``random`` labels each row with that chance;
``queue`` asks the service's label queue (``GET /api/label-queue``) every ``queue_every`` rows for the
budget those rows earned and labels what it hands out (the replay knows every row's label). Every served answer is recorded with the model version that gave it,
so accuracy can be scored per window, per domain and per version afterwards.

A request the service refuses for what it carries (a 4xx: a text over ``DRIFTLINE_MAX_TEXT_CHARS``, a
body over ``DRIFTLINE_MAX_BODY_BYTES``, a label outside the champion's set) does not end the replay: its
rows are sent again one by one, so only the bad ones are refused; each is counted with the service's
reason and left out of the scores. Only a 5xx, a lost connection or Ctrl-C ends a replay early, and what
was replayed until then is kept.

The scheduler runs on its own clock. With ``hold_during_runs`` the replay stops sending while a
retraining run is queued or running, and after a promotion waits until the service has hot-swapped to
the new champion: on a small machine a run takes minutes, and without the hold a short stream would be
over before the run ends.

The HTTP calls are :mod:`driftline.client`'s; what a stream holds over the service's limits is counted
before anything is sent by :mod:`driftline.preflight`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from driftline.client import DriftlineClient, RequestRefused, predict_body_bytes
from driftline.replay_types import Hold, Refused, ReplayLog, ServedRow, StreamRow
from registry.errors import DriftlineError, ErrorCode

logger = logging.getLogger(__name__)

IN_FLIGHT = ("queued", "running")
FEEDBACK_CHUNK = 256  # labels per /feedback request


@dataclass(frozen=True)
class ReplayOptions:
    batch_size: int = 8  # texts per /predict request
    label_delay: int = 50  # a row's label is sent after this many later rows
    label_fraction: float = 1.0  # share of rows that ever get a label (seeded)
    # a label budget (share of the rows) spent by a strategy: "random" (as label_fraction) or "queue"
    label_budget: float | None = None
    label_strategy: str = "random"
    queue_every: int = 50  # rows between two asks of the label queue (label_strategy "queue")
    rate: float | None = None  # rows per second; None: as fast as the service answers
    hold_during_runs: bool = True
    # Deterministic pacing: ask for a drift check every ``check_every`` rows (through the control API)
    # and wait for it and any run it queues; or queue a run every ``run_every`` rows regardless of drift.
    check_every: int | None = None
    run_every: int | None = None
    check_timeout_s: float = 300.0
    poll_interval_s: float = 1.0  # how often the replay looks for queued or running runs
    # the longest a hold may last: a run on long texts (512 tokens) on a small CPU takes tens of minutes
    run_timeout_s: float = 3600.0
    swap_timeout_s: float = 300.0
    seed: int = 0
    run_config: dict[str, Any] = field(default_factory=dict)  # recorded on the runs the replay queues
    # The service's DRIFTLINE_MAX_BODY_BYTES: a request over it is not sent; its rows go one by one, and a
    # row over it on its own is counted as refused without being sent. None: no limit known.
    max_body_bytes: int | None = None


Progress = Callable[[str], None]


def ended_early_reason(exc: BaseException) -> str:
    """Why a replay stopped before its end, in one line."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGTERM)"
    if isinstance(exc, httpx.TransportError):
        return f"lost the connection to the service ({type(exc).__name__}: {exc})"
    if isinstance(exc, DriftlineError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


class Replayer:
    def __init__(self, client: DriftlineClient, options: ReplayOptions, progress: Progress = print) -> None:
        self.client = client
        self.options = options
        self.say = progress
        self.log = ReplayLog()
        # (row index due, row index, feedback item)
        self._pending: deque[tuple[int, int, dict[str, Any]]] = deque()
        self._rng = random.Random(options.seed)
        self._last_poll = 0.0
        self._held_s = 0.0
        self._reasons_said: set[str] = set()
        # label_strategy "queue": served rows by prediction id (their row index and place in the log),
        # and the budget earned and not yet spent
        self._by_prediction: dict[str, tuple[int, int, StreamRow]] = {}
        self._budget = 0.0
        self._next_ask = options.queue_every

    @property
    def _label_chance(self) -> float:
        """The chance a row is labeled when served: 0 when the label queue decides instead."""
        opts = self.options
        if opts.label_budget is None:
            return opts.label_fraction
        return opts.label_budget if opts.label_strategy == "random" else 0.0

    def run(
        self, rows: Sequence[StreamRow], *, on_batch: Callable[[ReplayLog], None] | None = None
    ) -> ReplayLog:
        """Send every row; returns the log. Rows and labels the service refuses are counted and skipped; a
        5xx, a lost connection or Ctrl-C ends the replay early, with ``interrupted`` and ``ended_early`` set
        and what was replayed kept."""
        opts = self.options
        start = time.monotonic()
        self.log.started_at = datetime.now(UTC)
        try:
            for first in range(0, len(rows), opts.batch_size):
                self._pace(start, first)
                self._send(rows[first : first + opts.batch_size], first, start)
                sent = min(first + opts.batch_size, len(rows))
                self._ask_queue(sent)
                self._release_labels(due=sent - 1)
                if on_batch is not None:
                    on_batch(self.log)
                if (
                    opts.check_every
                    and sent // opts.check_every > (sent - len(rows[first:sent])) // opts.check_every
                ):
                    self._check_now(row=sent, start=start)
                elif (
                    opts.run_every
                    and sent // opts.run_every > (sent - len(rows[first:sent])) // opts.run_every
                ):
                    run_id = self.client.queue_run(
                        f"policy every-window: row {sent}", self.options.run_config
                    )
                    self.say(f"  row {sent}: run {run_id} queued (every window)")
                    self._hold_while_training(row=sent, start=start)
                elif opts.hold_during_runs and time.monotonic() - self._last_poll >= opts.poll_interval_s:
                    self._hold_while_training(row=sent, start=start)
            self._release_labels(due=len(rows) + opts.label_delay)
        except KeyboardInterrupt:
            self.log.interrupted = True
            self.log.ended_early = "interrupted (Ctrl-C or SIGTERM)"
            self.say("interrupted: keeping what was replayed so far")
        except (DriftlineError, httpx.TransportError) as exc:
            self.end_early(exc, rows=len(rows))
        self.log.seconds = time.monotonic() - start
        return self.log

    def end_early(self, exc: BaseException, *, rows: int | None = None) -> None:
        """Record why the replay stops before its end; what was replayed is kept."""
        self.log.interrupted = True
        self.log.ended_early = ended_early_reason(exc)
        done = len(self.log.served) + len(self.log.refused_rows)
        of = f" of {rows:,}" if rows is not None else ""
        logger.warning("replay ended early after %d rows: %s", done, self.log.ended_early)
        self.say(f"the replay ended early after {done:,}{of} rows: {self.log.ended_early}")
        self.say("keeping what was replayed so far")

    def _pace(self, start: float, row: int) -> None:
        if self.options.rate:
            wait = start + self._held_s + row / self.options.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def _send(self, batch: Sequence[StreamRow], first: int, start: float) -> None:
        """One /predict request; if the service refuses it (a 4xx), its rows again one by one, so that
        only the rows it refuses on their own are counted as refused. A request over the service's body
        limit is not sent at all (the service would answer 413 without reading it)."""
        texts = [r.text for r in batch]
        limit = self.options.max_body_bytes
        if limit is not None and predict_body_bytes(texts) > limit:
            if len(batch) == 1:
                self._refuse_row(
                    first,
                    f"not sent: a request with this text alone is over the service's body limit of {limit} "
                    "bytes (DRIFTLINE_MAX_BODY_BYTES)",
                )
            else:
                logger.info("rows %d-%d are over the body limit together", first, first + len(batch) - 1)
                self._send_one_by_one(batch, first, start)
            return
        try:
            version, predictions = self.client.predict(texts)
        except RequestRefused as exc:
            if len(batch) == 1:
                self._refuse_row(first, exc.refusal.reason)
            else:
                logger.info(
                    "rows %d-%d refused together (%s)", first, first + len(batch) - 1, exc.refusal.reason
                )
                self._send_one_by_one(batch, first, start)
            return
        at = time.monotonic() - start
        for offset, (row, pred) in enumerate(zip(batch, predictions, strict=True)):
            index = first + offset
            labeled = self._rng.random() < self._label_chance
            if self.options.label_strategy == "queue" and self.options.label_budget is not None:
                self._by_prediction[pred["prediction_id"]] = (index, len(self.log.served), row)
            self.log.served.append(
                ServedRow(index, row.domain, row.label, pred["label"], version, at, labeled)
            )
            if labeled:
                item = {"prediction_id": pred["prediction_id"], "label": row.label, "domain": row.domain}
                self._pending.append((index + self.options.label_delay, index, item))

    def _ask_queue(self, sent: int) -> None:
        """Label strategy "queue": every ``queue_every`` rows, ask the label queue for the budget the rows
        since the last ask earned, and schedule the label of each item that is a row of this replay
        ``label_delay`` rows from now."""
        opts = self.options
        if opts.label_budget is None or opts.label_strategy != "queue" or sent < self._next_ask:
            return
        self._budget += opts.label_budget * (sent - (self._next_ask - opts.queue_every))
        self._next_ask = sent + opts.queue_every
        want = int(self._budget)
        if want < 1:
            return
        self.log.queue_asks += 1
        items = self.client.label_queue(min(want, 5000))
        for item in items:
            found = self._by_prediction.pop(item["prediction_id"], None)
            if found is None:  # not a row of this replay (a probe of the served version)
                continue
            index, place, row = found
            self._budget -= 1
            self.log.queue_items += 1
            self.log.served[place] = dataclasses.replace(self.log.served[place], labeled=True)
            feedback = {"prediction_id": item["prediction_id"], "label": row.label, "domain": row.domain}
            self._pending.append((sent - 1 + opts.label_delay, index, feedback))

    def _send_one_by_one(self, batch: Sequence[StreamRow], first: int, start: float) -> None:
        for offset, row in enumerate(batch):
            self._send([row], first + offset, start)

    def _refuse_row(self, index: int, reason: str) -> None:
        self._rng.random()  # the draw a served row makes: which rows get labels does not depend on refusals
        self.log.refused_rows.append(Refused(index, reason))
        self._say_first(f"row {index} refused by /predict", reason)

    def _say_first(self, what: str, reason: str) -> None:
        logger.info("%s: %s", what, reason)
        if reason not in self._reasons_said:  # one line per reason, not one per row
            self._reasons_said.add(reason)
            self.say(f"  {what}: {reason} (counted; the replay goes on)")

    def _release_labels(self, due: int) -> None:
        items = []
        while self._pending and self._pending[0][0] <= due:
            items.append(self._pending.popleft()[1:])
        for chunk in range(0, len(items), FEEDBACK_CHUNK):
            self._send_labels(items[chunk : chunk + FEEDBACK_CHUNK])

    def _send_labels(self, items: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """One /feedback request (all or nothing); if it is refused, its items again one by one."""
        try:
            self.log.labels_sent += self.client.feedback([item for _, item in items])
        except RequestRefused as exc:
            if len(items) == 1:
                self.log.refused_labels.append(Refused(items[0][0], exc.refusal.reason))
                self._say_first(f"the label of row {items[0][0]} refused by /feedback", exc.refusal.reason)
                return
            logger.info("%d labels refused together (%s)", len(items), exc.refusal.reason)
            for item in items:
                self._send_labels([item])

    def finish_runs(self, *, row: int) -> None:
        """Wait for the runs still running at the end of the stream (and any hot swap). Call it once the
        scheduler has stopped: runs still queued then stay queued."""
        try:
            self._hold_while_training(
                row=row, start=time.monotonic() - self.log.seconds, statuses=("running",)
            )
        except KeyboardInterrupt:
            self.log.interrupted = True
            self.log.ended_early = "interrupted (Ctrl-C or SIGTERM) while waiting for the last run"
            self.say("interrupted: not waiting for the last run")
        except (DriftlineError, httpx.TransportError) as exc:
            self.end_early(exc)

    def _check_now(self, *, row: int, start: float) -> None:
        """Ask the scheduler for a drift check, wait for it, then wait for any run it queued. The
        scheduler's guard runs before the check: when it rolled the champion back, wait for the swap."""
        champion_before = self.client.champion_version()
        request_id = self.client.request_check()
        deadline = time.monotonic() + self.options.check_timeout_s
        while (request := self.client.check_request(request_id))["status"] == "pending":
            if time.monotonic() > deadline:
                raise DriftlineError(
                    f"drift check request {request_id} still pending after {self.options.check_timeout_s:.0f} s: "
                    "is the scheduler running?",
                    code=ErrorCode.UNAVAILABLE,
                )
            time.sleep(0.2)
        self.log.checks.append({"row": row, "request": request_id, **request})
        champion_after = self.client.champion_version()
        if champion_after is not None and champion_after != champion_before:
            self.say(f"  row {row}: champion moved v{champion_before} -> v{champion_after} (a rollback)")
            self._wait_for_swap(champion_after)
        self._hold_while_training(row=row, start=start)

    def _hold_while_training(self, *, row: int, start: float, statuses: tuple[str, ...] = IN_FLIGHT) -> None:
        self._last_poll = time.monotonic()
        in_flight = [r for r in self.client.runs() if r["status"] in statuses]
        if not in_flight:
            return
        hold = Hold(
            run_ids=[r["id"] for r in in_flight],
            row=row,
            started=time.monotonic() - start,
            champion_before=self.client.champion_version(),
        )
        self.say(
            f"  row {row}: run {', '.join(map(str, hold.run_ids))} queued; holding traffic while it trains"
        )
        deadline = time.monotonic() + self.options.run_timeout_s
        while in_flight:
            if time.monotonic() > deadline:
                raise DriftlineError(
                    f"run(s) {hold.run_ids} still in flight after {self.options.run_timeout_s:.0f} s",
                    code=ErrorCode.UNAVAILABLE,
                )
            time.sleep(self.options.poll_interval_s)
            runs = self.client.runs()
            in_flight = [r for r in runs if r["status"] in statuses]
            hold.run_ids = sorted(set(hold.run_ids) | {r["id"] for r in in_flight})
        for run in (r for r in runs if r["id"] in hold.run_ids):
            detail = run.get("error") or ""
            self.say(f"  run {run['id']} {run['status']}{': ' + detail if detail else ''}")
        hold.champion_after = self.client.champion_version()
        if hold.swapped and hold.champion_after is not None:
            self._wait_for_swap(hold.champion_after)
        hold.ended = time.monotonic() - start
        self._held_s += hold.ended - hold.started
        self.log.holds.append(hold)

    def _wait_for_swap(self, version: int) -> None:
        """Wait until the service serves ``version``. A slow swap is reported, not fatal: every answer
        records the version that gave it, so the scores stay right either way."""
        deadline = time.monotonic() + self.options.swap_timeout_s
        while (served := self.client.served_version()) != version:
            if time.monotonic() > deadline:
                self.say(
                    f"  the service still serves v{served} {self.options.swap_timeout_s:.0f} s after v{version} "
                    "was promoted; going on"
                )
                return
            time.sleep(0.5)
        self.say(f"  hot swap: the service now serves v{version}")
