"""Runs whose process died are queued again with a doubling back-off, keep their id, and fail after
``max_attempts``; runs that failed through an exception stay failed. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.settings import MonitorSettings
from orchestration.scheduler import MonitorScheduler
from registry import entities as e
from registry.artifacts import LocalArtifactStore
from registry.store import Registry
from tests.fakes import SleepLauncher


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clocked(registry: Registry) -> tuple[Registry, FakeClock]:
    clock = FakeClock()
    registry.ensure_model("sentiment")
    return Registry(registry.engine, clock=clock), clock


def reap(store: Registry, clock: FakeClock) -> list[e.RetrainRun]:
    """An hour passes without a heartbeat; the reaper looks (stale after 10 minutes)."""
    clock.now += timedelta(hours=1)
    return store.reap_runs(heartbeat_before=clock.now - timedelta(minutes=10), max_attempts=3, backoff_s=60)


def test_dead_run_is_retried_with_doubling_backoff_then_fails(clocked: tuple[Registry, FakeClock]) -> None:
    store, clock = clocked
    run = store.create_run("sentiment", trigger=e.RunTrigger.DRIFT, config={})
    for attempt, backoff in ((1, 60), (2, 120)):
        assert store.claim_run(run.id).attempts == attempt
        (retry,) = reap(store, clock)
        assert retry.id == run.id and retry.status is e.RunStatus.QUEUED
        assert retry.not_before == clock.now + timedelta(seconds=backoff)
        assert retry.error is not None and retry.error.startswith(
            f"attempt {attempt}: heartbeat stopped (last at"
        )
        assert f"retry after {retry.not_before.isoformat()}" in retry.error
        clock.now += timedelta(seconds=backoff - 1)
        assert store.next_queued_run("sentiment") is None  # still backing off
        clock.now += timedelta(seconds=1)
        assert store.next_queued_run("sentiment") == retry  # same run, same id
    assert store.claim_run(run.id).not_before is None
    (failed,) = reap(store, clock)
    assert failed.status is e.RunStatus.FAILED and failed.attempts == 3
    assert failed.error is not None and "heartbeat stopped" in failed.error
    assert failed.error.endswith("gave up after 3 attempts") and failed.finished_at == clock.now
    assert store.next_queued_run() is None
    assert reap(store, clock) == []


def test_a_new_run_is_not_held_up_by_a_retry_that_waits(clocked: tuple[Registry, FakeClock]) -> None:
    store, clock = clocked
    old = store.create_run("sentiment", trigger=e.RunTrigger.DRIFT, config={})
    store.claim_run(old.id)
    reap(store, clock)
    new = store.create_run("sentiment", trigger=e.RunTrigger.MANUAL, config={})
    assert store.next_queued_run() == store.get_run(new.id)


def test_runs_that_recorded_a_failure_stay_failed(registry: Registry) -> None:
    run = registry.create_run("sentiment", trigger=e.RunTrigger.MANUAL, status=e.RunStatus.RUNNING, config={})
    registry.finish_run(run.id, e.RunStatus.FAILED, error="ValueError: bad data")
    assert registry.retry_or_fail_run(run.id, "process exited with 1", max_attempts=3, backoff_s=0) is None
    kept = registry.get_run(run.id)
    assert kept.status is e.RunStatus.FAILED and kept.error == "ValueError: bad data"
    once = registry.create_run(
        "sentiment", trigger=e.RunTrigger.MANUAL, status=e.RunStatus.RUNNING, config={}
    )
    failed = registry.retry_or_fail_run(once.id, "process exited with 1", max_attempts=1, backoff_s=0)
    assert failed is not None and failed.status is e.RunStatus.FAILED
    assert failed.error == "process exited with 1; gave up after 1 attempt"


@pytest.fixture
def dispatcher(
    registry: Registry, artifacts: LocalArtifactStore
) -> Iterator[tuple[MonitorScheduler, SleepLauncher, e.RetrainRun]]:
    """A scheduler whose launcher's children are ``sleep 60``, and one queued run, started and killed.

    The run is claimed (what the training process does first), then its child gets SIGKILL.
    """
    registry.ensure_model("sentiment")
    launcher = SleepLauncher()
    s = MonitorScheduler(registry, artifacts, "sentiment", MonitorSettings(max_attempts=2), launcher)
    run = registry.create_run("sentiment", trigger=e.RunTrigger.DRIFT, config={})
    try:
        assert s.dispatch_job() == run.id
        registry.claim_run(run.id)
        launcher.kill(run.id)
        yield s, launcher, run
    finally:
        for run_id in launcher.active():
            launcher.kill(run_id)
        s.stop()


def test_dispatcher_notices_a_killed_child_at_once(
    dispatcher: tuple[MonitorScheduler, SleepLauncher, e.RetrainRun],
) -> None:
    s, launcher, run = dispatcher
    s.settings = s.settings.model_copy(update={"retry_backoff_s": 0})
    registry = s.registry
    assert s.dispatch_job() == run.id  # noticed, queued again (no back-off) and started again
    retried = registry.get_run(run.id)
    assert retried.attempts == 1 and retried.status is e.RunStatus.QUEUED
    assert retried.error is not None
    assert retried.error.startswith("attempt 1: process exited with -9 (SIGKILL); retry after")
    registry.claim_run(run.id)
    launcher.kill(run.id)
    assert s.dispatch_job() is None
    failed = registry.get_run(run.id)
    assert failed.status is e.RunStatus.FAILED and failed.attempts == 2
    assert failed.error == "process exited with -9 (SIGKILL); gave up after 2 attempts"

    crashed = registry.create_run("sentiment", trigger=e.RunTrigger.MANUAL, config={})
    assert s.dispatch_job() == crashed.id
    registry.claim_run(crashed.id)
    registry.finish_run(crashed.id, e.RunStatus.FAILED, error="RuntimeError: out of labels")
    launcher.kill(crashed.id)
    assert s.dispatch_job() is None
    assert registry.get_run(crashed.id).error == "RuntimeError: out of labels"  # not retried


def test_backoff_holds_the_dispatcher(
    dispatcher: tuple[MonitorScheduler, SleepLauncher, e.RetrainRun],
) -> None:
    s, _, run = dispatcher  # default back-off: 60 s after the first attempt
    assert s.dispatch_job() is None  # queued again, not before a minute from now
    waiting = s.registry.get_run(run.id)
    assert waiting.status is e.RunStatus.QUEUED and waiting.not_before is not None
    assert waiting.not_before > datetime.now(UTC) + timedelta(seconds=50)
