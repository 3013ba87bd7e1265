"""What every training job does around its artifacts and its run row, so that a failure half-way
leaves no new artifact behind and the run records why it failed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

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


def export_onnx(model_dir: Path, trained: Any, reference_texts: list[str], max_length: int) -> dict[str, Any]:
    """The ONNX graph of a new version, exported into its folder and verified on its reference rows
    (:mod:`registry.onnxrt`), unless ``DRIFTLINE_ONNX_EXPORT=false``; the result, recorded on the version."""
    from registry.onnxrt import attach_onnx
    from registry.settings import get_settings

    if not get_settings().onnx_export:
        return {"verified": False, "error": "not exported (DRIFTLINE_ONNX_EXPORT=false)"}
    return attach_onnx(model_dir, trained.model, trained.tokenizer, reference_texts, max_length=max_length)
