"""Label-free estimates of a window's accuracy, each with a sampling interval, and when they disagree.

Two estimators read the calibrated confidences of the window's predictions (the top class's probability
after the version's temperature):

- **Expected accuracy** (as NannyML's CBPE does for tabular models): the mean confidence. If the model
  is calibrated on this window, each prediction is right with probability equal to its confidence, so
  the number right is a sum of independent Bernoulli trials; the interval is that sum's normal
  approximation (variance ``sum c (1 - c)``).
- **Average Thresholded Confidence** (ATC; Garg et al., "Leveraging unlabeled data to predict
  out-of-distribution performance", ICLR 2022): a threshold ``t`` fitted on the version's held-out rows
  so that the share of them with confidence above ``t`` equals their accuracy; the window's estimate is
  its share above ``t``, with a Wilson interval over the window's rows (the threshold's own error, from a
  finite held-out set, is not in it).

Both assume that what changed is P(text), not P(label | text): a model is as sure of itself on a
text whose correct label has changed as it was before, so neither estimate can see that change (only
labels can: the realized-accuracy signal). When the two disagree (their intervals apart by more than
``DISAGREE_PTS``), the confidences no longer behave as they did on the held-out rows: calibration has
broken, which is how such a change can show before labels arrive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

LEVEL = 0.95  # of every interval here
DISAGREE_PTS = 0.03  # the gap between the two intervals that flags a disagreement
EXPECTED = "expected_accuracy"
ATC = "atc"


@dataclass(frozen=True)
class Estimate:
    method: str  # EXPECTED or ATC
    value: float
    low: float
    high: float
    rows: int

    def covers(self, accuracy: float) -> bool:
        return self.low <= accuracy <= self.high


def confidences(probs: np.ndarray) -> np.ndarray:
    """The top-class probability of each row (calibrated rows in, calibrated confidences out)."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs.max(axis=1) if len(probs) else np.zeros(0)


def expected_accuracy(conf: np.ndarray, *, level: float = LEVEL) -> Estimate:
    conf = np.asarray(conf, dtype=np.float64)
    n = len(conf)
    if n == 0:
        return Estimate(EXPECTED, float("nan"), float("nan"), float("nan"), 0)
    mean = float(conf.mean())
    sd = float(np.sqrt(np.sum(conf * (1.0 - conf)))) / n
    z = float(stats.norm.ppf(0.5 + level / 2))
    return Estimate(EXPECTED, mean, max(0.0, mean - z * sd), min(1.0, mean + z * sd), n)


def atc_threshold(reference_conf: np.ndarray, reference_correct: np.ndarray) -> float:
    """The confidence above which the held-out rows' share equals their accuracy (ATC's threshold)."""
    conf = np.asarray(reference_conf, dtype=np.float64)
    correct = np.asarray(reference_correct, dtype=bool)
    if not len(conf):
        return float("nan")
    return float(np.quantile(conf, 1.0 - correct.mean(), method="lower"))


def atc(conf: np.ndarray, threshold: float, *, level: float = LEVEL) -> Estimate:
    conf = np.asarray(conf, dtype=np.float64)
    n = len(conf)
    if n == 0 or np.isnan(threshold):
        return Estimate(ATC, float("nan"), float("nan"), float("nan"), n)
    above = int(np.sum(conf > threshold))
    ci = stats.binomtest(above, n).proportion_ci(confidence_level=level, method="wilson")
    return Estimate(ATC, above / n, float(ci.low), float(ci.high), n)


def disagree(a: Estimate, b: Estimate, *, gap: float = DISAGREE_PTS) -> bool:
    """The intervals are more than ``gap`` apart."""
    if np.isnan(a.value) or np.isnan(b.value):
        return False
    return bool(max(a.low, b.low) - min(a.high, b.high) > gap)


def estimate_window(
    window_probs: np.ndarray,
    reference_probs: np.ndarray,
    reference_correct: np.ndarray,
    *,
    level: float = LEVEL,
) -> dict[str, Any]:
    """Both estimates of the window's accuracy from calibrated probabilities, and whether they disagree:
    the ``accuracy_estimates`` block a drift check stores."""
    reference_conf = confidences(reference_probs)
    threshold = atc_threshold(reference_conf, reference_correct)
    conf = confidences(window_probs)
    expected, thresholded = expected_accuracy(conf, level=level), atc(conf, threshold, level=level)
    return {
        EXPECTED: _finite(asdict(expected)),
        ATC: _finite({**asdict(thresholded), "threshold": threshold}),
        "level": level,
        "disagree": disagree(expected, thresholded),
        "disagree_gap": DISAGREE_PTS,
    }


def _finite(block: dict[str, Any]) -> dict[str, Any]:
    """NaN as None: the block is stored as JSON, which PostgreSQL keeps without NaN."""
    return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in block.items()}


FALL_PTS = 0.05  # the drop below the version's held-out accuracy that a backtest's alerts are about


def backtest(
    checks: list[dict[str, Any]], reference_accuracy: dict[int, float], *, fall: float = FALL_PTS
) -> dict[str, Any]:
    """Estimated against realized accuracy over drift checks. Each check is ``{"version", "realized",
    "estimates"}`` (``estimates`` as :func:`estimate_window` returns it, ``realized`` the accuracy every
    label of the check's window shows). Per estimator: mean absolute error, the share of intervals that
    held the realized accuracy, and the precision and recall of its alerts that accuracy fell more than
    ``fall`` below the version's held-out accuracy (``reference_accuracy``)."""
    scored = [
        c
        for c in checks
        if c.get("estimates") and c.get("realized") is not None and c["version"] in reference_accuracy
    ]
    out: dict[str, Any] = {"checks": len(scored), "fall": fall}
    for method in (EXPECTED, ATC):
        rows = [(c["estimates"][method], c["realized"], reference_accuracy[c["version"]]) for c in scored]
        rows = [(e, r, ref) for e, r, ref in rows if e.get("value") is not None and not np.isnan(e["value"])]
        if not rows:
            out[method] = {"checks": 0}
            continue
        errors = [abs(e["value"] - r) for e, r, _ in rows]
        covered = [e["low"] <= r <= e["high"] for e, r, _ in rows]
        alerted = [ref - e["value"] > fall for e, _, ref in rows]
        fell = [ref - r > fall for _, r, ref in rows]
        hits = sum(a and f for a, f in zip(alerted, fell, strict=True))
        out[method] = {
            "checks": len(rows),
            "mae": float(np.mean(errors)),
            "coverage": float(np.mean(covered)),
            "alerts": int(sum(alerted)),
            "falls": int(sum(fell)),
            "precision": hits / sum(alerted) if any(alerted) else None,
            "recall": hits / sum(fell) if any(fell) else None,
        }
    return out
