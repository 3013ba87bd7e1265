"""Two ``driftline scheduler`` processes against one PostgreSQL database: one drift episode queues
exactly one run, only the lease holder checks, and when the leader is killed (SIGKILL, no clean-up)
the other takes over once the lease has expired."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.scheduler import LEASE
from registry.entities import RunStatus, RunTrigger
from registry.settings import Settings
from registry.store import Registry
from tests.integration.test_drift_job import drifted_texts, serve

ROOT = Path(__file__).resolve().parents[2]
SCHEDULER_ENV = {
    "DRIFTLINE_CHECK_INTERVAL_S": "1",
    "DRIFTLINE_DISPATCH_INTERVAL_S": "0.5",  # also renews the lease while a slow check runs
    "DRIFTLINE_LEASE_TTL_S": "3",
    "DRIFTLINE_WINDOW_SIZE": "150",
    "DRIFTLINE_DRIFT_PERSISTENCE": "2",
    "DRIFTLINE_MIN_NEW_LABELS": "10",
    "DRIFTLINE_COOLDOWN_S": "86400",
    "DRIFTLINE_LAUNCHER": "none",  # queue only: this test must not start a training run
}
CHECK_LOG = re.compile(r"drift check (\d+) on sentiment")


def start_scheduler(log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **SCHEDULER_ENV}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "driftline", "scheduler"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def wait_until(condition, what: str, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


@contextlib.contextmanager
def traffic(home: Path) -> Iterator[None]:
    """Drifted, wrongly labeled predictions every half second: each scheduler tick has a new window."""
    stop = threading.Event()

    def send() -> None:
        batch = 0
        while not stop.wait(0.5):
            batch += 1
            serve(home, [f"{t} (batch {batch})" for t in drifted_texts(5)], wrong_labels=True)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def checks_logged(log: Path) -> list[int]:
    return [int(n) for n in CHECK_LOG.findall(log.read_text(errors="replace"))]


@pytest.mark.postgres
@pytest.mark.parametrize("served_home_db", ["postgresql"], indirect=True)
def test_two_scheduler_processes_queue_one_run_per_episode(served_home_db: Path, tmp_path: Path) -> None:
    serve(served_home_db, drifted_texts(150), wrong_labels=True)
    store = Registry.open(Settings(home=served_home_db))
    logs = {name: tmp_path / f"scheduler-{name}.log" for name in ("a", "b")}
    procs = {name: start_scheduler(log) for name, log in logs.items()}
    with traffic(served_home_db):
        try:
            wait_until(lambda: store.list_drift_checks("sentiment"), "the first drift check", 60)
            first_holder = store.get_lease(LEASE).holder  # type: ignore[union-attr]
            leader = next(n for n, p in procs.items() if f":{p.pid}:" in first_holder)
            procs[leader].send_signal(signal.SIGKILL)  # no lease release, no clean-up
            procs[leader].wait(10)
            follower = "b" if leader == "a" else "a"
            wait_until(lambda: len(checks_logged(logs[follower])) >= 2, "the other scheduler's checks", 60)
            lease = store.get_lease(LEASE)
            assert procs[follower].poll() is None, logs[follower].read_text()
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    p.wait(10)

    assert lease is not None and lease.holder != first_holder
    assert f":{procs[follower].pid}:" in lease.holder
    by_leader, by_follower = checks_logged(logs[leader]), checks_logged(logs[follower])
    assert by_leader and by_follower
    assert max(by_leader) < min(by_follower)  # one holder at a time: never interleaved
    checks = store.list_drift_checks("sentiment")
    assert sorted(c.id for c in checks) == sorted(by_leader + by_follower)
    runs = store.list_runs("sentiment")
    assert len(runs) == 1, [(r.id, r.drift_check_id, r.status) for r in runs]
    (run,) = runs
    assert run.trigger is RunTrigger.DRIFT and run.status is RunStatus.QUEUED  # nobody launched it
    assert [c.id for c in checks if c.decision == "retrain"] == [run.drift_check_id]
    store.close()
