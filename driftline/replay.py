"""Replay a labeled stream through a running Driftline over HTTP, as production traffic would reach it.

Rows go to ``/predict`` in order, a few texts per request; each row's true label goes to ``/feedback``
only ``label_delay`` rows later (labels arrive late in real life), and only for a seeded
``label_fraction`` share of rows. Every served answer is recorded with the model version that gave it,
so accuracy can be scored per window, per domain and per version afterwards.

The scheduler runs on its own clock. With ``hold_during_runs`` the replay stops sending while a
retraining run is queued or running, and after a promotion waits until the service has hot-swapped to
the new champion: on a small machine a run takes minutes, and without the hold a short stream would be
over before the run ends.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from registry.errors import DriftlineError, ErrorCode

logger = logging.getLogger(__name__)

IN_FLIGHT = ("queued", "running")


@dataclass(frozen=True)
class StreamRow:
    text: str
    label: str
    domain: str | None = None


@dataclass(frozen=True)
class ReplayOptions:
    batch_size: int = 8  # texts per /predict request
    label_delay: int = 50  # a row's label is sent after this many later rows
    label_fraction: float = 1.0  # share of rows that ever get a label (seeded)
    rate: float | None = None  # rows per second; None: as fast as the service answers
    hold_during_runs: bool = True
    # Deterministic pacing: ask for a drift check every ``check_every`` rows (through the control API)
    # and wait for it and any run it queues; or queue a run every ``run_every`` rows regardless of drift.
    check_every: int | None = None
    run_every: int | None = None
    check_timeout_s: float = 300.0
    poll_interval_s: float = 1.0  # how often the replay looks for queued or running runs
    run_timeout_s: float = 1200.0  # the longest a hold may last
    swap_timeout_s: float = 300.0
    seed: int = 0


@dataclass(frozen=True)
class ServedRow:
    index: int
    domain: str | None
    label: str
    predicted: str
    version: int
    at: float  # seconds since the replay started
    labeled: bool


@dataclass
class Hold:
    """Traffic held while a run trained: from which row, how long, and what came of it."""

    run_ids: list[int]
    row: int
    started: float
    ended: float = 0.0
    champion_before: int | None = None
    champion_after: int | None = None

    @property
    def swapped(self) -> bool:
        return self.champion_after is not None and self.champion_after != self.champion_before


@dataclass
class ReplayLog:
    served: list[ServedRow] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    labels_sent: int = 0
    checks: list[dict[str, Any]] = field(default_factory=list)  # check requests made (deterministic mode)
    seconds: float = 0.0
    interrupted: bool = False
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class DriftlineClient:
    """The few HTTP calls the replay makes: predict, feedback, runs, champion, served version."""

    def __init__(self, base_url: str, *, model_name: str, token: str | None, timeout_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s)
        self.model_name = model_name

    def close(self) -> None:
        self.http.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise DriftlineError(
                f"{method} {path} answered {response.status_code}: {response.text[:300]}",
                code=ErrorCode.UNAVAILABLE,
            )
        return response.json()

    def wait_ready(self, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive():
                raise DriftlineError("the service exited before it was ready", code=ErrorCode.UNAVAILABLE)
            try:
                if self.http.get("/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise DriftlineError(f"the service was not ready after {timeout_s:.0f} s", code=ErrorCode.UNAVAILABLE)

    def predict(self, texts: Sequence[str]) -> tuple[int, list[dict[str, Any]]]:
        body = self._json("POST", "/predict", json={"texts": list(texts)})
        return int(body["model_version"]), body["predictions"]

    def feedback(self, items: Sequence[dict[str, Any]]) -> int:
        return int(self._json("POST", "/feedback", json={"items": list(items)})["accepted"])

    def request_check(self) -> int:
        return int(self._json("POST", "/api/checks", json={"model_name": self.model_name})["id"])

    def check_request(self, request_id: int) -> dict[str, Any]:
        return self._json("GET", f"/api/checks/requests/{request_id}")

    def queue_run(self, reason: str) -> int:
        body = {"model_name": self.model_name, "reason": reason}
        return int(self._json("POST", "/api/runs", json=body)["id"])

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._json("GET", "/api/runs", params={"model_name": self.model_name, "limit": limit})

    def champion_version(self) -> int | None:
        response = self.http.get(f"/api/models/{self.model_name}/aliases/champion")
        return int(response.json()["version"]) if response.status_code == 200 else None

    def served_version(self) -> int | None:
        """The version the service has loaded, from its Prometheus gauge ``driftline_model_version``."""
        text = self.http.get("/metrics").text
        pattern = rf'^driftline_model_version\{{[^}}]*model="{re.escape(self.model_name)}"[^}}]*\}} (\S+)'
        match = re.search(pattern, text, re.MULTILINE)
        return int(float(match.group(1))) if match else None


Progress = Callable[[str], None]


class Replayer:
    def __init__(self, client: DriftlineClient, options: ReplayOptions, progress: Progress = print) -> None:
        self.client = client
        self.options = options
        self.say = progress
        self.log = ReplayLog()
        self._pending: deque[tuple[int, dict[str, Any]]] = deque()  # (row index due, feedback item)
        self._rng = random.Random(options.seed)
        self._last_poll = 0.0
        self._held_s = 0.0

    def run(
        self, rows: Sequence[StreamRow], *, on_batch: Callable[[ReplayLog], None] | None = None
    ) -> ReplayLog:
        """Send every row; returns the log (also kept on Ctrl-C, with ``interrupted`` set)."""
        opts = self.options
        start = time.monotonic()
        self.log.started_at = datetime.now(UTC)
        try:
            for first in range(0, len(rows), opts.batch_size):
                self._pace(start, first)
                self._send(rows[first : first + opts.batch_size], first, start)
                sent = min(first + opts.batch_size, len(rows))
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
                    run_id = self.client.queue_run(f"policy every-window: row {sent}")
                    self.say(f"  row {sent}: run {run_id} queued (every window)")
                    self._hold_while_training(row=sent, start=start)
                elif opts.hold_during_runs and time.monotonic() - self._last_poll >= opts.poll_interval_s:
                    self._hold_while_training(row=sent, start=start)
            self._release_labels(due=len(rows) + opts.label_delay)
        except KeyboardInterrupt:
            self.log.interrupted = True
            self.say("interrupted: keeping what was replayed so far")
        self.log.seconds = time.monotonic() - start
        return self.log

    def _pace(self, start: float, row: int) -> None:
        if self.options.rate:
            wait = start + self._held_s + row / self.options.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def _send(self, batch: Sequence[StreamRow], first: int, start: float) -> None:
        version, predictions = self.client.predict([r.text for r in batch])
        at = time.monotonic() - start
        for offset, (row, pred) in enumerate(zip(batch, predictions, strict=True)):
            index = first + offset
            labeled = self._rng.random() < self.options.label_fraction
            self.log.served.append(
                ServedRow(index, row.domain, row.label, pred["label"], version, at, labeled)
            )
            if labeled:
                item = {"prediction_id": pred["prediction_id"], "label": row.label, "domain": row.domain}
                self._pending.append((index + self.options.label_delay, item))

    def _release_labels(self, due: int) -> None:
        items = []
        while self._pending and self._pending[0][0] <= due:
            items.append(self._pending.popleft()[1])
        for chunk in range(0, len(items), 256):
            self.log.labels_sent += self.client.feedback(items[chunk : chunk + 256])

    def finish_runs(self, *, row: int) -> None:
        """Wait for the runs still running at the end of the stream (and any hot swap). Call it once the
        scheduler has stopped: runs still queued then stay queued."""
        try:
            self._hold_while_training(
                row=row, start=time.monotonic() - self.log.seconds, statuses=("running",)
            )
        except KeyboardInterrupt:
            self.log.interrupted = True
            self.say("interrupted: not waiting for the last run")

    def _check_now(self, *, row: int, start: float) -> None:
        """Ask the scheduler for a drift check, wait for it, then wait for any run it queued."""
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
        if hold.swapped:
            self._wait_for_swap(hold.champion_after)  # type: ignore[arg-type]
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
