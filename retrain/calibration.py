"""Temperature scaling, fitted on held-out rows at training time and stored with the model version.

The monitor uses the stored temperature to turn logged confidences into a label-free accuracy estimate.
"""

from __future__ import annotations

import numpy as np

from retrain.evaluate import expected_calibration_error
from runtime.scores import softmax

LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))
LOG_T_TOLERANCE = 1e-8  # on log T: the fitted temperature is exact to about eight digits


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The T > 0 that minimises the negative log-likelihood of ``y_true`` under ``softmax(logits / T)``,
    searched on log T over [0.05, 20] (the log makes the search as fine for T < 1 as for T > 1)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y_true)

    def nll(log_t: float) -> float:
        p = softmax(logits, np.exp(log_t))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))

    best = minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": LOG_T_TOLERANCE})
    return float(np.exp(best.x))


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
