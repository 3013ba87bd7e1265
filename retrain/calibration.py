"""Temperature scaling, fitted on held-out rows at training time and stored with the model version.

The monitor uses the stored temperature to turn logged confidences into a label-free accuracy estimate.
"""

from __future__ import annotations

import numpy as np

from retrain.evaluate import expected_calibration_error, softmax


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The T > 0 that minimises the negative log-likelihood of ``y_true`` under ``softmax(logits / T)``."""
    y = np.asarray(y_true)

    def nll(t: float) -> float:
        p = softmax(logits, t)
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))

    lo, hi = np.log(0.05), np.log(20.0)
    for _ in range(60):  # golden-section search on log T
        a = hi - (hi - lo) / 1.618
        b = lo + (hi - lo) / 1.618
        if nll(np.exp(a)) < nll(np.exp(b)):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def calibrate(logits: np.ndarray, y_true: np.ndarray) -> dict[str, float]:
    """Fit the temperature and report the calibration error before and after."""
    y = np.asarray(y_true)
    t = fit_temperature(logits, y)
    return {
        "temperature": t,
        "ece_raw": expected_calibration_error(softmax(logits), y),
        "ece_calibrated": expected_calibration_error(softmax(logits, t), y),
        "rows": int(len(y)),
    }
