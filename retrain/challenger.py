"""What a run trains and how it records it: the run's config as its steps read it, the challenger
fine-tuned from the champion (by the recipe search, or by the run's one recipe), both models on the
held-out rows, and the registration of the challenger's version.

The search (:mod:`retrain.search`) starts from the champion's own recipe when the champion was chosen
by a search (its version config says ``recipe_from: search``), else from the run's training config
(what the run trained before the search existed), and stays near it. It sees the run's training rows
only: the held-out rows judge the chosen model afterwards. Under ``torchrun`` the run trains its one
recipe on every rank (a search in one process would leave the other ranks idle), and says so.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from contracts import AssemblyConfig, GateConfig, RunSpec, TrainConfig, run_train_config
from contracts.search import SearchConfig
from registry.artifacts import ArtifactStore
from registry.entities import CHALLENGER, ModelVersion
from registry.errors import InvalidInputError
from retrain import distributed
from retrain.assemble import RunData
from retrain.compare import HeldOutComparison, compare_models
from retrain.cost import ModelCost, measure_costs
from retrain.lengths import LengthChoice
from retrain.lifecycle import Candidate, Registration
from retrain.search import search
from retrain.search_records import SearchResult, recipe_of
from retrain.train import TrainResult, fine_tune, resolve_config
from runtime.modelio import DRIFTLINE_META

logger = logging.getLogger(__name__)
SEARCH_RECIPE = "search"  # a version config's ``recipe_from`` when a search chose its recipe


@dataclass(frozen=True)
class RunConfig:
    """How this process executes a run: the parts of its contract (:class:`contracts.RunSpec`) the steps
    read, and the heartbeat's interval."""

    train: TrainConfig = field(default_factory=run_train_config)
    assembly: AssemblyConfig = field(default_factory=AssemblyConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    mode: str = "auto"  # "auto": promote at once when the gate passes; "manual": wait for approval
    heartbeat_s: float = 10.0
    # Train with the champion's max_length (``train.max_length`` is then ignored); off when the run's
    # contract takes it from ``train`` (``max_length_from``).
    keep_champion_max_length: bool = True

    @classmethod
    def from_spec(cls, spec: RunSpec, *, search_by_default: bool = True) -> RunConfig:
        """The run's contract as the steps read it; a spec that says nothing of the search searches
        only ``search_by_default`` (the workspace's ``DRIFTLINE_SEARCH``)."""
        search = spec.search
        if "search" not in spec.model_fields_set and not search_by_default:
            search = search.model_copy(update={"enabled": False})
        return cls(
            train=spec.train,
            assembly=spec.assembly,
            gate=spec.gate,
            search=search,
            mode=spec.mode,
            keep_champion_max_length=spec.max_length_from == "champion",
        )



@dataclass(frozen=True)
class Challenger:
    """The model a run trained, and both models on the run's held-out rows."""

    trained: TrainResult
    cfg: TrainConfig  # max_length resolved
    length_source: str  # where max_length comes from (see run_max_length)
    length_choice: LengthChoice | None  # how "auto" was resolved, when it was
    judged: HeldOutComparison
    costs: tuple[ModelCost, ModelCost]  # champion's, challenger's: latency per text and size
    search: dict[str, Any] | None = None  # the recipe search's summary (retrain.search), when it ran



def train_challenger(
    run_id: int,
    champion: ModelVersion,
    data: RunData,
    artifacts: ArtifactStore,
    config: RunConfig,
    checkpoint_dir: Path | None,
    channel: distributed.Channel,
) -> Challenger:
    """Fine-tune the champion on the run's rows (searching the recipe, or with the run's one recipe
    under torchrun, whose other ranks get the plan first), then run both models on the held-out rows
    and measure what each costs to serve."""
    from runtime.modelio import load_classifier_dir

    champion_dir = artifacts.fetch(champion.artifact)
    cfg, length_source = run_max_length(config, champion_max_length(champion, champion_dir))
    cfg, length_choice = resolve_config(cfg, data.train["text"].tolist(), champion_dir)
    logger.info("run %s: max_length %d (%s)", run_id, cfg.resolved_max_length, length_source)
    searched = None
    if config.search.enabled and channel.ranks is None:
        searched = _search(run_id, champion, data, cfg, champion_dir, config.search, checkpoint_dir)
        trained, cfg = searched.trained, searched.cfg
    else:
        trained = _train_once(run_id, champion, data, cfg, champion_dir, checkpoint_dir, channel)
    loaded = load_classifier_dir(champion_dir)
    judged = compare_models(
        trained, loaded, data, champion.labels, max_length=cfg.resolved_max_length, batch_size=cfg.eval_batch_size
    )
    costs = measure_costs(
        (loaded.model, loaded.tokenizer, loaded.max_length),
        (trained.model, trained.tokenizer, cfg.resolved_max_length),
        data.recent_heldout["text"].tolist(),
        batch_size=cfg.eval_batch_size,
    )
    summary = None if searched is None else searched.summary()
    if summary is None and config.search.enabled:
        summary = {"note": "no search under torchrun: the run's recipe trained on every rank", "trials": []}
    return Challenger(trained, cfg, length_source, length_choice, judged, costs, summary)


def _train_once(
    run_id: int,
    champion: ModelVersion,
    data: RunData,
    cfg: TrainConfig,
    champion_dir: Path,
    checkpoint_dir: Path | None,
    channel: distributed.Channel,
) -> TrainResult:
    """The run's one recipe, on every rank under torchrun (they get the plan first)."""
    channel.send(
        distributed.TrainPlan(
            run_id=run_id,
            train=data.train,
            labels=list(champion.labels),
            cfg=cfg,
            champion=champion.artifact,
            checkpoint_dir=checkpoint_dir,
        )
    )
    return fine_tune(
        data.train,
        champion.labels,
        cfg,
        base_path=champion_dir,
        progress=False,
        checkpoint_dir=checkpoint_dir,
        ranks=channel.ranks,
    )


def warm_start_recipe(champion: ModelVersion, run_train: TrainConfig) -> dict[str, Any]:
    """Where a run's search starts: the champion's recipe when a search chose it, else the run's own."""
    recorded = champion.config or {}
    return recipe_of(recorded if recorded.get("recipe_from") == SEARCH_RECIPE else run_train)


def _search(
    run_id: int,
    champion: ModelVersion,
    data: RunData,
    cfg: TrainConfig,
    champion_dir: Path,
    search_config: SearchConfig,
    checkpoint_dir: Path | None,
) -> SearchResult:
    """The run's recipe search on its training rows, its study kept beside its checkpoints (a killed
    run's retry resumes it) or in the shared storage of ``DRIFTLINE_SEARCH_STORAGE``."""
    from registry.settings import get_settings

    settings = get_settings()
    shared = settings.search_storage.get_secret_value() if settings.search_storage is not None else None
    if shared is not None and shared == settings.database_url:
        raise InvalidInputError(
            "DRIFTLINE_SEARCH_STORAGE is the registry's own database: Optuna's tables (and its own "
            "alembic_version) need a schema or database of their own, e.g. ?options=-csearch_path%3Dsearch"
        )
    with tempfile.TemporaryDirectory(prefix="driftline-search-") as tmp:
        return search(
            data.train,
            champion.labels,
            cfg,
            base_path=champion_dir,
            config=search_config,
            warm_start=warm_start_recipe(champion, cfg),
            work_dir=checkpoint_dir if checkpoint_dir is not None else Path(tmp),
            study_name=f"run-{run_id}",
            storage=shared,
        )


def candidate(
    challenger: Challenger, champion: ModelVersion, data: RunData, detail: dict[str, Any]
) -> Candidate:
    return Candidate(
        trained=challenger.trained,
        train=data.train,
        labels=champion.labels,
        max_length=challenger.cfg.resolved_max_length,
        seed=challenger.cfg.seed,
        heldout=challenger.judged.heldout,
        profile=challenger.judged.profile,
        train_detail={"counts": data.counts, **detail, **({"search": challenger.search} if challenger.search else {})},
        meta={"parent_version": champion.version},
    )


def registration(
    run_id: int,
    model_name: str,
    champion: ModelVersion,
    cfg: TrainConfig,
    data: RunData,
    detail: dict[str, Any],
    *,
    searched: bool = False,
) -> Registration:
    """A run's model registers as the challenger; the gate's decision moves the champion, if anything."""
    return Registration(
        model_name=model_name,
        base_model=f"{model_name} v{champion.version}",
        config={
            **cfg.to_dict(),
            "run_id": run_id,
            "counts": data.counts,
            **detail,
            **({"recipe_from": SEARCH_RECIPE} if searched else {}),  # the next run warm-starts from it
        },
        description=f"run {run_id} from v{champion.version}",
        training_run_id=run_id,
        alias=CHALLENGER,
        actor=f"run {run_id}",
        reason=lambda _metrics: "challenger of the latest run",
        parent_version=champion.version,
    )



def champion_max_length(champion: ModelVersion, champion_dir: Path) -> int | None:
    """The tokens per text the champion was trained and serves with: its artifact's meta, else its
    version config; None when neither records an int."""
    meta_path = Path(champion_dir) / DRIFTLINE_META
    candidates = []
    if meta_path.is_file():
        try:
            candidates.append(json.loads(meta_path.read_text()).get("max_length"))
        except (OSError, json.JSONDecodeError):
            pass
    candidates.append((champion.config or {}).get("max_length"))
    return next((v for v in candidates if isinstance(v, int) and not isinstance(v, bool)), None)


def run_max_length(config: RunConfig, champion_length: int | None) -> tuple[TrainConfig, str]:
    """The run's training config with the max_length policy applied, and where the length comes from:
    the champion's (by default), or the run config's (an int, or "auto" to resolve on the run's rows)."""
    if config.keep_champion_max_length and champion_length is not None:
        return replace(config.train, max_length=champion_length), "champion"
    return config.train, "auto" if config.train.max_length == "auto" else "run config"



def data_detail(data: RunData, length_source: str, length_choice: LengthChoice | None) -> dict[str, Any]:
    """What a run's version records beside its counts: rows per class, ignored labels, max_length's origin."""
    detail: dict[str, Any] = {
        "per_class_counts": data.per_class,
        "unknown_labels": data.unknown_labels,
        "max_length_source": length_source,
    }
    if length_choice is not None:
        detail["max_length_auto"] = length_choice.to_dict()
    return detail
