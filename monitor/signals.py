"""Drift signals as pure functions of arrays: reference (what the champion was trained and calibrated
on) against the current window of logged predictions. Each returns a :class:`Signal` with its score,
its threshold and whether it fired; nothing here reads a database or a clock.

Each signal's default threshold is declared beside its test (as Evidently's stattest registry does);
``monitor.check.CheckConfig`` and the ``DRIFTLINE_*`` settings take their defaults from these.

Usage (a doctest, run by ``tests/unit/test_doctests.py``): the reference window predicted "neg" and "pos"
alike, the current one mostly "pos":

>>> sig = prediction_drift(["neg", "pos"] * 50, ["pos"] * 90 + ["neg"] * 10, labels=("neg", "neu", "pos"))
>>> sig.drifted, round(sig.score, 3), sig.threshold
(True, 0.377, 0.1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

REALIZED_DROP = "realized_accuracy_drop"  # the signal measured on labels, not estimated
# Every test's significance level: a score over its threshold fires only when the test also rejects,
# so that small windows do not alarm on noise.
ALPHA = 0.01


@dataclass(frozen=True)
class Signal:
    name: str
    score: float
    threshold: float
    drifted: bool
    details: dict[str, Any] = field(default_factory=dict)


def _distribution(values: Sequence[str], labels: Sequence[str], smoothing: float = 0.5) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    counts = np.full(len(labels), smoothing, dtype=float)
    for v in values:
        if v in index:
            counts[index[v]] += 1
    return counts / counts.sum()


PREDICTION_THRESHOLD = 0.1  # Jensen-Shannon distance (base 2, in [0, 1]) of predicted-label shares


def prediction_drift(
    reference: Sequence[str],
    current: Sequence[str],
    *,
    labels: Sequence[str],
    threshold: float = PREDICTION_THRESHOLD,
    alpha: float = ALPHA,
) -> Signal:
    """Has the distribution of predicted labels moved? Jensen-Shannon distance of the two shares above
    ``threshold``, and a chi-square test significant at ``alpha`` so small windows do not alarm on noise."""
    from scipy.stats import chi2_contingency

    p, q = _distribution(reference, labels), _distribution(current, labels)
    score = float(jensenshannon(p, q, base=2))
    counts = np.array(
        [
            _distribution(reference, labels, 0.0) * len(reference),
            _distribution(current, labels, 0.0) * len(current),
        ]
    )
    p_value = float(chi2_contingency(counts + 0.5)[1])
    return Signal(
        "prediction_drift",
        score,
        threshold,
        score > threshold and p_value < alpha,
        {
            "p_value": p_value,
            "reference_share": dict(zip(labels, p.round(4).tolist(), strict=True)),
            "current_share": dict(zip(labels, q.round(4).tolist(), strict=True)),
        },
    )


DESCRIPTOR_THRESHOLD = 0.1  # Kolmogorov-Smirnov statistic of a per-text descriptor (the length)


def descriptor_drift(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    name: str = "text_length",
    threshold: float = DESCRIPTOR_THRESHOLD,
    alpha: float = ALPHA,
) -> Signal:
    """Has a per-text descriptor (length, ...) moved? Two-sample Kolmogorov-Smirnov statistic above
    ``threshold`` and significant at ``alpha``."""
    from scipy.stats import ks_2samp

    result = ks_2samp(np.asarray(reference, dtype=float), np.asarray(current, dtype=float))
    score = float(result.statistic)
    p_value = float(result.pvalue)
    return Signal(
        f"{name}_drift",
        score,
        threshold,
        score > threshold and p_value < alpha,
        {
            "p_value": p_value,
            "reference_median": float(np.median(reference)),
            "current_median": float(np.median(current)),
        },
    )


EMBEDDING_THRESHOLD = 0.55  # ROC-AUC of a classifier telling the windows apart (0.5: it cannot)


def embedding_drift(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    threshold: float = EMBEDDING_THRESHOLD,
    alpha: float = ALPHA,
    seed: int = 0,
    max_rows: int = 2000,
) -> Signal:
    """Can a classifier tell the windows apart? ROC-AUC of a logistic regression on the pooled
    embeddings, each row scored once by a model that did not see it (5-fold, stratified, shuffled with
    ``seed``); 0.5: indistinguishable. The same test as Evidently's ``model`` method.

    A fixed AUC threshold alone false-alarms on small windows: with 60 reference and 120 current rows
    the AUC of two samples of one distribution has a standard deviation near 0.046, so 0.55 is about one
    sigma away. The signal fires only when the AUC is above ``threshold`` and significant at ``alpha``
    (one-sided Mann-Whitney U on the out-of-fold scores, which is the AUC's own test).
    """
    from runtime.scores import separability

    auc, p_value, rows = separability(reference, current, seed=seed, max_rows=max_rows)
    return Signal(
        "embedding_drift",
        auc,
        threshold,
        auc > threshold and p_value < alpha,
        {"rows": list(rows), "p_value": p_value},
    )


def expected_accuracy(probs: np.ndarray) -> float:
    """The accuracy a calibrated model expects of itself: the mean of its top-class probability."""
    return float(np.mean(np.max(probs, axis=1))) if len(probs) else float("nan")


# The accuracy drop, estimated or realized, that hurts: 3 points. The trigger policy judges drops
# against the same margin (monitor.job.MonitorConfig hands the check's on).
QUALITY_MARGIN = 0.03
MIN_LABELS = 30  # labeled rows in a window below which the realized accuracy is not measured


def quality_estimate(
    reference_probs: np.ndarray, current_probs: np.ndarray, *, max_drop: float = QUALITY_MARGIN
) -> Signal:
    """Label-free: has the expected accuracy (from calibrated confidences) dropped by more than ``max_drop``?"""
    ref, cur = expected_accuracy(reference_probs), expected_accuracy(current_probs)
    drop = ref - cur
    return Signal(
        "estimated_accuracy_drop", drop, max_drop, drop > max_drop, {"reference": ref, "current": cur}
    )


def realized_accuracy(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    *,
    reference_accuracy: float,
    reference_n: int | None = None,
    max_drop: float = QUALITY_MARGIN,
    min_labels: int = MIN_LABELS,
    alpha: float = ALPHA,
) -> Signal:
    """With labels: has the accuracy of the window's labeled predictions dropped by more than ``max_drop``,
    and significantly?

    The significance is a one-sided two-proportion z-test of the window's accuracy against the
    reference accuracy measured on ``reference_n`` held-out rows (a one-sample test against a fixed
    value when ``reference_n`` is unknown): a small reference set or a handful of labels may show a
    drop of several points by chance. Both must hold for the signal to fire.
    """
    n = len(y_true)
    if n < min_labels:
        return Signal(
            REALIZED_DROP,
            float("nan"),
            max_drop,
            False,
            {"labeled": n, "note": f"fewer than {min_labels} labels"},
        )
    from scipy.stats import norm

    acc = float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))
    drop = reference_accuracy - acc
    if reference_n:
        pooled = (reference_accuracy * reference_n + acc * n) / (reference_n + n)
        se = float(np.sqrt(pooled * (1 - pooled) * (1 / reference_n + 1 / n)))
    else:
        se = float(np.sqrt(reference_accuracy * (1 - reference_accuracy) / n))
    p_value = float(norm.sf(drop / se)) if se > 0 else (0.0 if drop > 0 else 1.0)
    return Signal(
        REALIZED_DROP,
        drop,
        max_drop,
        drop > max_drop and p_value < alpha,
        {
            "labeled": n,
            "reference": reference_accuracy,
            "reference_rows": reference_n,
            "current": acc,
            "p_value": p_value,
        },
    )
