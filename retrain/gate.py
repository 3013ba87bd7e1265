"""The promotion gate: a pure function of two prediction sets on the same rows, plus declared margins.

The challenger is promoted only if, on the recent held-out rows, it beats the champion's macro-F1 by
at least ``min_improvement`` and the lower bound of a paired bootstrap confidence interval of the
difference is above ``ci_lower_bound``; and, on the champion's original evaluation rows (to catch
forgetting), it loses no more than ``max_old_regression``. Every check leaves a reason in words.

Usage (a doctest, run by ``tests/unit/test_doctests.py``): a champion that always answers "pos", a
challenger right on 90 of 100 recent rows and as good as the champion on its own rows:

>>> y = ["pos", "neg"] * 50
>>> champion, challenger = ["pos"] * 100, y[:90] + ["pos"] * 10
>>> result = evaluate_gate(
...     recent=PairedPredictions(y, champion, challenger),
...     old=PairedPredictions(y, champion, champion),
...     config=GateConfig(min_improvement=0.01),
... )
>>> result.passed
True
>>> for reason in result.reasons:
...     print(reason)
recent held-out (100 rows): challenger macro-F1 0.950 vs champion 0.333, +61.7 pts (95% CI +55.8 pts
to +67.0 pts): better by at least +1.0 pts, significantly
champion's evaluation set (100 rows): challenger macro-F1 0.333 vs 0.333, +0.0 pts: within the allowed
-2.0 pts
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from common.templating import pts
from contracts import GateConfig
from retrain.cost import ModelCost, cost_reasons, cost_summary


@dataclass(frozen=True)
class PairedPredictions:
    """True labels and both models' predicted labels (class indices) on the same rows."""

    y_true: np.ndarray
    champion: np.ndarray
    challenger: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.y_true)
        if len(self.champion) != n or len(self.challenger) != n:
            raise ValueError(
                f"paired predictions need equal lengths: {n} labels, {len(self.champion)} champion, "
                f"{len(self.challenger)} challenger"
            )


@dataclass(frozen=True)
class Comparison:
    rows: int
    champion_macro_f1: float
    challenger_macro_f1: float
    champion_accuracy: float
    challenger_accuracy: float
    difference: float  # challenger - champion, macro-F1
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]
    recent: Comparison
    old: Comparison | None
    config: GateConfig = field(default_factory=GateConfig)
    costs: dict[str, Any] | None = None  # {"champion": ModelCost, "challenger": ModelCost} as dicts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> float:
    """Mean F1 over ``classes`` (the labels present in ``y_true``; 0/0 counts as 0)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0))


def _macro_f1_batch(
    y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray, classes: np.ndarray
) -> np.ndarray:
    """Macro-F1 over ``classes`` of every bootstrap resample at once (``idx`` is (samples, n); 0/0
    counts as 0): scikit-learn's ``f1_score`` on each resample, vectorized, which a thousand resamples
    per gate need."""
    t = y_true[idx]
    p = y_pred[idx]
    out = np.zeros(idx.shape[0])
    for c in classes:
        tp = np.sum((p == c) & (t == c), axis=1)
        fp = np.sum((p == c) & (t != c), axis=1)
        fn = np.sum((p != c) & (t == c), axis=1)
        denom = 2 * tp + fp + fn
        out += np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)
    return out / max(1, len(classes))


def paired_bootstrap(pairs: PairedPredictions, config: GateConfig) -> Comparison:
    """Macro-F1 of both models and a percentile CI of the difference, resampling rows jointly."""
    y = np.asarray(pairs.y_true)
    a = np.asarray(pairs.champion)
    b = np.asarray(pairs.challenger)
    n = len(y)
    classes = np.unique(y)
    champion_f1, challenger_f1 = _macro_f1(y, a, classes), _macro_f1(y, b, classes)
    rng = np.random.default_rng(config.seed)
    diffs = []
    chunk = max(1, min(config.bootstrap_samples, 2_000_000 // max(1, n)))
    remaining = config.bootstrap_samples
    while remaining > 0:
        size = min(chunk, remaining)
        idx = rng.integers(0, n, size=(size, n))
        diffs.append(_macro_f1_batch(y, b, idx, classes) - _macro_f1_batch(y, a, idx, classes))
        remaining -= size
    d = np.concatenate(diffs) if diffs else np.zeros(1)
    tail = (1.0 - config.confidence) / 2.0
    return Comparison(
        rows=n,
        champion_macro_f1=champion_f1,
        challenger_macro_f1=challenger_f1,
        champion_accuracy=float(np.mean(a == y)) if n else 0.0,
        challenger_accuracy=float(np.mean(b == y)) if n else 0.0,
        difference=challenger_f1 - champion_f1,
        ci_low=float(np.quantile(d, tail)),
        ci_high=float(np.quantile(d, 1.0 - tail)),
    )


def evaluate_gate(
    recent: PairedPredictions,
    old: PairedPredictions | None = None,
    config: GateConfig | None = None,
    costs: tuple[ModelCost, ModelCost] | None = None,
) -> GateResult:
    """The verdict on ``recent`` (and ``old``) pairs, and with ``costs`` (champion's, challenger's) the
    latency and size budget; every check leaves a reason."""
    config = config or GateConfig()
    if len(recent.y_true) == 0:
        raise ValueError("the gate needs at least one recent held-out row")
    r = paired_bootstrap(recent, config)
    level = f"{config.confidence:.0%} CI"
    reasons = []
    passed = True
    gain = (
        f"recent held-out ({r.rows} rows): challenger macro-F1 {r.challenger_macro_f1:.3f} vs champion "
        f"{r.champion_macro_f1:.3f}, {pts(r.difference)} ({level} {pts(r.ci_low)} to {pts(r.ci_high)})"
    )
    if r.difference < config.min_improvement:
        passed = False
        reasons.append(f"{gain}: gain below the required {pts(config.min_improvement)}")
    elif r.ci_low <= config.ci_lower_bound:
        passed = False
        reasons.append(
            f"{gain}: not significant, the CI's lower bound is not above {pts(config.ci_lower_bound)}"
        )
    else:
        reasons.append(f"{gain}: better by at least {pts(config.min_improvement)}, significantly")
    o = None
    if old is not None and len(old.y_true):
        o = paired_bootstrap(old, config)
        change = (
            f"champion's evaluation set ({o.rows} rows): challenger macro-F1 {o.challenger_macro_f1:.3f} vs "
            f"{o.champion_macro_f1:.3f}, {pts(o.difference)}"
        )
        if o.difference < -config.max_old_regression:
            passed = False
            reasons.append(f"{change}: forgets more than the allowed {pts(-config.max_old_regression)}")
        else:
            reasons.append(f"{change}: within the allowed {pts(-config.max_old_regression)}")
    cost_dict = None
    if costs is not None:
        over = cost_reasons(*costs, max_increase=config.max_cost_increase)
        passed = passed and not over
        reasons.extend(over or [cost_summary(*costs, max_increase=config.max_cost_increase)])
        cost_dict = {"champion": costs[0].to_dict(), "challenger": costs[1].to_dict()}
    return GateResult(passed=passed, reasons=tuple(reasons), recent=r, old=o, config=config, costs=cost_dict)
