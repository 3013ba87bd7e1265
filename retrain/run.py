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
import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from contracts import AssemblyConfig, parse_run_config
from registry.artifacts import ArtifactStore
from registry.entities import (
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
from retrain.challenger import Challenger, RunConfig, candidate, data_detail, registration, train_challenger
from retrain.evaluate import classification_metrics
from retrain.gate import GateResult, evaluate_gate
from retrain.lifecycle import (
    JobArtifacts,
    heartbeats,
    register_candidate,
    training_job,
)
from retrain.report import ReportInputs, write_promotion_report
from retrain.train import fine_tune
from runtime.scores import softmax

logger = logging.getLogger(__name__)


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
    from registry.settings import get_settings

    return RunConfig.from_spec(parse_run_config(values), search_by_default=get_settings().search)


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
    challenger = train_challenger(run.id, champion, data, artifacts, config, checkpoint_dir, channel)
    gate = evaluate_gate(challenger.judged.recent, challenger.judged.old, config.gate, challenger.costs)
    detail = data_detail(data, challenger.length_source, challenger.length_choice)
    version, metrics = register_candidate(
        candidate(challenger, champion, data, detail),
        registration(
            run.id,
            run.model_name,
            champion,
            challenger.cfg,
            data,
            detail,
            searched=bool(challenger.search and challenger.search.get("searched")),
        ),
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
    challenger: Challenger,
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
