"""The drift-check job: load the window, compute the signals, apply the trigger policy, store the
check (and the run it queues) in one transaction, with the Evidently report beside it.

``driftline check`` runs it once; the scheduler (``orchestration/scheduler.py``) runs it on an interval
and for each check request. Both build its :class:`MonitorConfig` from the ``DRIFTLINE_*`` settings
(``monitor.settings``).
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts import AssemblyConfig, RunSpec
from monitor.check import CheckConfig, CheckOutcome, Window, compute_check
from monitor.policy import Decision, PolicyConfig, PolicyInput, decide
from monitor.signals import REALIZED_DROP
from registry.artifacts import ArtifactStore
from registry.entities import (
    CHAMPION,
    DriftCheck,
    ModelVersion,
    NewDriftCheck,
    Prediction,
    RetrainRun,
    RunStatus,
)
from registry.errors import ConflictError, InvalidInputError
from registry.store import Registry
from runtime.modelio import REFERENCE_PROFILE, REFERENCE_PROFILE_INT8

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorConfig:
    window_size: int = 500
    check: CheckConfig = field(default_factory=CheckConfig)
    # Its quality_margin is the check's: the policy judges drops against the margin the check flagged
    # them with (set here, whatever the policy config says).
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    # Recorded on the runs it queues; its ``assembly`` and ``gate`` size the policy's label count (set
    # here, whatever the policy config says), its ``assembly.min_new_labels``, when set, raises the
    # policy's floor, and each queued run gets the policy's floor as its ``min_new_labels``.
    run_config: RunSpec = field(default_factory=RunSpec)

    def __post_init__(self) -> None:
        run = self.run_config
        floor = self.policy.min_labels_floor
        if run.assembly.min_new_labels != AssemblyConfig.min_new_labels:  # set: a queued run must not skip
            floor = max(floor, run.assembly.min_new_labels)
        policy = replace(
            self.policy,
            quality_margin=self.check.quality_margin,
            assembly=run.assembly,
            gate=run.gate,
            min_labels_floor=floor,
        )
        object.__setattr__(self, "policy", policy)


@dataclass(frozen=True)
class CheckRecord:
    check: DriftCheck
    run: RetrainRun | None
    decision: Decision


@dataclass(frozen=True)
class ReferenceBasis:
    """What a window is compared with: the reference profile, the temperature that calibrates the
    window's confidences and the held-out accuracy, all of the runtime that served the window."""

    runtime: str  # "fp32" (PyTorch or the verified fp32 ONNX graph: the same outputs) or "int8"
    profile: str
    temperature: float
    accuracy: float
    left_out: int = 0  # rows of the window served by the other runtime, not compared


def reference_basis(
    champion: ModelVersion, rows: list[tuple[Prediction, str | None]]
) -> tuple[list[tuple[Prediction, str | None]], ReferenceBasis]:
    """The window's rows of the runtime that served most of them, and that runtime's basis. An int8
    graph's embeddings and confidences are its own (runtime.onnxrt), so a window it served is compared
    with the int8 reference profile, temperature and accuracy recorded when the graph was kept; a window
    that mixes runtimes (a restart with another ``DRIFTLINE_RUNTIME``) keeps the larger part."""
    fp32 = ReferenceBasis(
        "fp32",
        REFERENCE_PROFILE,
        float((champion.calibration or {}).get("temperature", 1.0)),
        float(champion.metrics.get("accuracy", 0.0)),
    )
    int8_rows = [row for row in rows if row[0].runtime == "onnx-int8"]
    int8 = (champion.metrics.get("onnx") or {}).get("int8") or {}
    if len(int8_rows) * 2 <= len(rows) or not int8.get("passed") or "calibration" not in int8:
        kept = [row for row in rows if row[0].runtime != "onnx-int8"]
        return kept, replace(fp32, left_out=len(rows) - len(kept))
    return int8_rows, ReferenceBasis(
        "int8",
        REFERENCE_PROFILE_INT8,
        float(int8["calibration"]["temperature"]),
        float(int8["accuracy_int8"]),
        left_out=len(rows) - len(int8_rows),
    )


class NothingNew(InvalidInputError):
    """The window is the one the last check saw: checking it again would add nothing, and would count
    as one more check in a drift streak although nothing more was observed."""


