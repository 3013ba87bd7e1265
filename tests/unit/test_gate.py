"""The promotion gate, without any model: synthetic predictions with known quality."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import GateConfig
from retrain.gate import PairedPredictions, _macro_f1_batch, evaluate_gate


def predictions(y: np.ndarray, error_rate: float, seed: int, k: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(y)) < error_rate
    shifted = (y + rng.integers(1, k, len(y))) % k
    return np.where(wrong, shifted, y)


def labels(n: int, seed: int = 0, k: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, n)


def test_the_vectorized_bootstrap_macro_f1_matches_sklearn_on_every_resample() -> None:
    from sklearn.metrics import f1_score

    y = labels(200, k=4)
    p = predictions(y, 0.4, 1, k=4)
    p[:5] = 4  # a label outside the classes: it only ever counts as a miss
    idx = np.random.default_rng(2).integers(0, len(y), size=(50, len(y)))
    idx[0] = np.flatnonzero(y != 3)[0]  # one resample of a single row: classes it lacks score 0
    classes = np.unique(y)
    expected = [f1_score(y[i], p[i], labels=classes, average="macro", zero_division=0) for i in idx]
    np.testing.assert_allclose(_macro_f1_batch(y, p, idx, classes), expected, rtol=0, atol=1e-12)


def test_clearly_better_challenger_passes() -> None:
    y = labels(600)
    result = evaluate_gate(PairedPredictions(y, predictions(y, 0.35, 1), predictions(y, 0.10, 2)))
    assert result.passed
    assert result.recent.difference > 0.2 and result.recent.ci_low > 0.15
    assert "significantly" in result.reasons[0]


def test_better_on_average_but_not_significantly_is_refused() -> None:
    y = labels(60, seed=3)
    champion = predictions(y, 0.30, 4)
    challenger = champion.copy()
    fixed = np.flatnonzero(challenger != y)[:2]  # fixes two errors: a small gain on few rows
    challenger[fixed] = y[fixed]
    result = evaluate_gate(
        PairedPredictions(y, champion, challenger), config=GateConfig(min_improvement=0.01)
    )
    assert result.recent.difference > 0.01
    assert result.recent.ci_low <= 0.0
    assert not result.passed
    assert "not significant" in result.reasons[0]


def test_no_gain_is_refused() -> None:
    y = labels(300)
    same = predictions(y, 0.2, 5)
    result = evaluate_gate(PairedPredictions(y, same, same.copy()))
    assert not result.passed and "gain below" in result.reasons[0]
    assert result.recent.difference == 0.0


def test_forgetting_the_old_set_is_refused() -> None:
    y_new, y_old = labels(600, 1), labels(600, 2)
    recent = PairedPredictions(y_new, predictions(y_new, 0.35, 1), predictions(y_new, 0.10, 2))
    old = PairedPredictions(y_old, predictions(y_old, 0.10, 3), predictions(y_old, 0.30, 4))
    result = evaluate_gate(recent, old, GateConfig(max_old_regression=0.02))
    assert not result.passed
    assert "forgets more than" in result.reasons[1]
    tolerant = evaluate_gate(recent, old, GateConfig(max_old_regression=0.5))
    assert tolerant.passed


def test_seeded_and_mismatched_lengths() -> None:
    y = labels(200)
    pairs = PairedPredictions(y, predictions(y, 0.3, 1), predictions(y, 0.2, 2))
    assert evaluate_gate(pairs).recent == evaluate_gate(pairs).recent
    with pytest.raises(ValueError, match="equal lengths"):
        PairedPredictions(y, y[:-1], y)
