"""One retraining run: ``python -m retrain run --run-id N``.

claim -> assemble data (new labels + replay) -> fine-tune from the champion -> evaluate both models on
the same rows -> gate -> register the challenger -> promote, wait for approval, or refuse -> finish.
A run with nothing to train on ends ``skipped`` with the reason; a crash leaves no version and no alias
move, and the run ends ``failed`` with the reason.

Tokens per text: a run keeps the champion's ``max_length`` (what it was trained and serves with) unless
the run's recorded config sets ``train.max_length``: an int is used as given, ``"auto"`` is chosen
again on the run's training rows (:mod:`retrain.lengths`).

Under ``torchrun`` (:mod:`retrain.distributed`) rank 0 executes the run as above and, just before
training, sends the other ranks the plan (its training rows and resolved config); they run
:func:`follow_run`: the same ``fine_tune`` call, then exit without touching a record.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from registry.artifacts import ArtifactStore
from registry.entities import (
    CHALLENGER,
    CHAMPION,
    ArtifactRef,
    DecisionStatus,
    ModelVersion,
    NewDecision,
    NewModelVersion,
    PromotionDecision,
    RunStatus,
)
from registry.errors import DriftlineError, InvalidInputError
from registry.modelio import DRIFTLINE_META, REFERENCE_PROFILE, save_classifier
from registry.store import Registry
from retrain import distributed
from retrain.assemble import AssemblyConfig, RunData, SkipRun, assemble
from retrain.calibration import calibrate
from retrain.config import TrainConfig
from retrain.evaluate import classification_metrics, forward_outputs, softmax
from retrain.gate import GateConfig, GateResult, PairedPredictions, evaluate_gate
from retrain.lengths import LengthChoice
from retrain.lifecycle import export_onnx, record_failure, remove_unreferenced, store_new
from retrain.quality import assess
from retrain.reference import write_reference_profile
from retrain.report import ReportInputs, write_promotion_report
from retrain.train import fine_tune, resolve_config

logger = logging.getLogger(__name__)

MIN_PROFILE_ROWS = 50  # recent held-out rows below which the reference profile also takes the old ones


@dataclass(frozen=True)
class RunConfig:
    # A third epoch is safe to allow: the checkpoint with the best validation macro-F1 is kept, and
    # early stopping ends longer budgets once more epochs stop helping.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3))
    assembly: AssemblyConfig = field(default_factory=AssemblyConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    mode: str = "auto"  # "auto": promote at once when the gate passes; "manual": wait for approval
    heartbeat_s: float = 10.0
    # Train with the champion's max_length (``train.max_length`` is then ignored); ``config_from_run``
    # turns this off when the run's recorded config sets ``train.max_length``.
    keep_champion_max_length: bool = True


@dataclass(frozen=True)
class RunOutcome:
    status: RunStatus
    reason: str
    version: ModelVersion | None = None
    decision: PromotionDecision | None = None
    gate: GateResult | None = None


def config_from_run(values: dict) -> RunConfig:  # type: ignore[type-arg]
    """The run's recorded config (``train`` / ``assembly`` / ``gate`` overrides, ``mode``) over the defaults."""
    base = RunConfig()
    train = values.get("train") or {}
    try:
        return RunConfig(
            train=TrainConfig.from_dict({**base.train.to_dict(), **train}),
            assembly=AssemblyConfig(**{**asdict(base.assembly), **values.get("assembly", {})}),
            gate=GateConfig(**{**asdict(base.gate), **values.get("gate", {})}),
            mode=values.get("mode", base.mode),
            keep_champion_max_length="max_length" not in train,
        )
    except TypeError as exc:
        raise InvalidInputError(f"run config {values!r} is not valid: {exc}") from exc


def _labels_frame(registry: Registry, model_name: str, since: datetime) -> pd.DataFrame:
    """The labels of ``model_name`` given since ``since``: what a run trains on besides its replay."""
    rows = registry.list_labels(model_name, since=since, limit=1_000_000)
    return pd.DataFrame(
        {
            "text": [r.text for r in rows],
            "label": [r.label for r in rows],
            "domain": [r.domain for r in rows],
            "time": [r.created_at for r in rows],
        },
        columns=["text", "label", "domain", "time"],
    )