def run_drift_check(
    registry: Registry,
    artifacts: ArtifactStore,
    model_name: str,
    config: MonitorConfig | None = None,
    *,
    skip_unchanged: bool = False,
) -> CheckRecord:
    """Check the champion's latest window now. ``skip_unchanged`` (the scheduler's ticks): raise
    :class:`NothingNew` when no prediction was logged since the last check of the same version."""
    config = config or MonitorConfig()
    champion = registry.get_version_by_alias(model_name, CHAMPION)
    rows, basis = _window_rows(registry, champion, config, skip_unchanged=skip_unchanged)
    # Labels the queue asked for because the model was unsure are a sample of its hardest rows, not of
    # its accuracy: the realized accuracy reads the others (the queue's random share, labels from
    # elsewhere). They still train the next run.
    by_margin = registry.chosen_for_labels([p.id for p, label in rows if label is not None])
    reference = pd.read_parquet(artifacts.fetch(champion.artifact) / basis.profile)
    window = window_of(rows, champion.labels, by_margin)
    outcome, report_uri = _compute(artifacts, reference, window, champion, basis, config.check)

    policy = config.policy
    state = _policy_state(registry, champion, outcome, policy)
    decision = decide(state, policy)
    first, last = rows[0][0].created_at, rows[-1][0].created_at
    record = NewDriftCheck(
        model_name=model_name,
        model_version=champion.version,
        window_start=first,
        window_end=last,
        reference=f"{champion.artifact_sha256[:12]}/{basis.profile} ({len(reference)} rows)",
        n_reference=len(reference),
        n_current=len(rows),
        scores={
            **outcome.scores(),
            "policy": asdict(state)
            | {"since_last_run": str(state.since_last_run), "labels_needed": decision.labels_needed},
            "window": {
                **_window_facts(rows),
                "runtime": basis.runtime,
                "left_out": basis.left_out,
                "labeled_by_margin": len(by_margin),
            },
        },
        drifted=bool(outcome.drifted_signals),
        decision="retrain" if decision.retrain else "none",
        reason=decision.reason,
        report_uri=report_uri,
    )
    queue = queued_run(config.run_config, policy, decision).to_record() if decision.retrain else None
    try:
        check, run = registry.add_drift_check(record, queue_run=queue, trigger=decision.trigger)
    except ConflictError as exc:  # another monitor queued a run since we looked
        record = replace(record, decision="none", reason=f"{decision.reason} (not queued: {exc.message})")
        check, run = registry.add_drift_check(record)
        decision = Decision(False, record.reason)
    logger.info("drift check %s on %s v%s: %s", check.id, model_name, champion.version, decision.reason)
    return CheckRecord(check=check, run=run, decision=decision)


def _window_rows(
    registry: Registry, champion: ModelVersion, config: MonitorConfig, *, skip_unchanged: bool
) -> tuple[list[tuple[Prediction, str | None]], ReferenceBasis]:
    """The champion's latest window (the rows of the runtime that served most of it) and its basis;
    raises when it is too small, or with ``skip_unchanged``, when the last check saw it already."""
    model_name = champion.model_name
    rows, basis = reference_basis(
        champion, registry.window(model_name, champion.version, limit=config.window_size)
    )
    if len(rows) < config.check.min_rows:
        raise InvalidInputError(
            f"model '{model_name}' v{champion.version} has served {len(rows)} logged predictions; a drift check "
            f"needs at least {config.check.min_rows}"
        )
    if skip_unchanged:
        last = registry.list_drift_checks(model_name, limit=1)
        if (
            last
            and last[0].model_version == champion.version
            and last[0].window_end >= rows[-1][0].created_at
        ):
            raise NothingNew(f"no prediction logged since drift check {last[0].id}")
    return rows, basis


def window_of(
    rows: list[tuple[Prediction, str | None]], labels: Sequence[str], by_margin: set[str]
) -> Window:
    """The check's view of logged rows: texts, served labels and probabilities (in ``labels`` order),
    the true labels except those in ``by_margin``, and the embeddings of the rows that kept one."""
    embedded = [(i, p.embedding) for i, (p, _) in enumerate(rows) if p.embedding is not None]
    return Window(
        texts=[p.text for p, _ in rows],
        predicted=[p.label for p, _ in rows],
        probs=np.array([[p.scores.get(label, 0.0) for label in labels] for p, _ in rows], dtype=np.float64),
        true_labels=[None if p.id in by_margin else label for p, label in rows],
        embeddings=np.stack([np.frombuffer(vector, dtype=np.float16) for _, vector in embedded])
        if embedded
        else None,
        embedding_rows=[i for i, _ in embedded],
    )


def _compute(
    artifacts: ArtifactStore,
    reference: pd.DataFrame,
    window: Window,
    champion: ModelVersion,
    basis: ReferenceBasis,
    config: CheckConfig,
) -> tuple[CheckOutcome, str]:
    """The check's signals and the URI of its Evidently report, stored beside the other reports."""
    name = f"drift/{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="driftline-check-") as tmp:
        outcome = compute_check(
            reference,
            window,
            labels=champion.labels,
            temperature=basis.temperature,
            reference_accuracy=basis.accuracy,
            reference_accuracy_rows=champion.metrics.get("n"),
            config=config,
            report_dir=Path(tmp),
        )
        report_uri = artifacts.put_report(Path(tmp), name) + "/drift_report.html"
    return outcome, report_uri


