"""One drift check: the champion's reference profile against the current window of logged
predictions. Signals come from the pure functions in ``monitor.signals``; embedding drift and the
human-readable report come from Evidently. Nothing here touches the database: the scheduler loads the
window, calls :func:`compute_check`, and stores the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor import signals
from monitor.estimates import estimate_window
from monitor.signals import (
    Signal,
    descriptor_drift,
    embedding_drift,
    prediction_drift,
    quality_estimate,
    realized_accuracy,
)
from runtime.scores import softmax


@dataclass(frozen=True)
class CheckConfig:
    """The thresholds of one check; each default is its signal's own (``monitor.signals``)."""

    prediction_threshold: float = signals.PREDICTION_THRESHOLD
    length_threshold: float = signals.DESCRIPTOR_THRESHOLD
    embedding_threshold: float = signals.EMBEDDING_THRESHOLD
    # accuracy drop, estimated or realized; the job hands it to the trigger policy (MonitorConfig)
    quality_margin: float = signals.QUALITY_MARGIN
    realized_alpha: float = signals.ALPHA  # a realized drop must also be significant at this level
    min_labels: int = signals.MIN_LABELS
    min_rows: int = 50


@dataclass(frozen=True)
class Window:
    """Logged predictions of one window, oldest first."""

    texts: Sequence[str]
    predicted: Sequence[str]
    probs: np.ndarray  # (n, classes) as served (temperature 1)
    true_labels: Sequence[str | None]  # the label given later through /feedback, if any
    embeddings: np.ndarray | None = None  # (m, hidden): the rows that kept an embedding (sampled logging)
    embedding_rows: Sequence[int] | None = None  # which rows those are (None: all, in order)


@dataclass(frozen=True)
class CheckOutcome:
    signals: tuple[Signal, ...]
    # label-free estimates of the window's accuracy, with intervals (monitor.estimates.estimate_window)
    estimates: dict[str, Any] | None = None

    @property
    def drifted_signals(self) -> tuple[str, ...]:
        """The signals that say the data moved: the input and output distributions, and the realized
        accuracy (a significant drop on labeled rows is drift of P(label | text) even where the texts
        look alike). The label-free accuracy estimate only says how much a drift hurts."""
        return tuple(s.name for s in self.signals if s.drifted and s.name != "estimated_accuracy_drop")

    def signal(self, name: str) -> Signal | None:
        return next((s for s in self.signals if s.name == name), None)

    def scores(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            s.name: {
                "score": None if np.isnan(s.score) else s.score,
                "threshold": s.threshold,
                "drifted": s.drifted,
                **s.details,
            }
            for s in self.signals
        }
        if self.estimates is not None:
            out["accuracy_estimates"] = self.estimates
        return out


def compute_check(
    reference: pd.DataFrame,
    window: Window,
    *,
    labels: Sequence[str],
    temperature: float,
    reference_accuracy: float,
    reference_accuracy_rows: int | None = None,
    config: CheckConfig = CheckConfig(),
    report_dir: Path | None = None,
) -> CheckOutcome:
    """All signals for one window; with ``report_dir``, an Evidently HTML + JSON report is written there."""
    if len(window.texts) < config.min_rows:
        raise ValueError(
            f"a drift check needs at least {config.min_rows} logged predictions, got {len(window.texts)}"
        )
    reference_probs = np.array(reference["probs"].tolist(), dtype=np.float64)
    current_probs = calibrated(window.probs, temperature)
    signals = [
        prediction_drift(
            reference["predicted"].tolist(),
            list(window.predicted),
            labels=labels,
            threshold=config.prediction_threshold,
        ),
        descriptor_drift(
            reference["text_length"].to_numpy(),
            np.array([len(t) for t in window.texts]),
            threshold=config.length_threshold,
        ),
        quality_estimate(reference_probs, current_probs, max_drop=config.quality_margin),
        _realized(window, reference_accuracy, reference_accuracy_rows, config),
    ]
    estimates = estimate_window(
        current_probs, reference_probs, (reference["predicted"] == reference["label"]).to_numpy()
    )
    if window.embeddings is not None and len(window.embeddings) >= config.min_rows:
        signals.append(_embedding_signal(reference, window, window.embeddings, config, report_dir))
    return CheckOutcome(tuple(signals), estimates)


def calibrated(served_probs: np.ndarray, temperature: float) -> np.ndarray:
    """The window's probabilities as served (temperature 1) recalibrated with the version's temperature."""
    logits = np.log(np.clip(served_probs, 1e-12, 1.0))
    return softmax(logits, temperature).astype(np.float64)


def _realized(
    window: Window, reference_accuracy: float, reference_rows: int | None, config: CheckConfig
) -> Signal:
    """The realized accuracy of the window's labeled predictions against the reference accuracy."""
    labeled = [(t, p) for t, p in zip(window.true_labels, window.predicted, strict=True) if t is not None]
    return realized_accuracy(
        [t for t, _ in labeled],
        [p for _, p in labeled],
        reference_accuracy=reference_accuracy,
        reference_n=reference_rows,
        max_drop=config.quality_margin,
        min_labels=config.min_labels,
        alpha=config.realized_alpha,
    )


def _embedding_signal(
    reference: pd.DataFrame,
    window: Window,
    embeddings: np.ndarray,
    config: CheckConfig,
    report_dir: Path | None,
) -> Signal:
    """Evidently's embedding drift on the window's ``embeddings``, confirmed by a cross-validated AUC
    before it fires."""
    from monitor.evidently_report import evidently_drift

    score = evidently_drift(reference, window, report_dir=report_dir)
    # Evidently scores one random train/test split: on a few hundred rows its AUC swings by +-0.08
    # and crossed the threshold on undrifted windows. A cross-validated AUC, where every row is
    # scored once, must confirm it, above the threshold and significant, before the signal fires.
    confirm = embedding_drift(
        np.array(reference["embedding"].tolist(), dtype=np.float32),
        embeddings,
        threshold=config.embedding_threshold,
    )
    return Signal(
        "embedding_drift",
        score,
        config.embedding_threshold,
        score > config.embedding_threshold and confirm.drifted,
        {
            "method": "Evidently EmbeddingsDrift (model), confirmed by a 5-fold cross-validated AUC",
            "cross_validated_auc": confirm.score,
            "cross_validated_p_value": confirm.details["p_value"],
            "rows": [len(reference), len(embeddings)],
        },
    )
