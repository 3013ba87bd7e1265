"""The scheduler process: ``driftline scheduler``.

APScheduler 3 runs the jobs on intervals in this process. Several replicas may run; a database lease
decides which one acts: every tick first takes or renews the lease ``driftline-scheduler``, and a
replica that does not hold it stands by. The jobs' state lives in Driftline's own tables (checks,
runs), so the job store is in memory: APScheduler 3 does not coordinate processes that share a
SQLAlchemy job store, and the interval jobs are declared anew at every start.

Jobs: the drift check (``DRIFTLINE_CHECK_INTERVAL_S``), the dispatcher (starts the oldest queued run
through a :class:`monitor.launch.Launcher`, one at a time), and the reaper, which fails runs whose
heartbeat stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from monitor.job import CheckRecord, run_drift_check
from monitor.launch import Launcher, SubprocessLauncher
from monitor.settings import MonitorSettings
from registry.artifacts import ArtifactStore
from registry.errors import DriftlineError, InvalidInputError, NotFoundError
from registry.store import Registry

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
        self.launcher = launcher or SubprocessLauncher()
        self.registry = registry
        self.artifacts = artifacts
        self.model_name = model_name
        self.settings = settings
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._scheduler = None

    def is_leader(self) -> bool:
        """Take or renew the lease; False when another replica holds it."""
        lease = self.registry.acquire_lease(LEASE, self.holder, self.settings.lease_ttl)
        if lease is None:
            logger.debug("%s stands by: another scheduler holds the lease", self.holder)
        return lease is not None

    def check_job(self) -> CheckRecord | None:
        if not self.is_leader():
            return None
        try:
            return run_drift_check(
                self.registry, self.artifacts, self.model_name, self.settings.monitor_config()
            )
        except (InvalidInputError, NotFoundError) as exc:  # no champion yet, or too few predictions
            logger.info("drift check skipped: %s", exc.message)
        except DriftlineError as exc:
            logger.warning("drift check failed: %s", exc.message)
        return None

    def reap_job(self) -> list[int]:
        if not self.is_leader():
            return []
        cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.reap_after_s)
        reaped = self.registry.reap_runs(heartbeat_before=cutoff)
        for run_id in reaped:
            logger.warning("run %s failed: its heartbeat stopped before %s", run_id, cutoff.isoformat())
        return reaped

    def dispatch_job(self) -> int | None:
        """Start the oldest queued run when none of ours is going; returns its id."""
        if not self.is_leader() or self.launcher.active():
            return None
        run = self.registry.next_queued_run(self.model_name)
        if run is None:
            return None
        self.launcher.launch(run.id)
        return run.id

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
        self._scheduler = scheduler
        logger.info(
            "scheduler %s: drift check every %.0f s on model '%s'", self.holder, interval, self.model_name
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