def _policy_state(
    registry: Registry, champion: ModelVersion, outcome: CheckOutcome, policy: PolicyConfig
) -> PolicyInput:
    """The policy's input: this check's outcome with the previous checks, the runs and the labels the
    registry holds."""
    previous = registry.list_drift_checks(champion.model_name, limit=policy.persistence)
    runs = registry.list_runs(champion.model_name, limit=20)
    # Labels count from the champion's training (what a run would train on). A run that started since
    # then and has ended did not replace the champion (refused, failed, skipped): a retry waits for
    # more evidence. (One still going is "already queued or running".)
    new_labels = registry.count_labels(champion.model_name, since=champion.created_at)
    attempt = last_attempt_start(runs, champion)
    since_attempt = registry.count_labels(champion.model_name, since=attempt) if attempt is not None else None
    return policy_input(
        outcome, champion, previous, runs, new_labels=new_labels, labels_since_attempt=since_attempt
    )


def drift_streak(drifted: bool, previous: Sequence[DriftCheck], version: int) -> int:
    """Consecutive checks, ending with this one, in which some signal drifted: ``previous`` (latest
    first) counts while its checks drifted on the same champion ``version``."""
    if not drifted:
        return 0
    streak = 1
    for check in previous:
        if not check.drifted or check.model_version != version:
            break
        streak += 1
    return streak


def last_attempt_start(runs: Sequence[RetrainRun], champion: ModelVersion) -> datetime | None:
    """When the latest run that started since the champion and has ended began (None: no such run)."""
    attempts = [
        r.started_at
        for r in runs
        if r.started_at is not None and r.finished_at is not None and r.started_at >= champion.created_at
    ]
    return max(attempts) if attempts else None


def policy_input(
    outcome: CheckOutcome,
    champion: ModelVersion,
    previous: Sequence[DriftCheck],
    runs: Sequence[RetrainRun],
    *,
    new_labels: int,
    labels_since_attempt: int | None,
    now: datetime | None = None,
) -> PolicyInput:
    """What the trigger policy reads, from this check's ``outcome``, the ``previous`` checks (latest
    first), the model's recent ``runs`` and two label counts: ``new_labels`` since the champion's
    training and ``labels_since_attempt``, since the start of the last attempt on this champion
    (:func:`last_attempt_start`; None: no attempt). ``now``: the clock (default: the current time)."""
    finished = [r.finished_at for r in runs if r.finished_at is not None]
    estimated = outcome.signal("estimated_accuracy_drop")
    realized = outcome.signal(REALIZED_DROP)
    measured = realized is not None and not np.isnan(realized.score)  # enough labels in the window
    return PolicyInput(
        drift_streak=drift_streak(bool(outcome.drifted_signals), previous, champion.version),
        drifted_signals=outcome.drifted_signals,
        estimated_drop=estimated.score if estimated else None,
        realized_drop=realized.score if realized and measured else None,
        new_labels=new_labels,
        active_run=any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in runs),
        since_last_run=(now or datetime.now(UTC)) - max(finished) if finished else None,
        last_attempt_labels=None if labels_since_attempt is None else new_labels - labels_since_attempt,
        realized_labels=int(realized.details.get("labeled", 0)) if realized and measured else None,
        champion_train_rows=_train_rows(champion),
        champion_degenerate=bool((champion.metrics.get("quality") or {}).get("degenerate")),
    )


def _train_rows(champion: ModelVersion) -> int | None:
    """The rows the champion was trained on, as its registration recorded them."""
    n = (champion.metrics.get("train") or {}).get("n")
    return int(n) if isinstance(n, int | float) and n > 0 else None


def queued_run(spec: RunSpec, policy: PolicyConfig, decision: Decision) -> RunSpec:
    """What a queued run records: the monitor's run spec, the reason, and the policy's floor as the run's
    own minimum of new labels (its default, 200, would skip a run a large drop queued sooner)."""
    assembly = replace(spec.assembly, min_new_labels=policy.min_labels_floor)
    return spec.model_copy(update={"assembly": assembly, "reason": decision.reason})


def _window_facts(rows: list[tuple[Prediction, str | None]]) -> dict[str, Any]:
    """What the window's rows say beside the signals: how many texts the model read only in part
    (longer than its ``max_length`` tokens) and how many carry a label."""
    truncated = sum(p.truncated for p, _ in rows)
    return {
        "rows": len(rows),
        "labeled": sum(label is not None for _, label in rows),
        "truncated": truncated,
        "truncated_share": truncated / len(rows) if rows else 0.0,
    }
