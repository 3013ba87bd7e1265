"""What every training job does around its artifacts and its run row, and the step that turns a trained
model into a registered version: evaluate -> calibrate -> save -> profile -> store -> register.

A job runs inside :func:`training_job`: a failure half-way leaves no new artifact behind and the run
records why it failed. The version itself is written in one registry call, the last of the step, so
there is never a half-written one.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from registry.artifacts import ArtifactStore
from registry.entities import ArtifactRef, ModelVersion, NewModelVersion, RunStatus
from registry.errors import DriftlineError
from registry.store import Registry
from retrain.calibration import calibrate
from retrain.evaluate import classification_metrics
from retrain.quality import assess
from retrain.reference import write_reference_profile
from runtime.modelio import REFERENCE_PROFILE, REFERENCE_PROFILE_INT8, save_classifier
from runtime.scores import softmax

logger = logging.getLogger(__name__)


@dataclass
class JobArtifacts:
    """The artifacts a job stored that were new to the store: its own, to remove if it fails before a
    registered version uses them."""

    created: list[ArtifactRef] = field(default_factory=list)
    registered: bool = False  # a version of this job uses them: they stay, whatever happens next

    def store(self, artifacts: ArtifactStore, local_dir: Path) -> ArtifactRef:
        """Store ``local_dir``; remember it if this job was the first to store that content."""
        ref, is_new = artifacts.put_dir(local_dir)
        if is_new:
            self.created.append(ref)
        return ref


def remove_unreferenced(registry: Registry, artifacts: ArtifactStore, refs: list[ArtifactRef]) -> None:
    """Delete the artifacts a failed job created, unless a registered version uses them."""
    for ref in refs:
        try:
            if not registry.versions_using_artifact(ref.sha256):
                artifacts.delete(ref)
        except Exception:  # cleanup must not hide the original failure
            logger.exception("could not remove artifact %s after a failed job", ref.sha256[:12])


def record_failure(registry: Registry, run_id: int, exc: BaseException) -> None:
    message = exc.message if isinstance(exc, DriftlineError) else f"{type(exc).__name__}: {exc}"
    try:
        registry.finish_run(run_id, RunStatus.FAILED, error=message[:2000])
    except Exception:
        logger.exception("could not mark run %s as failed", run_id)


@contextlib.contextmanager
def training_job(
    registry: Registry,
    artifacts: ArtifactStore,
    run_id: int,
    *,
    leave_running: tuple[type[BaseException], ...] = (),
) -> Iterator[JobArtifacts]:
    """The work of run ``run_id``. If it raises (a kill's ``KeyboardInterrupt`` included), the artifacts
    it stored are removed unless its version was registered, the run is marked failed with the reason,
    and the exception goes on. An exception in ``leave_running`` leaves the run row as it is, for the
    retry of a run whose process was as good as killed."""
    job = JobArtifacts()
    try:
        yield job
    except BaseException as exc:
        if not job.registered:
            remove_unreferenced(registry, artifacts, job.created)
        if not isinstance(exc, leave_running):
            record_failure(registry, run_id, exc)
        raise


@contextlib.contextmanager
def heartbeats(registry: Registry, run_id: int, interval_s: float) -> Iterator[None]:
    """Beat the run's heartbeat every ``interval_s`` while the block runs: the scheduler reaps a run
    whose heartbeats stop (its process died)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval_s):
            try:
                registry.heartbeat(run_id)
            except DriftlineError as exc:
                logger.warning("run %s heartbeat failed: %s", run_id, exc.message)

    threading.Thread(target=beat, name=f"driftline-heartbeat-{run_id}", daemon=True).start()
    try:
        yield
    finally:
        stop.set()


@dataclass(frozen=True)
class Outputs:
    """A model's outputs on labeled rows (columns ``text``, ``label``, ``domain``), row for row."""

    rows: pd.DataFrame
    logits: np.ndarray
    pooled: np.ndarray


