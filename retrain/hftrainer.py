"""The Hugging Face Trainer as Driftline sets it up: a class-weighted loss, validation by macro-F1,
evaluations and checkpoints at the same moments, and DDP batches that add up to one process's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from contracts.train import TrainConfig


def validation_metrics(eval_pred: Any) -> dict[str, float]:
    """Macro-F1 and accuracy of the argmax predictions (reduced to ids before they are gathered)."""
    from sklearn.metrics import f1_score

    pred, y = np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids)
    return {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
    }


def argmax_logits(logits: Any, labels: Any) -> Any:
    return logits.argmax(dim=-1)


def weighted_trainer_class() -> type:
    """A Trainer whose loss can weigh classes (built lazily: importing this module stays light)."""
    import torch
    from transformers import Trainer

    class WeightedTrainer(Trainer):
        def __init__(self, *args: Any, class_weights: list[float] | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None

        def compute_loss(
            self,
            model: torch.nn.Module,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: torch.Tensor | int | None = None,
        ) -> torch.Tensor | tuple[torch.Tensor, Any]:
            if self._weights is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = torch.nn.functional.cross_entropy(
                outputs.logits, labels, weight=self._weights.to(outputs.logits.device)
            )
            return (loss, outputs) if return_outputs else loss

    return WeightedTrainer


def training_args(
    cfg: TrainConfig,
    out_dir: Path,
    *,
    n_train: int,
    validate: bool,
    keep: bool,
    progress: bool,
    world_size: int = 1,
) -> Any:
    """Trainer arguments: evaluate and checkpoint at the same moments (each epoch, or every
    ``eval_steps``), keep the best checkpoint by validation macro-F1, and save optimizer state only
    where a killed run may resume (``keep``).

    With several processes (DDP, ``world_size`` > 1) each one takes ``batch_size / world_size`` rows
    per step (rounded up), so a step still sees about ``batch_size`` rows and the protocol (steps,
    warm-up, learning rate) stays the one of a single process. On CPU the Trainer only runs DDP when
    told to use the CPU (without ``use_cpu`` it trains every rank on its own), over gloo.
    """
    import torch
    from transformers import TrainingArguments

    per_device = -(-cfg.batch_size // world_size)
    steps_per_epoch = -(-n_train // (per_device * world_size))
    moment = "steps" if cfg.eval_steps else "epoch"
    save = moment if validate or keep else "no"
    on_cpu = world_size > 1 and not torch.cuda.is_available()
    ddp: dict[str, Any] = {"use_cpu": True, "ddp_backend": "gloo"} if on_cpu else {}
    return TrainingArguments(
        output_dir=str(out_dir),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=cfg.eval_batch_size,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a share of the total steps
        lr_scheduler_type="linear",
        seed=cfg.seed,
        data_seed=cfg.seed,
        eval_strategy=moment if validate else "no",
        eval_steps=cfg.eval_steps,
        save_strategy=save,
        # transformers annotates save_steps as float, yet takes None (TrainerState.compute_steps skips it)
        save_steps=cfg.eval_steps,  # type: ignore[arg-type]
        save_total_limit=2,  # the Trainer keeps the best one on top of these
        save_only_model=not keep,
        load_best_model_at_end=validate,
        metric_for_best_model="macro_f1" if validate else None,
        greater_is_better=True if validate else None,
        report_to="none",
        logging_steps=max(1, int(steps_per_epoch * cfg.epochs) // 10),
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        average_tokens_across_devices=False,
        ddp_find_unused_parameters=False,
        log_level="warning",
        **ddp,
    )
