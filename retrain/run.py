"""One retraining run: ``python -m retrain run --run-id N``.

parse the run's contract -> claim -> assemble data (new labels + replay) -> fine-tune from the champion
-> evaluate both models on the same rows -> gate -> register the challenger -> promote, wait for
approval, or refuse -> finish. A run whose recorded config does not parse as :class:`contracts.RunSpec`
ends ``failed`` with the reason on that attempt and is never retried; a run with nothing to train on
ends ``skipped`` with the reason; a crash leaves no version and no alias move, and the run ends
``failed`` with the reason.

Tokens per text: a run keeps the champion's ``max_length`` (what it was trained and serves with) unless
the run's contract takes it from ``train`` (``max_length_from``): an int is used as given, ``"auto"`` is chosen
again on the run's training rows (:mod:`retrain.lengths`).

Under ``torchrun`` (:mod:`retrain.distributed`) rank 0 executes the run as above and, just before
training, sends the other ranks the plan (its training rows and resolved config); they run
:func:`follow_run`: the same ``fine_tune`` call, then exit without touching a record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from contracts import AssemblyConfig, GateConfig, RunSpec, TrainConfig, parse_run_config, run_train_config
from contracts.search import SearchConfig
from registry.artifacts import ArtifactStore
from registry.entities import (
    CHALLENGER,
    CHAMPION,
    ArtifactRef,
    DecisionStatus,
    ModelVersion,
    NewDecision,
    PromotionDecision,
    RetrainRun,
    RunStatus,
)
from registry.errors import InvalidInputError
from registry.store import Registry
from retrain import distributed
from retrain.assemble import RunData, SkipRun, assemble
from retrain.compare import HeldOutComparison, compare_models
from retrain.evaluate import classification_metrics
from retrain.gate import GateResult, evaluate_gate
from retrain.lengths import LengthChoice
from retrain.lifecycle import (
    Candidate,
    JobArtifacts,
    Registration,
    heartbeats,
    register_candidate,
    training_job,
)
from retrain.report import ReportInputs, write_promotion_report
from retrain.train import TrainResult, fine_tune, resolve_config
from runtime.modelio import DRIFTLINE_META
from runtime.scores import softmax

logger = logging.getLogger(__name__)


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
    def from_spec(cls, spec: RunSpec) -> RunConfig:
        """The run's contract as the steps read it."""
        return cls(
            train=spec.train,
            assembly=spec.assembly,
            gate=spec.gate,
            search=spec.search,
            mode=spec.mode,
            keep_champion_max_length=spec.max_length_from == "champion",
        )


@dataclass(frozen=True)
class RunOutcome:
    status: RunStatus
    reason: str
    version: ModelVersion | None = None
    decision: PromotionDecision | None = None
    gate: GateResult | None = None


def config_from_run(values: Mapping[str, Any]) -> RunConfig:
    """The run's recorded config, parsed as its contract; raises :class:`InvalidInputError` naming each
    key it refuses."""
    return RunConfig.from_spec(parse_run_config(values))


def _parsed_config(registry: Registry, run_id: int) -> RunConfig:
    """The run's recorded config, parsed before the run is claimed. One that does not parse (written
    before a key was renamed, or by hand) would fail the same way every time: the run is claimed and
    ended ``failed`` with the reason at once, so the dispatcher, which retries only a run left
    ``running``, never retries it; the error goes on (the process exits 1)."""
    try:
        return config_from_run(registry.get_run(run_id).config)
    except InvalidInputError as exc:
        registry.claim_run(run_id)
        registry.finish_run(run_id, RunStatus.FAILED, error=exc.message[:2000])
        logger.error("run %s failed: %s", run_id, exc.message)
        raise


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
    config = config or _parsed_config(registry, run_id)
    run = registry.claim_run(run_id)
    with (
        heartbeats(registry, run_id, config.heartbeat_s),
        training_job(registry, artifacts, run_id, leave_running=(distributed.PeerLost,)) as job,
        _lost_peer_leaves_run_running(run_id, channel),
    ):
        champion = registry.get_version_by_alias(run.model_name, CHAMPION)
        try:
            data = _assemble(registry, artifacts, champion, config.assembly)
        except SkipRun as skip:
            return _skip(run_id, skip.reason, registry, work_dir, channel)
        outcome = _train_and_decide(
            run,
            champion,
            data,
            registry,
            artifacts,
            config,
            job,
            checkpoint_dir=work_dir / "checkpoints" if work_dir else None,
            channel=channel,
        )
        registry.finish_run(run_id, RunStatus.SUCCEEDED)
        _remove_work_dir(work_dir)
        return outcome


