"""The closed loop on a planted-drift stream, with a real 1-layer champion: served predictions are
logged, labels arrive, the scheduler's drift checks see the drift persist, queue a run, dispatch it to
a real `python -m retrain run` process, the gate promotes the challenger, and the new champion gets the
drifted domain right."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.settings import MonitorSettings
from orchestration.launch import SubprocessLauncher
from orchestration.scheduler import MonitorScheduler
from registry.artifacts import LocalArtifactStore
from registry.entities import DecisionStatus, RunStatus, RunTrigger
from registry.settings import Settings
from registry.store import Registry
from tests.models import serve_and_label
from tests.textgen import market_rows, topic_rows


def test_drift_to_promotion(served_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(served_home))  # the run process finds the same registry
    settings = Settings(home=served_home)
    topical = topic_rows(60, seed=21)
    assert serve_and_label(served_home, [r["text"] for r in topical], [r["label"] for r in topical]) > 0.9

    finance = market_rows(160, seed=2)
    before = serve_and_label(served_home, [r["text"] for r in finance], [r["label"] for r in finance])
    assert before < 0.65  # the champion never saw this domain: right about half the time at best

    scheduler = MonitorScheduler(
        Registry.open(settings),
        LocalArtifactStore(settings.artifact_root),
        "sentiment",
        MonitorSettings(
            window_size=160,
            min_window_rows=50,
            drift_persistence=2,
            min_labels_floor=100,
            cooldown_s=0,
            retrain={
                "train": {"epochs": 3, "learning_rate": 5e-4, "max_length": 32, "seed": 3},
                "assembly": {"min_new_labels": 100, "replay_ratio": 0.5},
            },
        ),
        launcher=SubprocessLauncher(),
    )
    more = market_rows(40, seed=4)
    serve_and_label(served_home, [r["text"] for r in more], [r["label"] for r in more])
    # The labels show the champion wrong on about half the finance rows: a significant realized drop is
    # measured harm, so the first drifted check queues the run without waiting for persistence.
    second = scheduler.check_job()
    assert second is not None and second.check.drifted and second.run is not None, second.check.reason
    assert "not waiting for 2 consecutive checks" in second.check.reason
    assert second.run.trigger is RunTrigger.DRIFT
    assert scheduler.check_job() is None  # no new predictions: no new check

    assert scheduler.dispatch_job() == second.run.id
    deadline = time.monotonic() + 240
    while scheduler.launcher.active() and time.monotonic() < deadline:
        time.sleep(0.5)
    registry = scheduler.registry
    run = registry.get_run(second.run.id)
    assert run.status is RunStatus.SUCCEEDED, run.error
    (decision,) = registry.list_decisions("sentiment")
    assert decision.status is DecisionStatus.PROMOTED and decision.run_id == run.id, decision.reasons
    champion = registry.get_version_by_alias("sentiment", "champion")
    assert champion.version == run.candidate_version and champion.parent_version == 1

    fresh = market_rows(60, seed=3)
    after = serve_and_label(served_home, [r["text"] for r in fresh], [r["label"] for r in fresh])
    assert after > 0.9 and after > before + 0.3
    assert (
        serve_and_label(
            served_home,
            [r["text"] for r in topic_rows(30, seed=22)],
            [r["label"] for r in topic_rows(30, seed=22)],
        )
        > 0.8
    )  # the old domain is kept
    scheduler.stop()