def _predict(
    model: Any, tokenizer: Any, frame: pd.DataFrame, max_length: int, cfg: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    return forward_outputs(
        model,
        tokenizer,
        frame["text"].tolist(),
        max_length=max_length,
        batch_size=cfg.eval_batch_size,
        progress=False,
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


def execute_run(
    run_id: int,
    registry: Registry,
    artifacts: ArtifactStore,
    config: RunConfig | None = None,
    *,
    work_dir: Path | None = None,
    ranks: distributed.Ranks | None = None,
) -> RunOutcome:
    """Execute run ``run_id``. Training checkpoints go under ``work_dir`` (when given): kept when the
    run fails or is killed, so the retry of the same run resumes from them; removed once it ends.

    With ``ranks`` (rank 0 of a torchrun job) the other ranks get the plan just before training, or a
    stop when the run ends without training; if one of them dies the run is left ``running`` (no more
    heartbeats) and :class:`retrain.distributed.PeerLost` is raised, as if this process had been killed.
    """
    channel = distributed.Channel(ranks)
    try:
        return _execute_run(run_id, registry, artifacts, config, work_dir, channel)
    finally:
        channel.close(f"run {run_id} ended before training")


def _execute_run(
    run_id: int,
    registry: Registry,
    artifacts: ArtifactStore,
    config: RunConfig | None,
    work_dir: Path | None,
    channel: distributed.Channel,
) -> RunOutcome:
    run = registry.claim_run(run_id)
    config = config or config_from_run(run.config)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(config.heartbeat_s):
            try:
                registry.heartbeat(run_id)
            except DriftlineError as exc:
                logger.warning("run %s heartbeat failed: %s", run_id, exc.message)

    threading.Thread(target=beat, name=f"driftline-heartbeat-{run_id}", daemon=True).start()
    new_artifacts: list[ArtifactRef] = []
    version: ModelVersion | None = None
    try:
        champion = registry.get_version_by_alias(run.model_name, CHAMPION)
        snapshot = artifacts.fetch(
            ArtifactRef(champion.data_snapshot_uri or "", champion.data_snapshot_sha256 or "")
        )
        try:
            data = assemble(
                _labels_frame(registry, run.model_name, champion.created_at),
                pd.read_parquet(snapshot / "train.parquet"),
                pd.read_parquet(snapshot / "heldout.parquet"),
                labels=champion.labels,
                config=config.assembly,
            )
        except SkipRun as skip:
            registry.finish_run(run_id, RunStatus.SKIPPED, error=skip.reason)
            _remove_work_dir(work_dir)
            logger.info("run %s skipped: %s", run_id, skip.reason)
            channel.send(distributed.Stop(f"run {run_id} skipped: {skip.reason}"))
            return RunOutcome(RunStatus.SKIPPED, skip.reason)
        detail = str(run.config.get("reason", ""))
        if run.drift_check_id is not None:
            detail = f"drift check {run.drift_check_id}: {detail}"
        outcome = _train_and_decide(
            run_id,
            run.model_name,
            champion,
            data,
            registry,
            artifacts,
            config,
            new_artifacts,
            trigger=run.trigger.value,
            trigger_detail=detail,
            checkpoint_dir=work_dir / "checkpoints" if work_dir else None,
            channel=channel,
        )
        version = outcome.version
        registry.finish_run(run_id, RunStatus.SUCCEEDED)
        _remove_work_dir(work_dir)
        return outcome
    except BaseException as exc:
        if version is None:
            remove_unreferenced(registry, artifacts, new_artifacts)
        if channel.distributed and distributed.is_peer_failure(exc):
            # Another rank died: like a killed process, record nothing, so that the run is retried.
            message = f"run {run_id}: a training process was lost ({type(exc).__name__}: {exc})"
            logger.error("%s; the run stays running for its retry", message)
            raise distributed.PeerLost(message[:2000]) from exc
        record_failure(registry, run_id, exc)
        raise
    finally:
        stop.set()


def follow_run(artifacts: ArtifactStore, ranks: distributed.Ranks) -> distributed.TrainPlan | None:
    """A rank other than 0: wait for rank 0's plan and make the same ``fine_tune`` call with it.

    Returns the plan trained on, or None when rank 0 ended the run without training (its reason is
    logged). Reads the champion's artifact; never touches a registry record, never saves a model.
    """
    message = distributed.receive(ranks)
    if isinstance(message, distributed.Stop):
        logger.info("rank %d: nothing to train: %s", ranks.rank, message.reason)
        return None
    base_path = artifacts.fetch(message.champion)
    fine_tune(
        message.train,
        message.labels,
        message.cfg,
        base_path=base_path,
        progress=False,
        checkpoint_dir=message.checkpoint_dir,
        ranks=ranks,
    )
    logger.info("rank %d: trained run %s; rank 0 evaluates and decides", ranks.rank, message.run_id)
    return message


def _remove_work_dir(work_dir: Path | None) -> None:
    """A finished run's checkpoints are of no further use (the model is registered or was not needed)."""
    if work_dir is not None:
        shutil.rmtree(work_dir, ignore_errors=True)


def _train_and_decide(
    run_id: int,
    model_name: str,
    champion: ModelVersion,
    data: RunData,
    registry: Registry,
    artifacts: ArtifactStore,
    config: RunConfig,
    new_artifacts: list[ArtifactRef],
    trigger: str = "manual",
    trigger_detail: str = "",
    checkpoint_dir: Path | None = None,
    channel: distributed.Channel | None = None,
) -> RunOutcome:
    from registry.modelio import load_classifier_dir

    champion_dir = artifacts.fetch(champion.artifact)
    cfg, length_source = run_max_length(config, champion_max_length(champion, champion_dir))
    cfg, length_choice = resolve_config(cfg, data.train["text"].tolist(), champion_dir)
    max_length = cfg.resolved_max_length
    logger.info("run %s: max_length %d (%s)", run_id, max_length, length_source)
    ranks = channel.ranks if channel is not None else None
    if channel is not None:
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
    trained = fine_tune(
        data.train,
        champion.labels,
        cfg,
        base_path=champion_dir,
        progress=False,
        checkpoint_dir=checkpoint_dir,
        ranks=ranks,
    )
    incumbent = load_classifier_dir(champion_dir)
    index = {label: i for i, label in enumerate(champion.labels)}

    def pairs(frame: pd.DataFrame) -> tuple[PairedPredictions, np.ndarray, np.ndarray, np.ndarray]:
        """Both models on the same rows: the pairs, the challenger's logits and embeddings, the champion's logits."""
        new_logits, new_pooled = _predict(trained.model, trained.tokenizer, frame, max_length, cfg)
        old_logits, _ = _predict(incumbent.model, incumbent.tokenizer, frame, incumbent.max_length, cfg)
        y = np.array([index[v] for v in frame["label"]])
        return (
            PairedPredictions(y, old_logits.argmax(1), new_logits.argmax(1)),
            new_logits,
            new_pooled,
            old_logits,
        )

    recent, logits, pooled, champion_logits = pairs(data.recent_heldout)
    old = None
    # The reference profile is what the challenger is promoted to serve: the recent traffic. Mixing in
    # the (often much larger) old held-out set would make the very data it was trained on look drifted.
    profile_rows, profile_logits, profile_pooled = data.recent_heldout, logits, pooled
    if len(data.old_heldout):
        old, old_logits, old_pooled, _ = pairs(data.old_heldout)
        if len(data.recent_heldout) < MIN_PROFILE_ROWS:  # too few recent rows to stand alone
            profile_rows = pd.concat([data.recent_heldout, data.old_heldout], ignore_index=True)
            profile_logits, profile_pooled = np.vstack([logits, old_logits]), np.vstack([pooled, old_pooled])
    gate = evaluate_gate(recent, old, config.gate)
    metrics = classification_metrics(softmax(logits), data.recent_heldout["label"].tolist(), champion.labels)
    metrics["quality"] = assess(
        [champion.labels[i] for i in logits.argmax(axis=1)],
        data.recent_heldout["label"].tolist(),
        champion.labels,
        metrics["macro_f1"],
    )
    data_detail = _data_detail(data, length_source, length_choice)
    metrics["train"] = {"n": len(data.train), **trained.summary(), "counts": data.counts, **data_detail}
    calibration = calibrate(logits, recent.y_true)
    with tempfile.TemporaryDirectory(prefix="driftline-run-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        data.train.to_parquet(data_dir / "train.parquet", index=False)
        data.recent_heldout.to_parquet(data_dir / "heldout.parquet", index=False)
        data_ref = store_new(artifacts, data_dir, new_artifacts)
        model_dir = save_classifier(
            trained.model,
            trained.tokenizer,
            Path(tmp) / "model",
            max_length=max_length,
            extra={"parent_version": champion.version, "calibration": calibration},
        )
        write_reference_profile(
            model_dir / REFERENCE_PROFILE,
            profile_rows,
            profile_logits,
            profile_pooled,
            champion.labels,
            calibration["temperature"],
            seed=cfg.seed,
        )
        metrics["onnx"] = export_onnx(
            model_dir,
            trained,
            profile_rows,
            (profile_logits, profile_pooled),
            champion.labels,
            max_length,
            seed=cfg.seed,
        )
        model_ref = store_new(artifacts, model_dir, new_artifacts)
    version = registry.register_version(
        model_name,
        NewModelVersion(
            base_model=f"{model_name} v{champion.version}",
            artifact=model_ref,
            labels=champion.labels,
            metrics=metrics,
            config={**cfg.to_dict(), "run_id": run_id, "counts": data.counts, **data_detail},
            parent_version=champion.version,
            training_run_id=run_id,
            data_snapshot=data_ref,
            calibration=calibration,
            description=f"run {run_id} from v{champion.version}",
        ),
        set_aliases=[CHALLENGER],
        actor=f"run {run_id}",
        reason="challenger of the latest run",
    )
    status = (
        (DecisionStatus.PROMOTED if config.mode == "auto" else DecisionStatus.PENDING_APPROVAL)
        if gate.passed
        else DecisionStatus.REJECTED
    )
    report_name = f"runs/{run_id}"
    with tempfile.TemporaryDirectory(prefix="driftline-report-") as tmp:
        write_promotion_report(
            Path(tmp),
            ReportInputs(
                model_name=model_name,
                run_id=run_id,
                trigger=trigger,
                trigger_detail=trigger_detail,
                champion_version=champion.version,
                challenger_version=version.version,
                status=status.value,
                gate=gate,
                counts=data.counts,
                per_class_counts=data.per_class,
                unknown_labels=data.unknown_labels,
                train=data.train,
                recent=data.recent_heldout.assign(
                    champion_pred=[champion.labels[i] for i in recent.champion],
                    challenger_pred=[champion.labels[i] for i in recent.challenger],
                ),
                champion_metrics=classification_metrics(
                    softmax(champion_logits), data.recent_heldout["label"].tolist(), champion.labels
                ),
                challenger_metrics=metrics,
                config={
                    **cfg.to_dict(),
                    "max_length_source": length_source,
                    "assembly": asdict(config.assembly),
                    "gate": asdict(config.gate),
                    "mode": config.mode,
                },
            ),
        )
        artifacts.put_report(Path(tmp), report_name)
    decision = registry.add_decision(
        NewDecision(
            model_name=model_name,
            candidate_version=version.version,
            incumbent_version=champion.version,
            run_id=run_id,
            metrics=gate.to_dict(),
            passed=gate.passed,
            reasons=tuple(gate.reasons),
            status=status,
            report_uri=f"{report_name}/promotion.html",
        ),
        actor=f"run {run_id}",
    )
    logger.info("run %s: v%s %s", run_id, version.version, status.value)
    return RunOutcome(RunStatus.SUCCEEDED, "; ".join(gate.reasons), version, decision, gate)


def _data_detail(data: RunData, length_source: str, length_choice: LengthChoice | None) -> dict[str, Any]:
    """What a run's version records beside its counts: rows per class, ignored labels, max_length's origin."""
    detail: dict[str, Any] = {
        "per_class_counts": data.per_class,
        "unknown_labels": data.unknown_labels,
        "max_length_source": length_source,
    }
    if length_choice is not None:
        detail["max_length_auto"] = length_choice.to_dict()
    return detail
