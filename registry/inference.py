"""The one forward pass every part uses: class logits and the mean-pooled last hidden state.

Serving traces it, training evaluates with it and stores the reference profile from it, so the
embeddings the monitor compares are computed the same way on both sides.
"""

from __future__ import annotations

from typing import Any

import torch


class PooledClassifier(torch.nn.Module):
    """Wraps a sequence classifier: ``forward(*inputs) -> (logits, pooled)``, inputs in ``input_names`` order."""

    def __init__(self, model: Any, input_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: Any) -> tuple[Any, Any]:
        named = dict(zip(self.input_names, inputs, strict=True))
        out = self.model(**named, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        mask = named["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return out.logits, pooled


def input_names(encoded: Any) -> tuple[str, ...]:
    return tuple(name for name in ("input_ids", "attention_mask", "token_type_ids") if name in encoded)
