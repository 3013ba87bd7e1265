"""The model in service: one forward pass per batch gives class probabilities and pooled embeddings."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from registry.entities import ModelVersion
from registry.modelio import LoadedClassifier

logger = logging.getLogger(__name__)

WARM_UP_TEXTS = ["warm up", "a slightly longer sentence to warm up the model with"]


@dataclass(frozen=True)
class BatchOutput:
    probs: np.ndarray  # (n, classes) float32
    embeddings: np.ndarray | None  # (n, hidden) float16, mean-pooled last layer
    labels: tuple[str, ...]
    version: ModelVersion
    seconds: float


class ServingModel:
    """A loaded, warmed classifier pinned to one registry version."""

    def __init__(self, loaded: LoadedClassifier, version: ModelVersion) -> None:
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.labels = loaded.labels
        self.max_length = loaded.max_length
        self.version = version
        self.device = next(self.model.parameters()).device

    def predict(self, texts: Sequence[str], *, embeddings: bool = True) -> BatchOutput:
        import torch

        started = time.perf_counter()
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            out = self.model(**enc, output_hidden_states=embeddings)
            probs = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
            pooled = None
            if embeddings:
                mask = enc["attention_mask"].unsqueeze(-1).to(out.hidden_states[-1].dtype)
                summed = (out.hidden_states[-1] * mask).sum(dim=1)
                pooled = (summed / mask.sum(dim=1).clamp(min=1.0)).to(torch.float16).cpu().numpy()
        return BatchOutput(probs, pooled, self.labels, self.version, time.perf_counter() - started)

    def warm_up(self) -> float:
        """Run a couple of batches so the first real request pays no start-up cost; returns seconds."""
        started = time.perf_counter()
        for size in (1, 4):
            self.predict(WARM_UP_TEXTS * size)
        return time.perf_counter() - started


class ModelHolder:
    """The current model. Readers take ``current`` once per batch; a swap is one reference assignment,
    so a batch in flight finishes on the model it started with."""

    def __init__(self) -> None:
        self.current: ServingModel | None = None
        self.swaps = 0

    def swap(self, model: ServingModel) -> ServingModel | None:
        previous, self.current = self.current, model
        if previous is not None:
            self.swaps += 1
        return previous
