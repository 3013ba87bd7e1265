"""What every training job does around its artifacts and its run row, so that a failure half-way
leaves no new artifact behind and the run records why it failed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from registry.artifacts import ArtifactStore
from registry.entities import ArtifactRef, RunStatus
from registry.errors import DriftlineError
from registry.store import Registry

logger = logging.getLogger(__name__)


def store_new(artifacts: ArtifactStore, local_dir: Path, created: list[ArtifactRef]) -> ArtifactRef:
    """Store ``local_dir``; remember it in ``created`` if this job was the first to store that content."""
    ref, is_new = artifacts.put_dir(local_dir)
    if is_new:
        created.append(ref)
    return ref


def remove_unreferenced(registry: Registry, artifacts: ArtifactStore, refs: list[ArtifactRef]) -> None:
    """Delete the artifacts a failed job created, unless a registered version uses them."""
    for ref in refs:
        try:
            if not registry.versions_using_artifact(ref.sha256):
                artifacts.delete(ref)
        except Exception:  # noqa: BLE001 - cleanup must not hide the original failure
            logger.exception("could not remove artifact %s after a failed job", ref.sha256[:12])


def record_failure(registry: Registry, run_id: int, exc: BaseException) -> None:
    message = exc.message if isinstance(exc, DriftlineError) else f"{type(exc).__name__}: {exc}"
    try:
        registry.finish_run(run_id, RunStatus.FAILED, error=message[:2000])
    except Exception:  # noqa: BLE001
        logger.exception("could not mark run %s as failed", run_id)


def export_onnx(
    model_dir: Path,
    trained: Any,
    rows: pd.DataFrame,
    outputs: tuple[np.ndarray, np.ndarray],
    labels: Sequence[str],
    max_length: int,
    *,
    seed: int,
) -> dict[str, Any]:
    """The ONNX graph of a new version, exported into its folder and verified on its reference ``rows``
    (:mod:`registry.onnxrt`), unless ``DRIFTLINE_ONNX_EXPORT=false``; the result, recorded on the version.

    With ``DRIFTLINE_ONNX_INT8`` (the default) a verified graph is also quantized to int8 and guarded on
    the same labeled rows against PyTorch's ``outputs`` on them (logits, pooled). An int8 graph that is
    kept gets what the monitor needs to judge the traffic it serves: its own temperature, fitted on its
    logits of those rows as the fp32 one was (under ``"int8"`` → ``"calibration"``), and its own
    reference profile (``REFERENCE_PROFILE_INT8``)."""
    from registry.modelio import REFERENCE_PROFILE_INT8
    from registry.onnxrt import INT8_FILE, HeldOut, attach_int8, attach_onnx, record
    from registry.settings import get_settings
    from retrain.calibration import calibrate
    from retrain.reference import write_reference_profile

    settings = get_settings()
    if not settings.onnx_export:
        return {"verified": False, "error": "not exported (DRIFTLINE_ONNX_EXPORT=false)"}
    texts = rows["text"].tolist()
    block = attach_onnx(model_dir, trained.model, trained.tokenizer, texts, max_length=max_length)
    if not block["verified"] or not settings.onnx_int8:
        return block
    try:
        index = {label: i for i, label in enumerate(labels)}
        known = rows["label"].isin(list(index)).to_numpy()  # the guard judges rows of the label set
        rows = rows[known].reset_index(drop=True)
        y_true = np.array([index[v] for v in rows["label"]])
        fp32_logits, fp32_pooled = outputs[0][known], outputs[1][known]
        calibration = calibrate(fp32_logits, y_true)
        heldout = HeldOut(rows["text"].tolist(), y_true, fp32_logits, fp32_pooled, calibration["temperature"])
        int8, int8_outputs = attach_int8(
            model_dir, trained.tokenizer, block, heldout, max_length=max_length, margin=settings.int8_margin
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
    except Exception as exc:  # noqa: BLE001 - int8 is an option: a version registers without it
        logger.warning("int8 graph not kept: %s: %s", type(exc).__name__, exc)
        for leftover in (model_dir / INT8_FILE, model_dir / REFERENCE_PROFILE_INT8):
            leftover.unlink(missing_ok=True)
        int8 = {"passed": False, "reasons": [f"{type(exc).__name__}: {str(exc)[:500]}"]}
    block["int8"] = int8
    record(model_dir, block)
    return block
