"""The first model: fine-tune a base model on labeled data, evaluate it, register it as champion.

``bootstrap()`` reads like its steps: check data -> split -> choose max_length -> train -> evaluate ->
store -> register. Nothing is written before the data and the base model have been checked, and a
failure after that leaves no version and no new artifact behind (the run row records the failure).
``max_length="auto"`` is resolved on the training rows before anything trains: the model is trained,
evaluated and saved with that int, and the version records the coverage table (``max_length_auto``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from registry.artifacts import ArtifactStore
from registry.entities import CHAMPION, ArtifactRef, ModelVersion, NewModelVersion, RunStatus, RunTrigger
from registry.errors import AlreadyExistsError, NotFoundError
from registry.modelio import save_classifier
from registry.store import Registry
from retrain.calibration import calibrate
from retrain.config import TrainConfig
from retrain.data import ColumnSpec, Split, load_labeled_file, snapshot_digest, split_heldout
from retrain.evaluate import classification_metrics, forward_outputs, softmax
from retrain.lengths import LengthChoice
from retrain.lifecycle import export_onnx, record_failure, remove_unreferenced, store_new
from retrain.quality import assess
from retrain.reference import REFERENCE_PROFILE, write_reference_profile
from retrain.train import fine_tune, resolve_base_model, resolve_config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootstrapRequest:
    data: Path
    columns: ColumnSpec
    train: TrainConfig = field(default_factory=TrainConfig)
    model_name: str = "sentiment"
    domains: tuple[str, ...] = ()
    labels: tuple[str, ...] | None = None
    force: bool = False
    actor: str = "driftline bootstrap"


@dataclass(frozen=True)
class BootstrapResult:
    version: ModelVersion
    run_id: int
    metrics: dict[str, Any]
    n_train: int
    n_heldout: int
    seconds: float
    length_choice: LengthChoice | None = None  # how max_length="auto" was resolved, when it was


def bootstrap(
    request: BootstrapRequest,
    registry: Registry,
    artifacts: ArtifactStore,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> BootstrapResult:
    started = time.perf_counter()
    cfg = request.train
    data = load_labeled_file(
        request.data,
        request.columns,
        allowed_labels=request.labels,
        domains=request.domains,
        cache_dir=cache_dir,
    )
    base_path = resolve_base_model(cfg.base_model)
    _refuse_existing_champion(registry, request)
    split = _cap_train(split_heldout(data, test_size=cfg.test_size, seed=cfg.seed), cfg)
    cfg, length_choice = resolve_config(cfg, split.train["text"].tolist(), base_path)
    max_length = cfg.resolved_max_length
    auto = {"max_length_auto": length_choice.to_dict()} if length_choice else {}
    logger.info(
        "bootstrap %s: %d train / %d held-out rows (%s split), labels %s",
        request.model_name,
        len(split.train),
        len(split.heldout),
        split.method,
        ", ".join(data.labels),
    )

    run = registry.create_run(
        request.model_name,
        trigger=RunTrigger.BOOTSTRAP,
        status=RunStatus.RUNNING,
        config={
            "train": cfg.to_dict(),
            **auto,
            "data": str(request.data),
            "domains": list(request.domains),
        },
    )
    new_artifacts: list[ArtifactRef] = []
    version: ModelVersion | None = None
    try:
        trained = fine_tune(split.train, data.labels, cfg, base_path=base_path, progress=progress)
        logits, pooled = forward_outputs(
            trained.model,
            trained.tokenizer,
            split.heldout["text"].tolist(),
            max_length=max_length,
            batch_size=cfg.eval_batch_size,
            progress=progress,
        )
        probs = softmax(logits)
        metrics = classification_metrics(probs, split.heldout["label"].tolist(), data.labels)
        metrics["quality"] = assess(
            [data.labels[i] for i in probs.argmax(axis=1)],
            split.heldout["label"].tolist(),
            data.labels,
            metrics["macro_f1"],
        )
        label_index = {label: i for i, label in enumerate(data.labels)}
        calibration = calibrate(logits, np.array([label_index[v] for v in split.heldout["label"]]))
        metrics["train"] = {"n": len(split.train), **trained.summary()}
        with tempfile.TemporaryDirectory(prefix="driftline-bootstrap-") as tmp:
            data_ref = store_new(artifacts, _write_snapshot(split, Path(tmp) / "data"), new_artifacts)
            model_dir = save_classifier(
                trained.model,
                trained.tokenizer,
                Path(tmp) / "model",
                max_length=max_length,
                extra={"base_model": cfg.base_model, "seed": cfg.seed, "calibration": calibration},
            )
            write_reference_profile(
                model_dir / REFERENCE_PROFILE,
                split.heldout,
                logits,
                pooled,
                data.labels,
                calibration["temperature"],
                seed=cfg.seed,
            )
            metrics["onnx"] = export_onnx(
                model_dir, trained, split.heldout, (logits, pooled), data.labels, max_length, seed=cfg.seed
            )
            model_ref = store_new(artifacts, model_dir, new_artifacts)
        version = registry.register_version(
            request.model_name,
            NewModelVersion(
                base_model=cfg.base_model,
                artifact=model_ref,
                labels=data.labels,
                metrics=metrics,
                config={
                    **cfg.to_dict(),
                    **auto,
                    "split": split.method,
                    "source": str(request.data),
                    "domains": list(request.domains),
                    "dropped_duplicates": data.dropped_duplicates,
                },
                training_run_id=run.id,
                data_snapshot=data_ref,
                calibration=calibration,
                description=f"bootstrap from {Path(request.data).name}",
            ),
            set_aliases=[CHAMPION],
            actor=request.actor,
            reason=f"bootstrap from {Path(request.data).name}: held-out macro-F1 {metrics['macro_f1']:.3f}",
        )
        registry.finish_run(run.id, RunStatus.SUCCEEDED, data_snapshot_sha256=data_ref.sha256)
    except BaseException as exc:
        if version is None:
            remove_unreferenced(registry, artifacts, new_artifacts)
        record_failure(registry, run.id, exc)
        raise
    return BootstrapResult(
        version=version,
        run_id=run.id,
        metrics=metrics,
        n_train=len(split.train),
        n_heldout=len(split.heldout),
        seconds=time.perf_counter() - started,
        length_choice=length_choice,
    )


def _refuse_existing_champion(registry: Registry, request: BootstrapRequest) -> None:
    if request.force:
        return
    try:
        champion = registry.get_version_by_alias(request.model_name, CHAMPION)
    except NotFoundError:
        return
    raise AlreadyExistsError(
        f"model '{request.model_name}' already has a champion (v{champion.version}); bootstrap makes a first "
        "model: pass --force to register a new one anyway, or --model-name for another model"
    )


def _cap_train(split: Split, cfg: TrainConfig) -> Split:
    if cfg.max_train_examples is None or len(split.train) <= cfg.max_train_examples:
        return split
    train = split.train.sample(n=cfg.max_train_examples, random_state=cfg.seed).sort_index()
    return Split(train.reset_index(drop=True), split.heldout, split.method)


def _write_snapshot(split: Split, out_dir: Path) -> Path:
    """The exact examples used, so later runs can replay them and gates can re-use the held-out set."""
    out_dir.mkdir(parents=True)
    for name, frame in (("train", split.train), ("heldout", split.heldout)):
        frame.to_parquet(out_dir / f"{name}.parquet", index=False)
    (out_dir / "README.md").write_text(
        f"train: {len(split.train)} rows, sha256 {snapshot_digest(split.train)}\n"
        f"heldout: {len(split.heldout)} rows, sha256 {snapshot_digest(split.heldout)} ({split.method} split)\n"
    )
    return out_dir
