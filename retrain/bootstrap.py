"""The first model: fine-tune a base model on labeled data, evaluate it, register it as champion.

``bootstrap()`` reads like its steps: check data -> split -> choose max_length -> search the recipe and
train -> evaluate -> store -> register. The search (:mod:`retrain.search`) has no champion to start
from, so it starts from the given configuration and searches the whole space; it sees the training rows
only, and the held-out rows judge the chosen model afterwards. Nothing is written before the data and the base model have been checked, and a
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

from contracts.search import SearchConfig
from contracts.train import TrainConfig
from registry.artifacts import ArtifactStore
from registry.entities import CHAMPION, ModelVersion, RunStatus, RunTrigger
from registry.errors import AlreadyExistsError, NotFoundError
from registry.store import Registry
from retrain.data import ColumnSpec, LabeledData, Split, load_labeled_file, snapshot_digest, split_heldout
from retrain.evaluate import forward_outputs
from retrain.lengths import LengthChoice
from retrain.lifecycle import Candidate, Outputs, Registration, register_candidate, training_job
from retrain.search import search
from retrain.train import TrainResult, fine_tune, resolve_base_model, resolve_config

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
    search: SearchConfig = field(default_factory=lambda: SearchConfig(enabled=False))


@dataclass(frozen=True)
class BootstrapResult:
    version: ModelVersion
    run_id: int
    metrics: dict[str, Any]
    n_train: int
    n_heldout: int
    seconds: float
    length_choice: LengthChoice | None = None  # how max_length="auto" was resolved, when it was
    search: dict[str, Any] | None = None  # the recipe search's summary, when it ran


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
        config={"train": cfg.to_dict(), **auto, "data": str(request.data), "domains": list(request.domains)},
    )
    with training_job(registry, artifacts, run.id) as job:
        trained, cfg, searched = _train(request, split, data.labels, cfg, base_path, run.id, progress)
        candidate = _candidate(trained, split, data.labels, cfg, progress=progress, searched=searched)
        registration = _registration(request, data, split, cfg, auto, run.id, searched=searched)
        version, metrics = register_candidate(candidate, registration, registry, artifacts, job)
        registry.finish_run(run.id, RunStatus.SUCCEEDED, data_snapshot_sha256=version.data_snapshot_sha256)
    return BootstrapResult(
        version=version,
        run_id=run.id,
        metrics=metrics,
        n_train=len(split.train),
        n_heldout=len(split.heldout),
        seconds=time.perf_counter() - started,
        length_choice=length_choice,
        search=searched,
    )


def _train(
    request: BootstrapRequest,
    split: Split,
    labels: tuple[str, ...],
    cfg: TrainConfig,
    base_path: Path,
    run_id: int,
    progress: bool,
) -> tuple[TrainResult, TrainConfig, dict[str, Any] | None]:
    """The first model: the searched recipe's (the search's summary beside it), or ``cfg``'s."""
    if not request.search.enabled:
        return fine_tune(split.train, labels, cfg, base_path=base_path, progress=progress), cfg, None
    from registry.settings import get_settings

    shared = get_settings().search_storage
    with tempfile.TemporaryDirectory(prefix="driftline-search-") as tmp:
        result = search(
            split.train,
            labels,
            cfg,
            base_path=base_path,
            config=request.search,
            work_dir=Path(tmp),
            study_name=f"bootstrap-{run_id}",
            storage=shared.get_secret_value() if shared is not None else None,
        )
    return result.trained, result.cfg, result.summary()


def _candidate(
    trained: TrainResult,
    split: Split,
    labels: tuple[str, ...],
    cfg: TrainConfig,
    *,
    progress: bool,
    searched: dict[str, Any] | None = None,
) -> Candidate:
    """The first model, with its outputs on the held-out rows: it is evaluated and profiled on them."""
    max_length = cfg.resolved_max_length
    logits, pooled = forward_outputs(
        trained.model,
        trained.tokenizer,
        split.heldout["text"].tolist(),
        max_length=max_length,
        batch_size=cfg.eval_batch_size,
        progress=progress,
    )
    heldout = Outputs(split.heldout, logits, pooled)
    return Candidate(
        trained=trained,
        train=split.train,
        labels=labels,
        max_length=max_length,
        seed=cfg.seed,
        heldout=heldout,
        profile=heldout,
        meta={"base_model": cfg.base_model, "seed": cfg.seed},
        snapshot_readme=_snapshot_readme(split),
        train_detail={"search": searched} if searched else {},
    )


def _snapshot_readme(split: Split) -> str:
    """What the data snapshot holds, with digests that do not depend on the file format."""
    return (
        f"train: {len(split.train)} rows, sha256 {snapshot_digest(split.train)}\n"
        f"heldout: {len(split.heldout)} rows, sha256 {snapshot_digest(split.heldout)} ({split.method} split)\n"
    )


def _registration(
    request: BootstrapRequest,
    data: LabeledData,
    split: Split,
    cfg: TrainConfig,
    auto: dict[str, Any],
    run_id: int,
    *,
    searched: dict[str, Any] | None = None,
) -> Registration:
    """The first model registers as the champion (its recipe marked as the search's, when it was)."""
    source = Path(request.data).name
    return Registration(
        model_name=request.model_name,
        base_model=cfg.base_model,
        config={
            **cfg.to_dict(),
            **auto,
            "split": split.method,
            "source": str(request.data),
            "domains": list(request.domains),
            "dropped_duplicates": data.dropped_duplicates,
            **({"recipe_from": "search"} if searched and searched.get("searched") else {}),
        },
        description=f"bootstrap from {source}",
        training_run_id=run_id,
        alias=CHAMPION,
        actor=request.actor,
        reason=lambda metrics: f"bootstrap from {source}: held-out macro-F1 {metrics['macro_f1']:.3f}",
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
