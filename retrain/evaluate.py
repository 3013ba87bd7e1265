"""Batched inference and classification metrics for held-out evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def forward_outputs(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 64,
    progress: bool = True,
    desc: str = "evaluating",
) -> tuple[np.ndarray, np.ndarray]:
    """Class logits and mean-pooled embeddings (the serving computation), one row per text, in order.

    Texts are batched by length so little time goes to padding; results are put back in order. A text
    longer than ``max_length`` tokens is truncated at the END (``truncation=True``): its head is kept,
    as in training and serving.
    """
    import torch
    from tqdm.auto import tqdm

    from runtime.inference import PooledClassifier, input_names

    order = np.argsort([len(t) for t in texts], kind="stable")
    logits_out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    pooled_out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    device = next(model.parameters()).device
    model.eval()
    head = None
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch", disable=not progress):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            ).to(device)
            head = head or PooledClassifier(model, input_names(enc))
            logits, pooled = head(*(enc[name] for name in head.input_names))
            logits_out[idx] = logits.float().cpu().numpy()
            pooled_out[idx] = pooled.float().cpu().numpy()
    return logits_out, pooled_out


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, *, bins: int = 10) -> float:
    """Gap between confidence and accuracy, averaged over equal-width confidence bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            total += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(total)


def classification_metrics(probs: np.ndarray, y_true: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision / recall / F1 / support, and calibration error."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[v] for v in y_true])
    pred = probs.argmax(axis=1)
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=ids, zero_division=0)
    return {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=ids, average="macro", zero_division=0)),
        "ece": expected_calibration_error(probs, y),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }
