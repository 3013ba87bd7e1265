"""Class probabilities from logits, computed one way everywhere: evaluation, calibration, the reference
profile, and serving on either runtime (numpy only, so importing it stays light)."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise probabilities of ``logits / temperature``, computed in float64, returned as float32."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def separability(
    reference: np.ndarray, current: np.ndarray, *, seed: int = 0, max_rows: int = 2000
) -> tuple[float, float, tuple[int, int]]:
    """Can a classifier tell two sets of embeddings apart? The ROC-AUC of a logistic regression, each row
    scored once by a model that did not see it (stratified folds, shuffled with ``seed``; at most
    ``max_rows`` rows of each set, sampled with ``seed``), and the one-sided Mann-Whitney p-value of
    those out-of-fold scores (the AUC's own test). Returns ``(auc, p_value, (rows_reference,
    rows_current))``; 0.5: indistinguishable. The monitor's embedding drift and the int8 accuracy check both ask it."""
    from scipy.stats import mannwhitneyu
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    ref = np.asarray(reference, dtype=np.float32)
    cur = np.asarray(current, dtype=np.float32)
    if len(ref) > max_rows:
        ref = ref[rng.choice(len(ref), max_rows, replace=False)]
    if len(cur) > max_rows:
        cur = cur[rng.choice(len(cur), max_rows, replace=False)]
    folds = int(min(5, len(ref), len(cur)))
    if folds < 2:
        raise ValueError(
            f"embedding separability needs at least 2 rows on each side, got {len(ref)} and {len(cur)}"
        )
    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(len(ref)), np.ones(len(cur))])
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(
        LogisticRegression(max_iter=500, C=0.1), x, y, cv=split, method="decision_function"
    )
    auc = float(roc_auc_score(y, scores))
    p_value = float(mannwhitneyu(scores[y == 1], scores[y == 0], alternative="greater").pvalue)
    return auc, p_value, (len(ref), len(cur))
