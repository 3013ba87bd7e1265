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
