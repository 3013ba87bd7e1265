"""The scheduler process: ``driftline scheduler``.

APScheduler 3 runs the jobs on intervals in this process. Several replicas may run; a database lease
decides which one acts: every tick first takes or renews the lease ``driftline-scheduler``, and a
replica that does not hold it stands by. The jobs' state lives in Driftline's own tables (checks,
runs), so the job store is in memory: APScheduler 3 does not coordinate processes that share a
SQLAlchemy job store, and the interval jobs are declared anew at every start.

Jobs: the drift check (``DRIFTLINE_CHECK_INTERVAL_S``), each one preceded by the post-promotion guard
(``monitor.guard``: a promoted champion significantly worse than the version it replaced, on the
labeled rows it served since, is rolled back); the dispatcher (``DRIFTLINE_DISPATCH_INTERVAL_S``),
which runs the drift checks asked for through the control API (``check_requests``), notices at once
when a run process it launched died, and starts the oldest queued run through a
:class:`orchestration.launch.Launcher`, one at a time (``DRIFTLINE_LAUNCHER=none``: it only queues); and the
reaper, for runs whose heartbeat stopped (processes this replica did not launch, or lost with a
previous scheduler).

A run whose process died without recording an outcome is queued again with the same id after a
back-off that doubles per attempt (``DRIFTLINE_RETRY_BACKOFF_S``), until ``DRIFTLINE_MAX_ATTEMPTS``
attempts; then it fails. A run that failed through a Python exception marked itself failed and is not
retried: the same code on the same data would fail the same way.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from monitor.guard import GuardStatus
from monitor.job import CheckRecord, NothingNew, run_drift_check
from monitor.settings import MonitorSettings
from orchestration.guard_job import CachedScorer, GuardOutcome, guard_champion
from orchestration.launch import Launcher, describe_exit, make_launcher
from registry.artifacts import ArtifactStore
from registry.entities import CheckRequestStatus
from registry.errors import DriftlineError, InvalidInputError, NotFoundError
from registry.store import Registry
from registry.store.retention import PruneResult

logger = logging.getLogger(__name__)

LEASE = "driftline-scheduler"


class MonitorScheduler:
    def __init__(
        self,
        registry: Registry,
        artifacts: ArtifactStore,
        model_name: str,
        settings: MonitorSettings,
        launcher: Launcher | None = None,
    ) -> None:
        """``launcher`` defaults to the one ``settings.launcher`` names (``None`` for ``none``)."""
        self.launcher = launcher if launcher is not None else make_launcher(settings.launcher, settings)
        self.registry = registry
        self.artifacts = artifacts
        self.model_name = model_name
        self.settings = settings
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._scheduler = None
        self._scorer = CachedScorer(artifacts)
        self.last_guard: GuardOutcome | None = None
        self._guard_ended: set[int] = set()  # champion moves whose watch is over (cleared)

    def is_leader(self) -> bool:
        """Take or renew the lease; False when another replica holds it."""
        lease = self.registry.acquire_lease(LEASE, self.holder, self.settings.lease_ttl)
        if lease is None:
            logger.debug("%s stands by: another scheduler holds the lease", self.holder)
        return lease is not None

    def guard_job(self, model_name: str | None = None) -> GuardOutcome | None:
        """Judge the latest promotion (the leader only calls this); roll it back on harm. Never raises:
        a guard that cannot judge now judges at the next check."""
        config = self.settings.guard_config()
        if config is None:
            return None
        try:
            outcome = guard_champion(
                self.registry,
                self.artifacts,
                model_name or self.model_name,
                config,
                self._scorer,
                ended=self._guard_ended,
            )
        except DriftlineError as exc:
            logger.warning("guard skipped: %s", exc.message)
            return None
        except Exception:  # the guard must not stop drift checks
            logger.exception("guard failed")
            return None
        if outcome is not None and outcome.verdict.status is GuardStatus.CLEARED:
            self._guard_ended.add(outcome.event_id)
        if outcome is None or outcome.verdict.status in (GuardStatus.CLEARED, GuardStatus.ROLLBACK):
            self._scorer.release()
        last = self.last_guard.verdict if self.last_guard is not None else None
        if outcome is not None and (
            last is None or (last.status, last.look) != (outcome.verdict.status, outcome.verdict.look)
        ):
            logger.info("guard %s v%s: %s", self.model_name, outcome.champion, outcome.verdict.reason)
        self.last_guard = outcome
        return outcome

    def check_job(self) -> CheckRecord | None:
        if not self.is_leader():
            return None
        self.guard_job()
        try:
            return run_drift_check(
                self.registry,
                self.artifacts,
                self.model_name,
                self.settings.monitor_config(),
                skip_unchanged=True,
            )
        except NothingNew as exc:
            logger.debug("drift check skipped: %s", exc.message)
        except (InvalidInputError, NotFoundError) as exc:  # no champion yet, or too few predictions
            logger.info("drift check skipped: %s", exc.message)
        except DriftlineError as exc:
            logger.warning("drift check failed: %s", exc.message)
        return None

    def reap_job(self) -> list[int]:
        """Retry (or fail) running runs whose heartbeat stopped ``reap_after_s`` ago; returns their ids."""
        if not self.is_leader():
            return []
        cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.reap_after_s)
        reaped = self.registry.reap_runs(
            heartbeat_before=cutoff,
            max_attempts=self.settings.max_attempts,
            backoff_s=self.settings.retry_backoff_s,
        )
        return [run.id for run in reaped]

    def prune_job(self) -> PruneResult | None:
        """Delete predictions past ``prediction_retention_days`` (the leader only; off at 0). Each
        version's latest ``window_size`` rows and every labeled row stay."""
        days = self.settings.prediction_retention_days
        if days <= 0 or not self.is_leader():
            return None
        try:
            return self.registry.prediction_log.prune(
                datetime.now(UTC) - timedelta(days=days),
                keep_latest=self.settings.window_size,
                batch_size=self.settings.prune_batch_size,
            )
        except DriftlineError as exc:
            logger.warning("prediction log not pruned: %s", exc.message)
            return None

    def dispatch_job(self) -> int | None:
        """The frequent tick: notice dead children, run requested checks, start the oldest queued run.

        Returns the id of the run it started, if any. Only the leader handles requests and starts runs;
        children this replica launched are looked after whether it leads or not.
        """
        self.notice_exited_runs()
        if not self.is_leader():
            return None
        self.handle_check_requests()
        if self.launcher is None or self.launcher.active():
            return None
        run = self.registry.next_queued_run(self.model_name)
        if run is None:
            return None
        self.launcher.launch(run.id)
        return run.id

    def notice_exited_runs(self) -> list[int]:
        """Retry (or fail) runs whose process ended while their record still says ``running``.

        That process was killed (a signal, the OOM killer) before it could record an outcome; waiting
        ``reap_after_s`` for its heartbeat to go stale would only waste that time.
        """
        if self.launcher is None:
            return []
        retried = []
        for run_id, code in self.launcher.exited().items():
            run = self.registry.retry_or_fail_run(
                run_id,
                f"process exited with {describe_exit(code)}",
                max_attempts=self.settings.max_attempts,
                backoff_s=self.settings.retry_backoff_s,
            )
            if run is not None:
                retried.append(run_id)
        return retried

    def handle_check_requests(self, limit: int = 5) -> list[int]:
        """Run the drift checks asked for through the control API, oldest first; returns request ids.

        A check that cannot run (no champion, too few predictions) fails the request with the reason.
        """
        handled = []
        for request in self.registry.list_check_requests(CheckRequestStatus.PENDING, limit=limit):
            self.guard_job(request.model_name)  # a check on demand sees the champion the guard left
            try:
                record = run_drift_check(
                    self.registry, self.artifacts, request.model_name, self.settings.monitor_config()
                )
            except DriftlineError as exc:
                logger.info("check request %s failed: %s", request.id, exc.message)
                self.registry.finish_check_request(request.id, error=exc.message)
            except Exception as exc:  # a request left pending would be retried every tick
                logger.exception("check request %s failed", request.id)
                self.registry.finish_check_request(request.id, error=f"{type(exc).__name__}: {exc}")
            else:
                self.registry.finish_check_request(request.id, drift_check_id=record.check.id)
            handled.append(request.id)
        return handled

    def start(self, *, blocking: bool = True) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.schedulers.blocking import BlockingScheduler

        cls = BlockingScheduler if blocking else BackgroundScheduler
        scheduler = cls(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}, timezone="UTC"
        )
        interval = self.settings.check_interval_s
        scheduler.add_job(
            self.check_job, "interval", seconds=interval, id="drift_check", next_run_time=datetime.now(UTC)
        )
        scheduler.add_job(self.reap_job, "interval", seconds=max(30.0, interval), id="reap")
        scheduler.add_job(
            self.dispatch_job, "interval", seconds=self.settings.dispatch_interval_s, id="dispatch"
        )
        if self.settings.prediction_retention_days > 0:
            scheduler.add_job(self.prune_job, "interval", seconds=self.settings.prune_interval_s, id="prune")
        self._scheduler = scheduler
        logger.info(
            "scheduler %s: drift check every %.0f s on model '%s'; queued runs start via %s",
            self.holder,
            interval,
            self.model_name,
            type(self.launcher).__name__
            if self.launcher is not None
            else "another dispatcher (launcher none)",
        )
        scheduler.start()

    def stop(self) -> None:
        from apscheduler.schedulers import SchedulerNotRunningError

        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=True)
            except SchedulerNotRunningError:
                pass
        self.registry.release_lease(LEASE, self.holder)
