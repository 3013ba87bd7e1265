"""Drift signals as pure functions of arrays: reference (what the champion was trained and calibrated
on) against the current window of logged predictions. Each returns a :class:`Signal` with its score,
its threshold and whether it fired; nothing here reads a database or a clock.

Usage::

    sig = prediction_drift(reference_labels, current_labels, labels=("neg", "neu", "pos"))
    sig.drifted, sig.score
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

REALIZED_DROP = "realized_accuracy_drop"  # the signal measured on labels, not estimated


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


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1])."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return float(np.sqrt(max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m))))


def prediction_drift(
    reference: Sequence[str],
    current: Sequence[str],
    *,
    labels: Sequence[str],
    threshold: float = 0.1,
    alpha: float = 0.01,
) -> Signal:
    """Has the distribution of predicted labels moved? Jensen-Shannon distance of the two shares above
    ``threshold``, and a chi-square test significant at ``alpha`` so small windows do not alarm on noise."""
    from scipy.stats import chi2_contingency

    p, q = _distribution(reference, labels), _distribution(current, labels)
    score = jensen_shannon(p, q)
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


def descriptor_drift(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    name: str = "text_length",
    threshold: float = 0.1,
    alpha: float = 0.01,
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


def embedding_drift(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    threshold: float = 0.55,
    alpha: float = 0.01,
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
    from registry.scores import separability

    auc, p_value, rows = separability(reference, current, seed=seed, max_rows=max_rows)
    return Signal(
        "embedding_drift",
        auc,
        threshold,
        auc > threshold and p_value < alpha,
        {"rows": list(rows), "p_value": p_value},
    )


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probabilities: the temperature comes from the model version (fitted at training time)."""
    z = np.asarray(logits, dtype=float) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_accuracy(probs: np.ndarray) -> float:
    """The accuracy a calibrated model expects of itself: the mean of its top-class probability."""
    return float(np.mean(np.max(probs, axis=1))) if len(probs) else float("nan")


def quality_estimate(
    reference_probs: np.ndarray, current_probs: np.ndarray, *, max_drop: float = 0.05
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
    max_drop: float = 0.05,
    min_labels: int = 30,
    alpha: float = 0.01,
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