@dataclass(frozen=True)
class Candidate:
    """A trained model about to become a version, with its outputs on the rows that judge it."""

    trained: Any  # retrain.train.TrainResult
    train: pd.DataFrame  # the rows it was trained on, validation rows included
    labels: tuple[str, ...]
    max_length: int
    seed: int
    heldout: Outputs  # evaluated and calibrated on these; the data snapshot's held-out rows
    profile: Outputs  # its reference profile, and the rows its ONNX graph is verified on
    train_detail: dict[str, Any] = field(default_factory=dict)  # metrics["train"] beyond the training summary
    meta: dict[str, Any] = field(default_factory=dict)  # the artifact's meta beside the calibration
    snapshot_readme: str | None = None  # the data snapshot's README, when it has one


@dataclass(frozen=True)
class Registration:
    """Where and how a candidate is registered: what its job knows before evaluating it."""

    model_name: str
    base_model: str
    config: dict[str, Any]
    description: str
    training_run_id: int
    alias: str
    actor: str
    reason: Callable[[dict[str, Any]], str]  # the alias move's audit reason, given the version's metrics
    parent_version: int | None = None


def register_candidate(
    candidate: Candidate,
    registration: Registration,
    registry: Registry,
    artifacts: ArtifactStore,
    job: JobArtifacts,
) -> tuple[ModelVersion, dict[str, Any]]:
    """Evaluate, calibrate, save, profile and store ``candidate``, then register it: the new version and
    its metrics. The artifacts it stores are ``job``'s until the version is registered."""
    metrics = evaluate_candidate(candidate)
    calibration = calibrate(candidate.heldout.logits, label_ids(candidate.heldout.rows, candidate.labels))
    with tempfile.TemporaryDirectory(prefix="driftline-version-") as tmp:
        snapshot = write_data_snapshot(
            Path(tmp) / "data", candidate.train, candidate.heldout.rows, candidate.snapshot_readme
        )
        data_ref = job.store(artifacts, snapshot)
        model_dir = _save_model(candidate, calibration, Path(tmp) / "model")
        metrics["onnx"] = export_onnx(
            model_dir,
            candidate.trained,
            candidate.profile,
            candidate.labels,
            candidate.max_length,
            seed=candidate.seed,
        )
        model_ref = job.store(artifacts, model_dir)
    version = registry.register_version(
        registration.model_name,
        NewModelVersion(
            base_model=registration.base_model,
            artifact=model_ref,
            labels=candidate.labels,
            metrics=metrics,
            config=registration.config,
            parent_version=registration.parent_version,
            training_run_id=registration.training_run_id,
            data_snapshot=data_ref,
            calibration=calibration,
            description=registration.description,
        ),
        set_aliases=[registration.alias],
        actor=registration.actor,
        reason=registration.reason(metrics),
    )
    job.registered = True
    return version, metrics


def label_ids(rows: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    """The class index of each row's label in ``labels``."""
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[v] for v in rows["label"]])


def evaluate_candidate(candidate: Candidate) -> dict[str, Any]:
    """The version's metrics on its held-out rows: classification metrics, quality against the
    majority-class baseline, and how it was trained."""
    heldout, labels = candidate.heldout, candidate.labels
    metrics = classification_metrics(softmax(heldout.logits), heldout.rows["label"].tolist(), labels)
    metrics["quality"] = assess(
        [labels[i] for i in heldout.logits.argmax(axis=1)],
        heldout.rows["label"].tolist(),
        labels,
        metrics["macro_f1"],
    )
    metrics["train"] = {"n": len(candidate.train), **candidate.trained.summary(), **candidate.train_detail}
    return metrics


def write_data_snapshot(
    out_dir: Path, train: pd.DataFrame, heldout: pd.DataFrame, readme: str | None = None
) -> Path:
    """The exact examples used, so later runs can replay them and gates can re-use the held-out set."""
    out_dir.mkdir(parents=True)
    for name, frame in (("train", train), ("heldout", heldout)):
        frame.to_parquet(out_dir / f"{name}.parquet", index=False)
    if readme is not None:
        (out_dir / "README.md").write_text(readme)
    return out_dir


