"""The scheduler: one leader acts, a second replica stands by; dead runs are reaped; jobs run on time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.settings import MonitorSettings
from orchestration.scheduler import LEASE, MonitorScheduler
from registry.artifacts import LocalArtifactStore
from registry.entities import RunStatus, RunTrigger
from registry.settings import Settings
from registry.store import Registry
from tests.integration.test_drift_job import serve
from tests.textgen import topic_rows


def scheduler(home: Path, **overrides: float) -> MonitorScheduler:
    settings = Settings(home=home)
    return MonitorScheduler(
        Registry.open(settings),
        LocalArtifactStore(settings.artifact_root),
        "sentiment",
        MonitorSettings(
            check_interval_s=overrides.get("interval", 60.0),
            min_window_rows=20,
            lease_ttl_s=overrides.get("ttl", 60.0),
        ),
    )


def test_one_replica_acts_the_other_stands_by(served_home: Path) -> None:
    serve(served_home, [r["text"] for r in topic_rows(40, seed=8)], wrong_labels=False)
    a, b = scheduler(served_home), scheduler(served_home)
    assert a.check_job() is not None
    assert b.check_job() is None  # a holds the lease
    assert a.check_job() is None  # nothing was served since its last check: nothing to check
    serve(served_home, [r["text"] for r in topic_rows(10, seed=9)], wrong_labels=False)
    assert a.check_job() is not None
    assert len(a.registry.list_drift_checks("sentiment")) == 2
    a.stop()  # releases the lease: b takes over
    serve(served_home, [r["text"] for r in topic_rows(10, seed=10)], wrong_labels=False)
    assert b.check_job() is not None
    assert a.registry.get_lease(LEASE).holder == b.holder  # type: ignore[union-attr]
    b.stop()


def test_reaper_retries_then_fails_runs_whose_heartbeat_stopped(served_home: Path) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    past = Registry(Registry.open(Settings(home=served_home)).engine, clock=lambda: old)
    dead = past.create_run("sentiment", trigger=RunTrigger.MANUAL, status=RunStatus.RUNNING, config={})
    alive = Registry.open(Settings(home=served_home)).create_run(
        "sentiment", trigger=RunTrigger.MANUAL, status=RunStatus.RUNNING, config={}
    )
    s = scheduler(served_home)
    assert s.reap_job() == [dead.id]
    retried = s.registry.get_run(dead.id)
    assert retried.status is RunStatus.QUEUED and "attempt 1: heartbeat stopped" in (retried.error or "")
    assert s.registry.get_run(alive.id).status is RunStatus.RUNNING
    s.settings = s.settings.model_copy(update={"max_attempts": 1})
    past.claim_run(dead.id)  # its second attempt dies too
    assert s.reap_job() == [dead.id]
    reaped = s.registry.get_run(dead.id)
    assert reaped.status is RunStatus.FAILED and "gave up after 2 attempts" in (reaped.error or "")
    s.stop()


def test_background_scheduler_checks_on_its_interval(served_home: Path) -> None:
    serve(served_home, [r["text"] for r in topic_rows(40, seed=9)], wrong_labels=False)
    s = scheduler(served_home, interval=1.0, ttl=5.0)
    s.start(blocking=False)
    try:
        deadline = time.monotonic() + 30
        while len(s.registry.list_drift_checks("sentiment")) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        serve(served_home, [r["text"] for r in topic_rows(10, seed=10)], wrong_labels=False)  # new rows
        while len(s.registry.list_drift_checks("sentiment")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        s.stop()
    assert len(s.registry.list_drift_checks("sentiment")) >= 2
    assert s.registry.get_lease(LEASE) is None  # released at stop


class RecordingLauncher:
    def __init__(self) -> None:
        self.launched: list[int] = []
        self.busy: list[int] = []

    def launch(self, run_id: int) -> None:
        self.launched.append(run_id)
        self.busy = [run_id]

    def active(self) -> list[int]:
        return self.busy

    def exited(self) -> dict[int, int]:
        return {}


def test_dispatcher_starts_the_oldest_queued_run_one_at_a_time(served_home: Path) -> None:
    s = scheduler(served_home)
    fake = RecordingLauncher()
    s.launcher = fake
    assert s.dispatch_job() is None  # nothing queued
    first = s.registry.create_run("sentiment", trigger=RunTrigger.DRIFT, config={})
    second = s.registry.create_run("sentiment", trigger=RunTrigger.MANUAL, config={})
    assert s.dispatch_job() == first.id
    assert s.dispatch_job() is None  # ours is still going
    fake.busy = []
    s.registry.claim_run(first.id)
    assert s.dispatch_job() == second.id
    assert fake.launched == [first.id, second.id]
    s.stop()


def test_subprocess_launcher_runs_the_retrain_module(served_home: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from orchestration.launch import SubprocessLauncher

    monkeypatch.setenv("DRIFTLINE_HOME", str(served_home))
    s = scheduler(served_home)
    s.launcher = SubprocessLauncher()
    run = s.registry.create_run("sentiment", trigger=RunTrigger.MANUAL, config={})
    assert s.dispatch_job() == run.id
    deadline = time.monotonic() + 120
    while s.launcher.active() and time.monotonic() < deadline:
        time.sleep(0.2)
    done = s.registry.get_run(run.id)
    assert done.status is RunStatus.SKIPPED and "new labelled texts" in (done.error or "")
    s.stop()
