"""Label-free accuracy estimates on planted cases: calibrated and undrifted (close to realized, intervals
that cover), a change of P(label | text) (blind, as documented), calibration broken (the disagreement
flag), and the backtest's figures."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.estimates import (
    ATC,
    EXPECTED,
    atc,
    atc_threshold,
    backtest,
    disagree,
    estimate_window,
    expected_accuracy,
)


def calibrated(n: int, rng: np.random.Generator, low: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Three-class probabilities whose top class is right with probability equal to its confidence."""
    conf = rng.uniform(low, 1.0, size=n)
    rest = (1.0 - conf) / 2
    probs = np.column_stack([conf, rest, rest])
    correct = rng.uniform(size=n) < conf
    return probs, correct


def test_a_calibrated_model_on_undrifted_data_is_estimated_closely_with_intervals_that_cover() -> None:
    rng = np.random.default_rng(0)
    reference_probs, reference_correct = calibrated(2000, rng)
    errors = {EXPECTED: [], ATC: []}
    covered = {EXPECTED: [], ATC: []}
    for _ in range(200):
        probs, correct = calibrated(500, rng)
        out = estimate_window(probs, reference_probs, reference_correct)
        realized = float(correct.mean())
        for method in (EXPECTED, ATC):
            errors[method].append(abs(out[method]["value"] - realized))
            covered[method].append(out[method]["low"] <= realized <= out[method]["high"])
        assert out["disagree"] is False
    assert np.mean(errors[EXPECTED]) < 0.03 and np.mean(errors[ATC]) < 0.03
    assert 0.90 <= np.mean(covered[EXPECTED]) <= 0.99  # nominal 95 %
    assert 0.85 <= np.mean(covered[ATC]) <= 0.99  # the threshold's own error is not in its interval


def test_a_change_of_p_label_given_text_leaves_both_estimates_blind() -> None:
    rng = np.random.default_rng(1)
    reference_probs, reference_correct = calibrated(2000, rng)
    probs, _ = calibrated(500, rng)
    correct = rng.uniform(size=500) < 0.5  # the same texts and confidences; their labels changed
    out = estimate_window(probs, reference_probs, reference_correct)
    assert out[EXPECTED]["value"] - correct.mean() > 0.15  # both still see the old accuracy
    assert out[ATC]["value"] - correct.mean() > 0.15
    assert out["disagree"] is False  # and agree: only labels can show this


def test_confidences_that_no_longer_behave_as_on_the_held_out_rows_raise_the_flag() -> None:
    rng = np.random.default_rng(2)
    reference_probs, reference_correct = calibrated(2000, rng, low=0.5)
    # half the window very sure, half near the threshold's left: the mean stays, the share above falls
    conf = np.concatenate([np.full(250, 0.99), np.full(250, 0.55)])
    probs = np.column_stack([conf, (1 - conf) / 2, (1 - conf) / 2])
    out = estimate_window(probs, reference_probs, reference_correct)
    assert out["disagree"] is True
    assert abs(out[EXPECTED]["value"] - 0.77) < 0.01 and out[ATC]["value"] == pytest.approx(0.5)


def test_the_pieces() -> None:
    est = expected_accuracy(np.array([1.0, 1.0, 0.5, 0.5]))
    assert est.value == pytest.approx(0.75) and est.low < 0.75 < est.high and est.rows == 4
    assert atc_threshold(np.array([0.5, 0.6, 0.7, 0.8, 0.9]), np.array([1, 1, 1, 0, 0], bool)) == 0.6
    a = atc(np.array([0.55, 0.65, 0.95]), 0.6)
    assert a.value == pytest.approx(2 / 3) and a.low < a.value < a.high
    assert np.isnan(expected_accuracy(np.zeros(0)).value)
    assert not disagree(est, est)


def test_backtest_reports_error_coverage_and_alerts() -> None:
    def check(version: int, realized: float, value: float, half: float = 0.02) -> dict:
        block = {"value": value, "low": value - half, "high": value + half, "rows": 400}
        return {"version": version, "realized": realized, "estimates": {EXPECTED: block, ATC: block}}

    checks = [
        check(1, 0.80, 0.81),  # covered, no fall, no alert
        check(1, 0.70, 0.72),  # covered, a fall, an alert
        check(1, 0.70, 0.79),  # missed: a fall without an alert
        check(1, 0.80, 0.72),  # a false alarm
        check(2, 0.50, 0.50),  # a version without reference accuracy: left out
    ]
    out = backtest(checks, {1: 0.80})
    assert out["checks"] == 4
    r = out[EXPECTED]
    assert r["mae"] == pytest.approx((0.01 + 0.02 + 0.09 + 0.08) / 4)
    assert r["coverage"] == pytest.approx(0.5)
    assert (r["alerts"], r["falls"], r["precision"], r["recall"]) == (2, 2, 0.5, 0.5)