def _save_model(candidate: Candidate, calibration: dict[str, Any], out_dir: Path) -> Path:
    """The model's folder: weights, tokenizer, meta (with the calibration) and reference profile."""
    model_dir = save_classifier(
        candidate.trained.model,
        candidate.trained.tokenizer,
        out_dir,
        max_length=candidate.max_length,
        extra={**candidate.meta, "calibration": calibration},
    )
    profile = candidate.profile
    write_reference_profile(
        model_dir / REFERENCE_PROFILE,
        profile.rows,
        profile.logits,
        profile.pooled,
        candidate.labels,
        calibration["temperature"],
        seed=candidate.seed,
    )
    return model_dir


def export_onnx(
    model_dir: Path, trained: Any, reference: Outputs, labels: Sequence[str], max_length: int, *, seed: int
) -> dict[str, Any]:
    """The ONNX graph of a new version, exported into its folder and verified on its ``reference`` rows
    (:mod:`runtime.onnxrt`), unless ``DRIFTLINE_ONNX_EXPORT=false``; the result, recorded on the version.

    With ``DRIFTLINE_ONNX_INT8`` (the default) a verified graph is also quantized to int8 and guarded on
    the same labeled rows against PyTorch's outputs on them (logits, pooled). An int8 graph that is
    kept gets what the monitor needs to judge the traffic it serves: its own temperature, fitted on its
    logits of those rows as the fp32 one was (under ``"int8"`` → ``"calibration"``), and its own
    reference profile (``REFERENCE_PROFILE_INT8``)."""
    from registry.settings import get_settings
    from runtime.onnxrt import INT8_FILE, attach_onnx, record

    settings = get_settings()
    if not settings.onnx_export:
        return {"verified": False, "error": "not exported (DRIFTLINE_ONNX_EXPORT=false)"}
    texts = reference.rows["text"].tolist()
    block = attach_onnx(model_dir, trained.model, trained.tokenizer, texts, max_length=max_length)
    if not block["verified"] or not settings.onnx_int8:
        return block
    try:
        int8 = _attach_int8(
            model_dir,
            trained.tokenizer,
            block,
            reference,
            labels,
            max_length,
            margin=settings.int8_margin,
            seed=seed,
        )
    except Exception as exc:  # noqa: BLE001 - int8 is an option: a version registers without it
        logger.warning("int8 graph not kept: %s: %s", type(exc).__name__, exc)
        for leftover in (model_dir / INT8_FILE, model_dir / REFERENCE_PROFILE_INT8):
            leftover.unlink(missing_ok=True)
        int8 = {"passed": False, "reasons": [f"{type(exc).__name__}: {str(exc)[:500]}"]}
    block["int8"] = int8
    record(model_dir, block)
    return block


def _attach_int8(
    model_dir: Path,
    tokenizer: Any,
    fp32: dict[str, Any],
    reference: Outputs,
    labels: Sequence[str],
    max_length: int,
    *,
    margin: float,
    seed: int,
) -> dict[str, Any]:
    """The int8 graph's block: quantized, guarded on the reference rows of the label set, and when
    kept, calibrated and profiled on its own outputs there."""
    from runtime.onnxrt import HeldOut, attach_int8

    known = reference.rows["label"].isin(list(labels)).to_numpy()  # the guard judges rows of the label set
    rows = reference.rows[known].reset_index(drop=True)
    y_true = label_ids(rows, labels)
    fp32_logits, fp32_pooled = reference.logits[known], reference.pooled[known]
    temperature = calibrate(fp32_logits, y_true)["temperature"]
    heldout = HeldOut(rows["text"].tolist(), y_true, fp32_logits, fp32_pooled, temperature)
    int8, int8_outputs = attach_int8(
        model_dir, tokenizer, fp32, heldout, max_length=max_length, margin=margin
    )
    if int8_outputs is not None:
        logits, pooled = int8_outputs
        int8["calibration"] = calibrate(logits, y_true)
        write_reference_profile(
            model_dir / REFERENCE_PROFILE_INT8,
            rows,
            logits,
            pooled,
            labels,
            int8["calibration"]["temperature"],
            seed=seed,
        )
    return int8
