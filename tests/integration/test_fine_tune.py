"""The fine-tuning protocol on a real (1-layer MiniLM) model: early stopping at the best checkpoint,
frozen lower layers, and a killed training resumed from its checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import TrainerCallback

from registry.errors import InvalidInputError
from retrain.evaluate import forward_outputs
from retrain.train import TrainResult, default_base_model_path, fine_tune, load_base, validation_split
from tests.models import TINY_TRAIN
from tests.textgen import topic_rows

LABELS = ["food", "sports", "weather"]
# 80 rows: 20 validate (validation_fraction 0.25), 60 train in 4 steps an epoch; learnt in ~3 epochs.
QUICK = dataclasses.replace(
    TINY_TRAIN, max_length=16, learning_rate=2e-3, warmup_ratio=0.0, validation_fraction=0.25
)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.DataFrame(topic_rows(80, seed=11))


def train(rows: pd.DataFrame, cfg: Any, **kwargs: Any) -> TrainResult:
    return fine_tune(rows, LABELS, cfg, base_path=default_base_model_path(), progress=False, **kwargs)


def evaluations(result: TrainResult) -> list[tuple[int, float]]:
    return [(e["step"], e["eval_macro_f1"]) for e in result.log if "eval_macro_f1" in e]


def test_early_stopping_ends_at_the_best_checkpoint(rows: pd.DataFrame) -> None:
    cfg = dataclasses.replace(QUICK, epochs=8, early_stopping_patience=1)
    result = train(rows, cfg)

    scores = evaluations(result)
    assert result.stopped_early and result.epochs_run < 8, scores
    assert len(scores) == result.epochs_run  # one evaluation an epoch
    best_step, best = max(scores, key=lambda s: (s[1], -s[0]))  # the first of the best
    assert scores[-1][1] <= best and scores[-1][0] > best_step  # stopped after no improvement
    assert result.best_val_macro_f1 == best and result.best_val_accuracy is not None
    assert (result.n_train, result.n_validation) == (60, 20)
    assert result.weighting == "none" and result.class_weights is None  # balanced classes
    # The model returned is the best checkpoint's: it scores the best macro-F1 on the validation rows.
    validation = validation_split(rows, cfg).validation
    assert validation is not None
    logits, _ = forward_outputs(
        result.model,
        result.tokenizer,
        validation["text"].tolist(),
        max_length=16,
        batch_size=64,
        progress=False,
    )
    predicted = np.array(LABELS)[logits.argmax(1)]
    assert (predicted == validation["label"].to_numpy()).mean() == result.best_val_accuracy


def test_frozen_layers_do_not_move(rows: pd.DataFrame) -> None:
    cfg = dataclasses.replace(QUICK, epochs=1, freeze_layers=1, validation_fraction=0)
    before, _ = load_base(default_base_model_path(), LABELS, cfg)
    result = train(rows.head(48), cfg)
    assert result.steps == 3 and result.n_validation == 0 and "validation_fraction=0" in result.validation

    def params(model: Any, prefix: str) -> dict[str, torch.Tensor]:
        return {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}

    for prefix in ("bert.embeddings.", "bert.encoder.layer.0."):
        old, new = params(before, prefix), params(result.model, prefix)
        assert old and old.keys() == new.keys()
        assert all(torch.equal(old[k], new[k]) for k in old), prefix
    assert not torch.equal(before.classifier.weight, result.model.classifier.weight)

    with pytest.raises(InvalidInputError, match="freeze_layers=2 must be <= the model's 1 encoder layers"):
        train(rows, dataclasses.replace(cfg, freeze_layers=2))


class KillAfterFirstSave(TrainerCallback):
    """Stands for a process killed right after the Trainer wrote its first checkpoint."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt(f"killed at step {state.global_step}")


def test_a_killed_training_resumes_from_its_checkpoint(rows: pd.DataFrame, tmp_path: Path) -> None:
    cfg = dataclasses.replace(QUICK, epochs=1, eval_steps=2)  # 4 steps: evaluated and saved at 2 and 4
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(KeyboardInterrupt, match="killed at step 2"):
        train(rows, cfg, checkpoint_dir=checkpoints, callbacks=[KillAfterFirstSave()])
    assert [p.name for p in checkpoints.glob("checkpoint-*")] == ["checkpoint-2"]

    resumed = train(rows, cfg, checkpoint_dir=checkpoints)
    assert resumed.resumed_from == "checkpoint-2" and resumed.steps == 4
    assert [step for step, _ in evaluations(resumed)] == [2, 4]  # the first attempt's evaluation kept
    assert resumed.best_val_macro_f1 == max(score for _, score in evaluations(resumed))
    assert resumed.train_loss is not None and resumed.train_loss > 0

    # A retry after training had finished (the run failed later) trains no further step.
    again = train(rows, cfg, checkpoint_dir=checkpoints)
    assert again.resumed_from == "checkpoint-4" and again.steps == 4
    assert again.best_val_macro_f1 == resumed.best_val_macro_f1

    # Other rows (new labels arrived meanwhile): the checkpoints are not used.
    fresh = train(rows.iloc[1:], dataclasses.replace(cfg, epochs=0.5), checkpoint_dir=checkpoints)
    assert fresh.resumed_from is None and fresh.steps == 2


def test_auto_max_length_is_resolved_on_the_training_rows(rows: pd.DataFrame) -> None:
    cfg = dataclasses.replace(QUICK, max_length="auto", epochs=0.5, validation_fraction=0)
    result = train(rows, cfg)
    assert result.max_length == 64 and result.summary()["max_length"] == 64
    assert result.length_choice is not None and result.length_choice.n_measured == len(rows)
