"""Training phases: a head-only warm-up before the whole model trains.

A new classification head starts random; its first gradients are large and noisy, and flowing back
through a pretrained encoder they can disturb what pretraining learned before the head is any good
(Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution",
ICLR 2022: linear probing, then fine-tuning). With ``head_warmup_epochs`` = N the encoder is frozen for
the first N epochs, so only the head (and the pooler) learns; then every parameter that was trainable
before trains again. Parameters frozen by ``freeze_layers`` stay frozen throughout.

AdamW skips a parameter whose gradient is None, so freezing by ``requires_grad`` mid-training needs no
new optimizer; the learning-rate schedule runs over the whole training as usual.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def encoder_parameters(model: Any) -> list[Any]:
    """The parameters of the model's encoder (its ``base_model``: embeddings and layers), not its head."""
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return []
    head = {id(p) for name, p in model.named_parameters() if name.startswith(("classifier", "score"))}
    return [p for p in base.parameters() if id(p) not in head]


def head_warmup(model: Any, epochs: int) -> Any:
    """A Trainer callback freezing ``model``'s encoder for the first ``epochs`` epochs (none when 0)."""
    from transformers import TrainerCallback

    class HeadWarmup(TrainerCallback):
        def __init__(self) -> None:
            self.thawed: list[Any] = []

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if epochs > 0 and float(state.epoch or 0.0) < epochs:
                self.thawed = [p for p in encoder_parameters(model) if p.requires_grad]
                for p in self.thawed:
                    p.requires_grad_(False)
                logger.info("head-only warm-up: %d encoder tensors frozen for %d epoch(s)", len(self.thawed), epochs)

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.thawed and float(state.epoch or 0.0) >= epochs - 1e-6:
                for p in self.thawed:
                    p.requires_grad_(True)
                logger.info("head-only warm-up over after epoch %.0f: the encoder trains", state.epoch)
                self.thawed = []

    return HeadWarmup()