@contextlib.contextmanager
def _lost_peer_leaves_run_running(run_id: int, channel: distributed.Channel) -> Iterator[None]:
    """Another rank died: like a killed process, record nothing (:class:`retrain.distributed.PeerLost`),
    so that the run is retried."""
    try:
        yield
    except BaseException as exc:
        if not (channel.distributed and distributed.is_peer_failure(exc)):
            raise
        message = f"run {run_id}: a training process was lost ({type(exc).__name__}: {exc})"
        logger.error("%s; the run stays running for its retry", message)
        raise distributed.PeerLost(message[:2000]) from exc


def _assemble(
    registry: Registry, artifacts: ArtifactStore, champion: ModelVersion, config: AssemblyConfig
) -> RunData:
    """The run's rows: the labels added since the champion, and a replay of the champion's snapshot."""
    snapshot = artifacts.fetch(
        ArtifactRef(champion.data_snapshot_uri or "", champion.data_snapshot_sha256 or "")
    )
    return assemble(
        _labels_frame(registry, champion.model_name, champion.created_at),
        pd.read_parquet(snapshot / "train.parquet"),
        pd.read_parquet(snapshot / "heldout.parquet"),
        labels=champion.labels,
        config=config,
    )


def _skip(
    run_id: int, reason: str, registry: Registry, work_dir: Path | None, channel: distributed.Channel
) -> RunOutcome:
    """End a run with nothing to train on: ``skipped``, with the reason; the other ranks stop too."""
    registry.finish_run(run_id, RunStatus.SKIPPED, error=reason)
    _remove_work_dir(work_dir)
    logger.info("run %s skipped: %s", run_id, reason)
    channel.send(distributed.Stop(f"run {run_id} skipped: {reason}"))
    return RunOutcome(RunStatus.SKIPPED, reason)


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


@dataclass(frozen=True)
class _Challenger:
    """The model a run trained, and both models on the run's held-out rows."""

    trained: TrainResult
    cfg: TrainConfig  # max_length resolved
    length_source: str  # where max_length comes from (see run_max_length)
    length_choice: LengthChoice | None  # how "auto" was resolved, when it was
    judged: HeldOutComparison


def _train_and_decide(
    run: RetrainRun,
    champion: ModelVersion,
    data: RunData,
    registry: Registry,
    artifacts: ArtifactStore,
    config: RunConfig,
    job: JobArtifacts,
    *,
    checkpoint_dir: Path | None,
    channel: distributed.Channel,
) -> RunOutcome:
    challenger = _train_challenger(run.id, champion, data, artifacts, config, checkpoint_dir, channel)
    gate = evaluate_gate(challenger.judged.recent, challenger.judged.old, config.gate)
    detail = _data_detail(data, challenger.length_source, challenger.length_choice)
    version, metrics = register_candidate(
        _candidate(challenger, champion, data, detail),
        _registration(run.id, run.model_name, champion, challenger.cfg, data, detail),
        registry,
        artifacts,
        job,
    )
    status = _decision_status(gate, config.mode)
    report = _publish_report(
        artifacts, _report_inputs(run, champion, data, config, challenger, gate, version, metrics, status)
    )
    decision = _record_decision(registry, run, champion, version, gate, status, report)
    logger.info("run %s: v%s %s", run.id, version.version, status.value)
    return RunOutcome(RunStatus.SUCCEEDED, "; ".join(gate.reasons), version, decision, gate)


def _train_challenger(
    run_id: int,
    champion: ModelVersion,
    data: RunData,
    artifacts: ArtifactStore,
    config: RunConfig,
    checkpoint_dir: Path | None,
    channel: distributed.Channel,
) -> _Challenger:
    """Fine-tune the champion on the run's rows (the other ranks get the plan first), then run both
    models on the held-out rows."""
    from runtime.modelio import load_classifier_dir

    champion_dir = artifacts.fetch(champion.artifact)
    cfg, length_source = run_max_length(config, champion_max_length(champion, champion_dir))
    cfg, length_choice = resolve_config(cfg, data.train["text"].tolist(), champion_dir)
    logger.info("run %s: max_length %d (%s)", run_id, cfg.resolved_max_length, length_source)
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
        ranks=channel.ranks,
    )
    judged = compare_models(
        trained,
        load_classifier_dir(champion_dir),
        data,
        champion.labels,
        max_length=cfg.resolved_max_length,
        batch_size=cfg.eval_batch_size,
    )
    return _Challenger(trained, cfg, length_source, length_choice, judged)


