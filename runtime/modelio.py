"""Saving and loading classifiers in Hugging Face format, safetensors only.

``transformers`` is imported inside the functions so that ``import registry`` stays light.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.artifacts import ArtifactStore
from registry.entities import ModelVersion
from registry.errors import InvalidInputError, UnsafeArtifactError

logger = logging.getLogger(__name__)

DRIFTLINE_META = "driftline.json"
REFERENCE_PROFILE = "reference.parquet"  # held-out texts, predictions and embeddings, for the drift monitor
REFERENCE_PROFILE_INT8 = "reference.int8.parquet"  # the same rows as the int8 graph computes them


@dataclass
class LoadedClassifier:
    """A model ready for inference, with the registry version it came from."""

    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    labels: tuple[str, ...]
    max_length: int
    version: ModelVersion | None = None
    path: Path | None = None  # the (verified) folder it was loaded from
    meta: dict[str, Any] | None = None  # its driftline.json


def save_classifier(
    model: Any, tokenizer: Any, out_dir: Path, *, max_length: int, extra: dict[str, Any]
) -> Path:
    """Write ``model`` and ``tokenizer`` as safetensors + JSON into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    meta = {"labels": labels, "max_length": max_length, **extra}
    (out_dir / DRIFTLINE_META).write_text(json.dumps(meta, indent=1, sort_keys=True))
    unsafe = [p.name for p in out_dir.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".pickle"}]
    if unsafe:
        raise UnsafeArtifactError(f"model folder {out_dir} holds pickle-format files {unsafe}")
    return out_dir


def load_classifier_dir(path: Path, *, device: str = "cpu") -> LoadedClassifier:
    """Load a classifier folder written by :func:`save_classifier` (safetensors only)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    meta_path = Path(path) / DRIFTLINE_META
    if not meta_path.is_file():
        raise InvalidInputError(f"{path} is not a Driftline model folder: {DRIFTLINE_META} is missing")
    meta = json.loads(meta_path.read_text())
    model = AutoModelForSequenceClassification.from_pretrained(
        path, use_safetensors=True, local_files_only=True
    )
    model.to(device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    labels = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
    if list(labels) != list(meta["labels"]):
        raise InvalidInputError(
            f"{path}: model labels {labels} differ from {DRIFTLINE_META} labels {meta['labels']}"
        )
    return LoadedClassifier(
        model=model,
        tokenizer=tokenizer,
        labels=labels,
        max_length=int(meta["max_length"]),
        path=Path(path),
        meta=meta,
    )


def load_version(artifacts: ArtifactStore, version: ModelVersion, *, device: str = "cpu") -> LoadedClassifier:
    """Fetch a registered version, verify every file's sha256, and load it."""
    local = artifacts.fetch(version.artifact)
    loaded = load_classifier_dir(local, device=device)
    loaded.version = version
    logger.info("loaded %s v%s from %s", version.model_name, version.version, version.artifact_sha256[:12])
    return loaded
