"""What the drift-check job hands the trigger policy, from plain entities and counts (no database):
the drift streak, the last attempt's labels, the active run, the time since the last run."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.check import CheckConfig, CheckOutcome
from monitor.job import MonitorConfig, drift_streak, last_attempt_start, policy_input
from monitor.policy import PolicyConfig, decide
from monitor.signals import REALIZED_DROP, Signal
from registry.entities import DriftCheck, ModelVersion, RetrainRun, RunStatus, RunTrigger

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # the champion's registration


def champion(version: int = 2, **metrics: Any) -> ModelVersion:
    return ModelVersion(
        model_name="sentiment",
        version=version,
        parent_version=None,
        base_model="tiny",
        artifact_uri="file:///a",
        artifact_sha256="0" * 64,
        labels=("neg", "pos"),
        training_run_id=None,
        data_snapshot_uri=None,
        data_snapshot_sha256=None,
        metrics=metrics,
        calibration=None,
        config={},
        description="",
        created_at=T0,
    )


def check(drifted: bool, version: int | None = 2) -> DriftCheck:
    return DriftCheck(
        id=0,
        model_name="sentiment",
        model_version=version,
        window_start=T0,
        window_end=T0,
        reference="ref",
        n_reference=1,
        n_current=1,
        scores={},
        drifted=drifted,
        decision="none",
        reason="",
        report_uri=None,
        created_at=T0,
    )


def run(
    status: RunStatus, started: timedelta | None, finished: timedelta | None, run_id: int = 1
) -> RetrainRun:
    """A run started and finished at these offsets from the champion's registration (None: not yet)."""
    return RetrainRun(
        id=run_id,
        model_name="sentiment",
        trigger=RunTrigger.DRIFT,
        status=status,
        attempts=1,
        heartbeat_at=None,
        not_before=None,
        config={},
        data_snapshot_sha256=None,
        candidate_version=None,
        drift_check_id=None,
        error=None,
        created_at=T0,
        started_at=None if started is None else T0 + started,
        finished_at=None if finished is None else T0 + finished,
    )


def outcome(*, drifted: bool = True, estimated: float = 0.08, realized: float | None = 0.1) -> CheckOutcome:
    """A check that saw embedding drift (or nothing), an estimated drop, and a realized one measured on
    120 labeled rows (None: too few labels, the signal's score is NaN)."""
    signals = [
        Signal("embedding_drift", 0.8 if drifted else 0.5, 0.55, drifted),
        Signal("estimated_accuracy_drop", estimated, 0.03, estimated > 0.03),
    ]
    if realized is None:
        signals.append(Signal(REALIZED_DROP, float("nan"), 0.03, False, {"labeled": 5}))
    else:
        signals.append(Signal(REALIZED_DROP, realized, 0.03, False, {"labeled": 120}))
    return CheckOutcome(tuple(signals))


def test_the_streak_counts_drifted_checks_of_the_same_champion() -> None:
    assert drift_streak(True, [check(True), check(True), check(False), check(True)], 2) == 3
    assert drift_streak(True, [check(True), check(True, version=1), check(True)], 2) == 2  # a new champion
    assert drift_streak(True, [], 2) == 1
    assert drift_streak(False, [check(True), check(True)], 2) == 0  # this check saw nothing


def test_the_last_attempt_is_the_latest_ended_run_since_the_champion() -> None:
    hour = timedelta(hours=1)
    runs = [
        run(RunStatus.RUNNING, 5 * hour, None),  # still going: "already running", not an attempt
        run(RunStatus.FAILED, 3 * hour, 4 * hour),
        run(RunStatus.SKIPPED, 1 * hour, 2 * hour),
        run(RunStatus.SUCCEEDED, -3 * hour, -2 * hour),  # the run that made this champion
    ]
    assert last_attempt_start(runs, champion()) == T0 + 3 * hour
    assert last_attempt_start(runs[-1:], champion()) is None
    assert last_attempt_start([], champion()) is None


def test_policy_input_from_the_check_the_runs_and_the_label_counts() -> None:
    hour = timedelta(hours=1)
    runs = [run(RunStatus.FAILED, 1 * hour, 2 * hour), run(RunStatus.SUCCEEDED, -3 * hour, -2 * hour, 2)]
    state = policy_input(
        outcome(),
        champion(train={"n": 400}),
        [check(True), check(False)],
        runs,
        new_labels=900,
        labels_since_attempt=300,
        now=T0 + 3 * hour,
    )
    assert state.drift_streak == 2 and state.drifted_signals == ("embedding_drift",)
    assert state.estimated_drop == 0.08 and state.realized_drop == 0.1 and state.realized_labels == 120
    assert state.new_labels == 900 and state.last_attempt_labels == 600  # the attempt had 900 - 300
    assert not state.active_run and state.since_last_run == hour  # since the latest run ended
    assert state.champion_train_rows == 400 and not state.champion_degenerate


def test_policy_input_without_labels_runs_or_drift() -> None:
    state = policy_input(
        outcome(drifted=False, realized=None),
        champion(quality={"degenerate": True}, train={"n": 0}),
        [check(True)],
        [run(RunStatus.QUEUED, None, None)],
        new_labels=40,
        labels_since_attempt=None,
        now=T0,
    )
    assert state.drift_streak == 0 and state.drifted_signals == ()
    assert state.realized_drop is None and state.realized_labels is None  # too few labels to measure
    assert state.last_attempt_labels is None and state.since_last_run is None
    assert state.active_run  # a queued run
    assert state.champion_train_rows is None and state.champion_degenerate


def test_policy_input_feeds_the_decision() -> None:
    policy = PolicyConfig(persistence=2, cooldown=timedelta(minutes=30))
    state = policy_input(
        outcome(),
        champion(),
        [check(True)],
        [],
        new_labels=1000,
        labels_since_attempt=None,
        now=T0,
    )
    decision = decide(state, policy)
    assert decision.retrain and decision.reason.startswith("drift on embedding_drift for 2 checks")
    # the one quiet check before this one resets the streak
    waiting = decide(replace(state, drift_streak=drift_streak(True, [check(False)], 2)), policy)
    assert not waiting.retrain and "waiting for 2 consecutive checks" in waiting.reason


def test_the_policy_judges_drops_against_the_checks_margin() -> None:
    config = MonitorConfig(check=CheckConfig(quality_margin=0.05), policy=PolicyConfig(persistence=2))
    assert config.policy.quality_margin == 0.05 and config.policy.persistence == 2
    assert MonitorConfig().policy.quality_margin == CheckConfig().quality_margin == 0.03
