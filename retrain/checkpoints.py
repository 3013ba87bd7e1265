"""Training checkpoints that outlive a killed run, and when its retry may resume from them.

A checkpoint folder holds beside the Trainer's checkpoints the digest of what they were trained on
(:data:`CHECKPOINT_DIGEST`): a retry resumes only on the same rows, label set, config and base model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.train import TrainConfig
from retrain import distributed

logger = logging.getLogger(__name__)

# Beside the checkpoints: what they were trained on, so a retry only resumes on the same rows.
CHECKPOINT_DIGEST = "training-digest.txt"


def training_digest(
    train: pd.DataFrame, labels: Sequence[str], cfg: TrainConfig, base_path: Path, *, world_size: int = 1
) -> str:
    """What decides the checkpoints' content: the rows, the label set, the config and the base model,
    and the number of training processes when there are several (DDP's data order depends on it).

    A retry whose digest differs (new labels arrived, the champion changed) must not resume.
    """
    digest = hashlib.sha256()
    described: list[Any] = [list(labels), cfg.to_dict(), str(base_path)]
    if world_size > 1:
        described.append({"world_size": world_size})
    digest.update(json.dumps(described, sort_keys=True).encode())
    for text, label in train[["text", "label"]].itertuples(index=False):
        digest.update(json.dumps([text, label], ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def resume_point(checkpoint_dir: Path, digest: str) -> Path | None:
    """The checkpoint to resume from: the latest complete one, if made from the same training digest.

    Checkpoints from other rows are removed (training starts afresh); a checkpoint cut short by a kill
    (no trainer state yet, the last file the Trainer writes) is removed and the one before it used.
    """
    from transformers.trainer_utils import get_last_checkpoint

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    marker = checkpoint_dir / CHECKPOINT_DIGEST
    last = get_last_checkpoint(str(checkpoint_dir))
    if last is not None and (not marker.is_file() or marker.read_text().strip() != digest):
        logger.warning(
            "checkpoints in %s are from other training rows or config: starting afresh", checkpoint_dir
        )
        for stale in checkpoint_dir.glob("checkpoint-*"):
            shutil.rmtree(stale, ignore_errors=True)
        last = None
    while last is not None and not (Path(last) / "trainer_state.json").is_file():
        logger.warning("%s is incomplete (killed while saving): removed", Path(last).name)
        shutil.rmtree(last, ignore_errors=True)
        last = get_last_checkpoint(str(checkpoint_dir))
    marker.write_text(digest + "\n")
    return Path(last) if last is not None else None


def training_folder(
    stack: contextlib.ExitStack,
    train: pd.DataFrame,
    labels: Sequence[str],
    cfg: TrainConfig,
    base_path: Path,
    checkpoint_dir: Path | None,
    ranks: distributed.Ranks | None,
) -> tuple[Path, Path | None]:
    """The folder to train in and the checkpoint to resume from: ``checkpoint_dir`` and its
    :func:`resume_point`, or without one a temporary folder (removed when ``stack`` closes).

    Under torchrun rank 0 alone chooses both and every rank uses its choice.
    """
    main = ranks is None or ranks.is_main
    resume = None
    if checkpoint_dir and main:
        world_size = ranks.world_size if ranks is not None else 1
        resume = resume_point(
            checkpoint_dir, training_digest(train, labels, cfg, base_path, world_size=world_size)
        )
    out_dir = checkpoint_dir
    if out_dir is None and main:
        out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="driftline-train-")))
    if ranks is not None:  # every rank trains in rank 0's folder and resumes from rank 0's choice
        out_dir, resume = distributed.share((out_dir, resume), ranks)
    assert out_dir is not None
    if resume is not None:
        logger.info("resumed from %s", resume.name)
    return out_dir, resume
