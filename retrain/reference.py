"""The reference profile stored inside every model artifact: what the model saw and said on held-out
rows at training time. The drift monitor compares served windows against it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from runtime.scores import softmax

MAX_REFERENCE_ROWS = 2000


def write_reference_profile(
    path: Path,
    heldout: pd.DataFrame,
    logits: np.ndarray,
    pooled: np.ndarray,
    labels: Sequence[str],
    temperature: float,
    *,
    seed: int,
) -> Path:
    """Up to ``MAX_REFERENCE_ROWS`` held-out rows: text, true label, domain, predicted label, calibrated
    probabilities, text length and the float16 pooled embedding (as served)."""
    n = len(heldout)
    keep = np.sort(np.random.default_rng(seed).choice(n, size=min(n, MAX_REFERENCE_ROWS), replace=False))
    probs = softmax(logits[keep], temperature)
    frame = pd.DataFrame(
        {
            "text": heldout["text"].to_numpy()[keep],
            "label": heldout["label"].to_numpy()[keep],
            "domain": heldout["domain"].to_numpy()[keep],
            "predicted": [labels[i] for i in probs.argmax(axis=1)],
            "probs": [row.tolist() for row in probs],
            "text_length": [len(t) for t in heldout["text"].to_numpy()[keep]],
            "embedding": [row.astype(np.float16).astype(np.float32).tolist() for row in pooled[keep]],
        }
    )
    frame.to_parquet(path, index=False)
    return path


def read_reference_profile(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)
