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


def predict_labels(loaded: Any, texts: list[str], *, batch_size: int = 32) -> list[str]:
    """The label ``loaded`` (a :class:`runtime.modelio.LoadedClassifier`) gives each text, in batches,
    tokenized as serving and training do (the head of a long text, ``max_length`` tokens)."""
    device = next(loaded.model.parameters()).device
    out: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = loaded.tokenizer(
                texts[start : start + batch_size],
                truncation=True,
                max_length=loaded.max_length,
                padding=True,
                return_tensors="pt",
            ).to(device)
            logits = loaded.model(**enc).logits
            out.extend(loaded.labels[i] for i in logits.argmax(dim=-1).tolist())
    return out

