"""The trigger policy: persistence, quality drop, minimum labels, active run, cooldown."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from monitor.policy import PolicyConfig, PolicyInput, decide

CONFIG = PolicyConfig(persistence=3, quality_margin=0.03, min_new_labels=200, cooldown=timedelta(minutes=30))
READY = PolicyInput(
    drift_streak=3,
    drifted_signals=("embedding_drift",),
    estimated_drop=0.074,
    realized_drop=None,
    new_labels=412,
    active_run=False,
    since_last_run=timedelta(hours=2),
)


def test_retrains_when_everything_lines_up_and_says_why() -> None:
    d = decide(READY, CONFIG)
    assert d.retrain
    assert (
        d.reason
        == "drift on embedding_drift for 3 checks, estimated accuracy -7.4 pts, 412 new labels: retrain queued"
    )


def test_each_condition_holds_it_back() -> None:
    cases = {
        "no drift": replace(READY, drifted_signals=(), drift_streak=0),
        "waiting for 3 consecutive checks": replace(READY, drift_streak=2),
        "quality has not dropped": replace(READY, estimated_drop=0.01),
        "fewer than 200 new labels": replace(READY, new_labels=150),
        "already queued or running": replace(READY, active_run=True),
        "cooling down (600 s left)": replace(READY, since_last_run=timedelta(minutes=20)),
    }
    for words, state in cases.items():
        d = decide(state, CONFIG)
        assert not d.retrain, words
        assert words in d.reason, (words, d.reason)


def test_realized_drop_or_drift_alone_also_count() -> None:
    realized = replace(READY, estimated_drop=0.0, realized_drop=0.05)
    assert decide(realized, CONFIG).retrain
    assert "realized accuracy -5.0 pts" in decide(realized, CONFIG).reason
    flat = replace(READY, estimated_drop=0.0)
    assert not decide(flat, CONFIG).retrain
    assert decide(flat, replace(CONFIG, drift_alone=True)).retrain
    assert decide(replace(READY, since_last_run=None), CONFIG).retrain  # never retrained: no cooldown


def test_a_retry_on_the_same_champion_waits_for_geometrically_more_labels() -> None:
    after_refusal = replace(READY, last_attempt_labels=300)  # 412 labels now; the refused run had 300
    d = decide(after_refusal, CONFIG)
    assert not d.retrain
    assert (
        "fewer than 600 new labels (the last run on this champion had 300; a retry waits for 2x" in d.reason
    )
    assert decide(replace(after_refusal, new_labels=600), CONFIG).retrain
    # ... and at least min_new_labels more than the attempt had, however small it was
    small = replace(READY, last_attempt_labels=50, new_labels=249)
    assert "fewer than 250 new labels" in decide(small, CONFIG).reason
    assert decide(replace(small, new_labels=250), CONFIG).retrain
    assert decide(replace(after_refusal, new_labels=500), replace(CONFIG, retry_label_growth=1.0)).retrain


def test_retraining_on_drift_can_be_off_and_the_check_still_says_what_it_saw() -> None:
    d = decide(READY, replace(CONFIG, retrain_on_drift=False))
    assert not d.retrain
    assert d.reason.startswith("drift on embedding_drift for 3 checks") and d.reason.endswith(
        "retraining on drift is off"
    )
