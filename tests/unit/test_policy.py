"""The trigger policy: persistence, quality drop, labels for a decisive gate, active run, cooldown."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from contracts import AssemblyConfig, GateConfig, RunSpec
from monitor.job import MonitorConfig
from monitor.policy import (
    PolicyConfig,
    PolicyInput,
    decide,
    heldout_rows_for_decisive_gate,
    label_plan,
    labels_for_decisive_gate,
)
from registry.entities import RunTrigger
from retrain.gate import PairedPredictions, evaluate_gate

CONFIG = PolicyConfig(persistence=3, quality_margin=0.03, cooldown=timedelta(minutes=30))
READY = PolicyInput(
    drift_streak=3,
    drifted_signals=("embedding_drift",),
    estimated_drop=0.074,
    realized_drop=None,
    new_labels=700,
    active_run=False,
    since_last_run=timedelta(hours=2),
)
DEFAULTS = {
    "holdout_fraction": 0.2,
    "alpha": 0.025,
    "power": 0.8,
    "min_improvement": 0.01,
    "break_rate": 0.01,
    "floor": 100,
    "cap": 2000,
}


def labels(drop: float, **overrides: float) -> int:
    return labels_for_decisive_gate(drop, **{**DEFAULTS, **overrides})  # type: ignore[arg-type]


def test_retrains_when_everything_lines_up_and_says_why() -> None:
    d = decide(READY, CONFIG)
    assert d.retrain and d.labels_needed == 635
    assert d.reason == (
        "drift on embedding_drift for 3 checks, estimated accuracy -7.4 pts, 700 new labels; a decisive gate "
        "on a 7.4-pt drop (estimated) needs 635 (80 % power, 20 % held out): retrain queued"
    )


def test_each_condition_holds_it_back() -> None:
    cases = {
        "no drift": replace(READY, drifted_signals=(), drift_streak=0),
        "waiting for 3 consecutive checks": replace(READY, drift_streak=2),
        "quality has not dropped": replace(READY, estimated_drop=0.01),
        "needs 635 (80 % power, 20 % held out): fewer than 635 new labels": replace(READY, new_labels=634),
        "already queued or running": replace(READY, active_run=True),
        "cooling down (600 s left)": replace(READY, since_last_run=timedelta(minutes=20)),
    }
    for words, state in cases.items():
        d = decide(state, CONFIG)
        assert not d.retrain, words
        assert words in d.reason, (words, d.reason)


def test_realized_drop_or_drift_alone_also_count() -> None:
    realized = replace(READY, estimated_drop=0.0, realized_drop=0.05, new_labels=1060, realized_labels=120)
    d = decide(realized, CONFIG)
    assert d.retrain, d.reason
    assert "realized accuracy -5.0 pts" in d.reason
    assert "a 5.0-pt drop (realized on 120 labeled rows) needs 1060" in d.reason
    flat = replace(READY, estimated_drop=0.0)
    assert not decide(flat, CONFIG).retrain
    alone = decide(flat, replace(CONFIG, drift_alone=True))  # no drop: sized on the quality margin, capped
    assert not alone.retrain and "needs 2000 (the cap; 2145 for 80 % power" in alone.reason
    assert decide(replace(flat, new_labels=2000), replace(CONFIG, drift_alone=True)).retrain
    assert decide(replace(READY, since_last_run=None), CONFIG).retrain  # never retrained: no cooldown


def test_a_large_drop_queues_with_fewer_labels_than_the_old_fixed_200_and_a_small_one_waits() -> None:
    large = replace(READY, estimated_drop=0.25, new_labels=150)
    d = decide(large, CONFIG)
    assert d.retrain and d.labels_needed is not None and d.labels_needed < 200, d.reason
    assert "a decisive gate on a 25.0-pt drop (estimated) needs 135 (80 % power, 20 % held out)" in d.reason
    small = replace(READY, estimated_drop=0.05, new_labels=412)
    d = decide(small, CONFIG)
    assert not d.retrain and d.labels_needed is not None and d.labels_needed > 412
    assert "needs 1060 (80 % power, 20 % held out): fewer than 1060 new labels" in d.reason


def test_the_realized_drop_wins_when_measured_and_the_margin_bounds_it_below() -> None:
    both = replace(READY, estimated_drop=0.30, realized_drop=0.10)
    plan = label_plan(both, CONFIG)
    assert plan.drop == 0.10 and plan.source == "realized" and plan.labels == 435
    tiny = label_plan(replace(READY, estimated_drop=0.30, realized_drop=0.01), CONFIG)
    assert tiny.drop == CONFIG.quality_margin and tiny.source == "the quality margin; realized drop 1.0 pts"
    assert (
        label_plan(replace(READY, estimated_drop=None), CONFIG).source
        == "the quality margin; no drop measured"
    )


def test_the_floor_and_the_cap_hold() -> None:
    assert labels(0.9) == 100 and labels(1.0) == 100  # a huge drop: the floor
    assert labels(0.9, floor=0) == 10
    assert labels(0.03) == 2000  # 2145 by power
    assert labels(0.01) == labels(0.005) == labels(-0.2) == 2000  # the gate's 1-pt minimum: never decisive
    assert math.isinf(
        heldout_rows_for_decisive_gate(0.01, alpha=0.025, power=0.8, min_improvement=0.01, break_rate=0)
    )
    floor = decide(replace(READY, estimated_drop=0.6, new_labels=99), CONFIG)
    assert not floor.retrain and "needs 100 (the floor; 30 for 80 % power, 20 % held out)" in floor.reason
    never = decide(replace(READY, estimated_drop=0.2), replace(CONFIG, gate=GateConfig(min_improvement=0.25)))
    assert never.labels_needed == 2000 and "no number of rows makes a gain of at most the gate's 25.0-pt" in (
        never.reason
    )
    # a floor above the cap lifts the cap with it
    assert (
        label_plan(replace(READY, estimated_drop=0.01), replace(CONFIG, min_labels_floor=2500)).labels == 2500
    )


def test_labels_fall_as_the_drop_grows_and_rise_with_power_and_a_smaller_held_out_share() -> None:
    drops = np.linspace(0.0, 1.0, 401)
    needed = [labels(float(d), floor=0, cap=10**9) for d in drops]
    assert all(a >= b for a, b in zip(needed, needed[1:], strict=False))
    assert needed[0] == 10**9 and needed[-1] == 0
    for d in (0.05, 0.1, 0.3):
        assert labels(d, power=0.9) > labels(d) > labels(d, power=0.5)
        assert labels(d, holdout_fraction=0.1) > labels(d) > labels(d, holdout_fraction=0.4)
        assert labels(d, break_rate=0.05) > labels(d) > labels(d, break_rate=0.0)
        assert labels(d, alpha=0.005) > labels(d)


def test_the_formula_is_the_paired_difference_sample_size() -> None:
    # n = sigma^2 ((z_a + z_b) / gain)^2, sigma^2 = psi - gain^2, psi = gain + 2 break_rate
    z = 1.959964 + 0.841621
    rows = heldout_rows_for_decisive_gate(0.1, alpha=0.025, power=0.8, min_improvement=0.0, break_rate=0.02)
    assert rows == pytest.approx((0.14 - 0.01) * (z / 0.1) ** 2, rel=1e-5)
    # close to the gate's 1-pt minimum, that minimum sets the rows: n = sigma^2 (z_b / (gain - m))^2
    rows = heldout_rows_for_decisive_gate(0.012, alpha=0.025, power=0.8, min_improvement=0.01, break_rate=0.0)
    assert rows == pytest.approx((0.012 - 0.012**2) * (0.841621 / 0.002) ** 2, rel=1e-5)


def test_the_gate_passes_about_as_often_as_the_declared_power() -> None:
    """Rows drawn as the docstring assumes (the challenger right where the champion is wrong on
    gain + break_rate of them, the reverse on break_rate; balanced binary labels), as many as the
    calculation asks for: the real gate passes about 80 % of such challengers."""
    gain, brk, both_wrong = 0.15, 0.01, 0.15
    rows = math.ceil(
        heldout_rows_for_decisive_gate(gain, alpha=0.025, power=0.8, min_improvement=0.01, break_rate=brk)
    )
    rng = np.random.default_rng(5)
    trials, passed = 200, 0
    for _ in range(trials):
        y = rng.integers(0, 2, rows)
        u = rng.random(rows)
        fixed = u < gain + brk
        broken = (u >= gain + brk) & (u < gain + 2 * brk)
        neither = (u >= gain + 2 * brk) & (u < gain + 2 * brk + both_wrong)
        champion = np.where(fixed | neither, 1 - y, y)
        challenger = np.where(broken | neither, 1 - y, y)
        config = GateConfig(bootstrap_samples=300, seed=int(rng.integers(1 << 30)))
        passed += evaluate_gate(PairedPredictions(y, champion, challenger), config=config).passed
    assert 0.7 <= passed / trials <= 0.92, (rows, passed / trials)


def test_a_retry_on_the_same_champion_waits_for_the_larger_of_power_and_geometric_growth() -> None:
    big = replace(READY, estimated_drop=0.5, new_labels=412)  # the power asks for the floor only
    after_refusal = replace(big, last_attempt_labels=300)  # the refused run had 300
    d = decide(after_refusal, CONFIG)
    assert not d.retrain and d.labels_needed == 600
    assert (
        "the last run on this champion had 300 and did not replace it: a retry waits for 2x that, and 100 "
        "more at least (600): fewer than 600 new labels" in d.reason
    )
    assert decide(replace(after_refusal, new_labels=600), CONFIG).retrain
    # ... and at least min_labels_floor more than the attempt had, however small it was
    small = replace(big, last_attempt_labels=50, new_labels=149)
    assert "fewer than 150 new labels" in decide(small, CONFIG).reason
    assert decide(replace(small, new_labels=150), CONFIG).retrain
    assert decide(replace(after_refusal, new_labels=500), replace(CONFIG, retry_label_growth=1.0)).retrain
    # when the power asks for more than the growth rule, the power wins
    slow = decide(replace(READY, last_attempt_labels=200, new_labels=500), CONFIG)
    assert not slow.retrain and slow.labels_needed == 635 and "fewer than 635 new labels" in slow.reason


def test_the_policy_sizes_its_label_count_with_the_run_contracts_figures() -> None:
    assert (CONFIG.assembly, CONFIG.gate) == (AssemblyConfig(), GateConfig())  # the contract's, not a copy
    run = RunSpec.model_validate(
        {"assembly": {"holdout_fraction": 0.4, "min_new_labels": 150}, "gate": {"min_improvement": 0.02}}
    )
    aligned = MonitorConfig(policy=CONFIG, run_config=run).policy
    assert (aligned.assembly.holdout_fraction, aligned.min_labels_floor, aligned.gate.min_improvement) == (
        0.4,
        150,
        0.02,
    )
    lower = RunSpec.model_validate({"assembly": {"min_new_labels": 50}})
    assert MonitorConfig(policy=CONFIG, run_config=lower).policy.min_labels_floor == 100  # never lower
    assert MonitorConfig(policy=CONFIG).policy.min_labels_floor == 100  # the run's default sets nothing
    assert (
        "20 % held out" in decide(READY, CONFIG).reason and "40 % held out" in decide(READY, aligned).reason
    )


def test_retraining_on_drift_can_be_off_and_the_check_still_says_what_it_saw() -> None:
    d = decide(READY, replace(CONFIG, retrain_on_drift=False))
    assert not d.retrain
    assert d.reason.startswith("drift on embedding_drift for 3 checks") and d.reason.endswith(
        "retraining on drift is off"
    )


def test_settings_build_the_policy_and_read_the_old_fixed_count_as_the_floor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.settings import MonitorSettings

    policy = MonitorSettings().monitor_config().policy
    assert (policy.min_labels_floor, policy.max_labels_wait, policy.gate_power, policy.break_rate) == (
        100,
        2000,
        0.8,
        0.01,
    )
    assert (
        MonitorSettings(min_labels_floor=40, max_labels_wait=30).monitor_config().policy.max_labels_wait == 40
    )
    monkeypatch.setenv("DRIFTLINE_MIN_NEW_LABELS", "10")
    monkeypatch.setenv("DRIFTLINE_TRIGGER_POWER", "0.9")
    monkeypatch.setenv("MIN_LABELS_FLOOR", "7")  # without the prefix: not ours
    settings = MonitorSettings()
    assert (settings.min_labels_floor, settings.trigger_power) == (10, 0.9)
    monkeypatch.setenv("DRIFTLINE_MIN_LABELS_FLOOR", "60")
    assert MonitorSettings().monitor_config().policy.min_labels_floor == 60


def test_a_significant_realized_drop_does_not_wait_for_persistence() -> None:
    """Persistence confirms label-free alarms; a realized drop that passed its own significance test is
    measured harm and acts on the first check. Label-free signals alone still wait."""
    first = replace(READY, drift_streak=1, realized_drop=0.2, realized_labels=150, new_labels=700)
    alarm_only = replace(first, drifted_signals=("embedding_drift",))
    harm = replace(first, drifted_signals=("embedding_drift", "realized_accuracy_drop"))
    assert not decide(alarm_only, CONFIG).retrain
    d = decide(harm, CONFIG)
    assert d.retrain, d.reason
    assert "a significant realized drop: not waiting for 3 consecutive checks" in d.reason
    assert not decide(harm, replace(CONFIG, realized_drop_skips_persistence=False)).retrain


# --- the label-growth trigger ------------------------------------------------------------------------

GROWTH = replace(CONFIG, label_growth_share=1.0, degenerate_growth_share=0.25)
CALM = PolicyInput(
    drift_streak=0,
    drifted_signals=(),
    estimated_drop=0.0,
    realized_drop=None,
    new_labels=412,
    active_run=False,
    since_last_run=None,
    champion_train_rows=294,
)


def test_no_drift_and_labels_past_the_champions_training_rows_queue_an_improvement_run() -> None:
    d = decide(CALM, GROWTH)
    assert d.retrain and d.labels_needed == 294 and d.trigger is RunTrigger.LABEL_GROWTH
    assert d.reason == (
        "no drift; 412 new labels = 140% of the champion's 294 training rows (an improvement run at 100%): "
        "improvement run queued"
    )


def test_below_the_share_no_run_and_the_reason_says_how_many() -> None:
    d = decide(replace(CALM, new_labels=200), GROWTH)
    assert not d.retrain and d.reason.endswith("fewer than 294 new labels")
    off = replace(CONFIG, label_growth_share=0.0)
    assert not decide(CALM, off).retrain and decide(CALM, off).reason == "no drift"
    assert not decide(replace(CALM, champion_train_rows=None), GROWTH).retrain  # unknown training rows


def test_a_degenerate_champion_is_improved_sooner() -> None:
    d = decide(replace(CALM, new_labels=100, champion_degenerate=True), GROWTH)
    assert d.retrain and d.labels_needed == 100  # 25 % of 294 is 74: the floor, 100
    assert "the champion is degenerate" in d.reason


def test_the_growth_trigger_keeps_the_retry_rule_the_active_run_and_the_cooldown() -> None:
    retry = decide(replace(CALM, last_attempt_labels=300), GROWTH)
    assert not retry.retrain and retry.labels_needed == 600 and "did not replace it" in retry.reason
    assert not decide(replace(CALM, active_run=True), GROWTH).retrain
    assert "cooling down" in decide(replace(CALM, since_last_run=timedelta(minutes=5)), GROWTH).reason


def test_drift_that_does_not_hurt_falls_back_on_label_growth() -> None:
    calm_drift = replace(READY, estimated_drop=0.01, new_labels=500, champion_train_rows=400)
    d = decide(calm_drift, GROWTH)
    assert d.retrain and "quality has not dropped by more than 3.0 pts; 500 new labels = 125%" in d.reason
    assert d.trigger is RunTrigger.LABEL_GROWTH
    assert not decide(calm_drift, replace(CONFIG, label_growth_share=0.0)).retrain
    assert decide(READY, GROWTH).trigger is RunTrigger.DRIFT  # drift that hurts: the drift rule's run