def _candidate(
    challenger: _Challenger, champion: ModelVersion, data: RunData, detail: dict[str, Any]
) -> Candidate:
    return Candidate(
        trained=challenger.trained,
        train=data.train,
        labels=champion.labels,
        max_length=challenger.cfg.resolved_max_length,
        seed=challenger.cfg.seed,
        heldout=challenger.judged.heldout,
        profile=challenger.judged.profile,
        train_detail={"counts": data.counts, **detail},
        meta={"parent_version": champion.version},
    )


def _registration(
    run_id: int,
    model_name: str,
    champion: ModelVersion,
    cfg: TrainConfig,
    data: RunData,
    detail: dict[str, Any],
) -> Registration:
    """A run's model registers as the challenger; the gate's decision moves the champion, if anything."""
    return Registration(
        model_name=model_name,
        base_model=f"{model_name} v{champion.version}",
        config={**cfg.to_dict(), "run_id": run_id, "counts": data.counts, **detail},
        description=f"run {run_id} from v{champion.version}",
        training_run_id=run_id,
        alias=CHALLENGER,
        actor=f"run {run_id}",
        reason=lambda _metrics: "challenger of the latest run",
        parent_version=champion.version,
    )


def _decision_status(gate: GateResult, mode: str) -> DecisionStatus:
    """A passed gate promotes at once ("auto") or waits for approval ("manual"); a failed one rejects."""
    if not gate.passed:
        return DecisionStatus.REJECTED
    return DecisionStatus.PROMOTED if mode == "auto" else DecisionStatus.PENDING_APPROVAL


def _report_inputs(
    run: RetrainRun,
    champion: ModelVersion,
    data: RunData,
    config: RunConfig,
    challenger: _Challenger,
    gate: GateResult,
    version: ModelVersion,
    metrics: dict[str, Any],
    status: DecisionStatus,
) -> ReportInputs:
    labels = champion.labels
    judged = challenger.judged
    recent = judged.heldout.rows
    return ReportInputs(
        model_name=run.model_name,
        run_id=run.id,
        trigger=run.trigger.value,
        trigger_detail=_trigger_detail(run),
        champion_version=champion.version,
        challenger_version=version.version,
        status=status.value,
        gate=gate,
        counts=data.counts,
        per_class_counts=data.per_class,
        unknown_labels=data.unknown_labels,
        train=data.train,
        recent=recent.assign(
            champion_pred=[labels[i] for i in judged.recent.champion],
            challenger_pred=[labels[i] for i in judged.recent.challenger],
        ),
        champion_metrics=classification_metrics(
            softmax(judged.champion_logits), recent["label"].tolist(), labels
        ),
        challenger_metrics=metrics,
        config={
            **challenger.cfg.to_dict(),
            "max_length_source": challenger.length_source,
            "assembly": asdict(config.assembly),
            "gate": asdict(config.gate),
            "mode": config.mode,
        },
    )


def _record_decision(
    registry: Registry,
    run: RetrainRun,
    champion: ModelVersion,
    version: ModelVersion,
    gate: GateResult,
    status: DecisionStatus,
    report_uri: str,
) -> PromotionDecision:
    """The gate's verdict on the challenger, with its reasons and report."""
    return registry.add_decision(
        NewDecision(
            model_name=run.model_name,
            candidate_version=version.version,
            incumbent_version=champion.version,
            run_id=run.id,
            metrics=gate.to_dict(),
            passed=gate.passed,
            reasons=tuple(gate.reasons),
            status=status,
            report_uri=report_uri,
        ),
        actor=f"run {run.id}",
    )


def _trigger_detail(run: RetrainRun) -> str:
    """Why the run was queued, in words (the drift check that queued it, when one did)."""
    detail = str(run.config.get("reason", ""))
    return f"drift check {run.drift_check_id}: {detail}" if run.drift_check_id is not None else detail


def _publish_report(artifacts: ArtifactStore, inputs: ReportInputs) -> str:
    """Write the run's promotion report and publish it under ``runs/<run id>``; its URI."""
    name = f"runs/{inputs.run_id}"
    with tempfile.TemporaryDirectory(prefix="driftline-report-") as tmp:
        write_promotion_report(Path(tmp), inputs)
        artifacts.put_report(Path(tmp), name)
    return f"{name}/promotion.html"


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
