"""A run's challenger and its champion on the same held-out rows: the pairs of predictions the gate
compares, and the challenger's outputs that its version is evaluated, calibrated and profiled on.

The recent held-out rows (the latest labels) judge the gain; the champion's own evaluation rows, when
the run has them, judge the forgetting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from retrain.assemble import RunData
from retrain.evaluate import forward_outputs
from retrain.gate import PairedPredictions
from retrain.lifecycle import Outputs, label_ids
from retrain.train import TrainResult
from runtime.modelio import LoadedClassifier

MIN_PROFILE_ROWS = 50  # recent held-out rows below which the reference profile also takes the old ones


@dataclass(frozen=True)
class HeldOutComparison:
    recent: PairedPredictions
    old: PairedPredictions | None  # on the champion's own evaluation rows, when the run has some
    heldout: Outputs  # the challenger's on the recent held-out rows
    profile: Outputs  # the rows of the challenger's reference profile
    champion_logits: np.ndarray  # the champion's on the recent held-out rows


def compare_models(
    challenger: TrainResult,
    champion: LoadedClassifier,
    data: RunData,
    labels: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
) -> HeldOutComparison:
    """Both models on the run's held-out rows, ``challenger`` with ``max_length`` tokens per text and
    ``champion`` with its own."""
    recent, heldout, champion_logits = _both_models(
        challenger, champion, data.recent_heldout, labels, max_length, batch_size
    )
    old, profile = None, heldout
    # The reference profile is what the challenger is promoted to serve: the recent traffic. Mixing in
    # the (often much larger) old held-out set would make the very data it was trained on look drifted.
    if len(data.old_heldout):
        old, old_outputs, _ = _both_models(
            challenger, champion, data.old_heldout, labels, max_length, batch_size
        )
        if len(data.recent_heldout) < MIN_PROFILE_ROWS:  # too few recent rows to stand alone
            profile = stacked(heldout, old_outputs)
    return HeldOutComparison(recent, old, heldout, profile, champion_logits)


def stacked(first: Outputs, second: Outputs) -> Outputs:
    """The outputs on both sets of rows, the first's rows first."""
    return Outputs(
        pd.concat([first.rows, second.rows], ignore_index=True),
        np.vstack([first.logits, second.logits]),
        np.vstack([first.pooled, second.pooled]),
    )


def _both_models(
    challenger: TrainResult,
    champion: LoadedClassifier,
    rows: pd.DataFrame,
    labels: Sequence[str],
    max_length: int,
    batch_size: int,
) -> tuple[PairedPredictions, Outputs, np.ndarray]:
    """Both models on the same rows: the pairs, the challenger's outputs, the champion's logits."""
    logits, pooled = _outputs(challenger, rows, max_length, batch_size)
    champion_logits, _ = _outputs(champion, rows, champion.max_length, batch_size)
    pairs = PairedPredictions(label_ids(rows, labels), champion_logits.argmax(1), logits.argmax(1))
    return pairs, Outputs(rows, logits, pooled), champion_logits


def _outputs(
    model: TrainResult | LoadedClassifier, rows: pd.DataFrame, max_length: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    return forward_outputs(
        model.model,
        model.tokenizer,
        rows["text"].tolist(),
        max_length=max_length,
        batch_size=batch_size,
        progress=False,
    )
