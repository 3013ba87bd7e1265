"""The fine-tuning protocol's pure parts: config rules, weighting choice, validation split, resume
bookkeeping and the report line. No model is trained here."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from contracts.train import TrainConfig
from registry.errors import InvalidInputError
from retrain.checkpoints import CHECKPOINT_DIGEST, resume_point, training_digest, training_folder
from retrain.report import _training
from retrain.train import choose_weighting, validation_split


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"validation_fraction": 0.5}, r"validation_fraction=0.5 must be in \[0, 0.5\)"),
        ({"validation_fraction": -0.1}, r"validation_fraction=-0.1 must be in"),
        ({"early_stopping_patience": -1}, "early_stopping_patience=-1 must be >= 0"),
        ({"eval_steps": 0}, "eval_steps=0 must be >= 1"),
        ({"freeze_layers": -1}, "freeze_layers=-1 must be >= 0"),
        ({"imbalance_ratio": 0.5}, "imbalance_ratio=0.5 must be >= 1"),
        ({"class_weighting": "inverse"}, "class_weighting='inverse' must be one of"),
    ],
)
def test_new_fields_are_checked(values: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        TrainConfig(**values)


def test_defaults_and_round_trip() -> None:
    cfg = TrainConfig()
    assert (cfg.validation_fraction, cfg.early_stopping_patience, cfg.freeze_layers) == (0.1, 2, 0)
    assert (cfg.class_weighting, cfg.imbalance_ratio, cfg.eval_steps) == ("auto", 3.0, None)
    custom = dataclasses.replace(cfg, validation_fraction=0, eval_steps=5, freeze_layers=2)
    assert TrainConfig.from_dict(custom.to_dict()) == custom


def test_auto_weighting_is_sqrt_only_when_imbalanced() -> None:
    cfg = TrainConfig()
    assert choose_weighting(["a"] * 30 + ["b"] * 10, cfg) == "sqrt"  # ratio 3.0: at the threshold
    assert choose_weighting(["a"] * 29 + ["b"] * 10, cfg) == "none"  # ratio 2.9
    assert choose_weighting(["a"] * 29 + ["b"] * 10, dataclasses.replace(cfg, imbalance_ratio=2)) == "sqrt"
    assert (
        choose_weighting(["a"] * 90 + ["b"] * 10, dataclasses.replace(cfg, class_weighting="none")) == "none"
    )
    assert choose_weighting(["a", "b"], dataclasses.replace(cfg, class_weighting="balanced")) == "balanced"


def _rows(counts: dict[str, int]) -> pd.DataFrame:
    labels = [label for label, n in counts.items() for _ in range(n)]
    return pd.DataFrame({"text": [f"text {i}" for i in range(len(labels))], "label": labels})


def test_validation_split_is_stratified_and_seeded() -> None:
    rows = _rows({"a": 160, "b": 40})
    split = validation_split(rows, TrainConfig())
    assert split.validation is not None and len(split.validation) == 20 and len(split.train) == 180
    assert split.validation["label"].value_counts().to_dict() == {"a": 16, "b": 4}  # same shares
    assert "20 validation rows (stratified)" in split.note
    again = validation_split(rows, TrainConfig())
    assert (
        again.validation is not None
        and again.validation["text"].tolist() == split.validation["text"].tolist()
    )
    other = validation_split(rows, TrainConfig(seed=99))
    assert (
        other.validation is not None
        and other.validation["text"].tolist() != split.validation["text"].tolist()
    )
    assert set(split.train["text"]).isdisjoint(split.validation["text"])


def test_validation_split_random_small_or_disabled() -> None:
    lone = validation_split(_rows({"a": 150, "b": 49, "c": 1}), TrainConfig())
    assert lone.validation is not None and "(random)" in lone.note  # a class with one row
    small = validation_split(_rows({"a": 100, "b": 90}), TrainConfig())
    assert small.validation is None and len(small.train) == 190
    assert "190 training rows give 19 validation rows, fewer than 20" in small.note
    off = validation_split(_rows({"a": 500, "b": 500}), TrainConfig(validation_fraction=0))
    assert off.validation is None and "validation_fraction=0" in off.note


def test_resume_point_only_for_the_same_rows(tmp_path: Path) -> None:
    rows = _rows({"a": 10, "b": 10})
    digest = training_digest(rows, ["a", "b"], TrainConfig(), tmp_path / "base")
    assert resume_point(tmp_path / "ck", digest) is None  # nothing yet; the digest is written
    assert (tmp_path / "ck" / CHECKPOINT_DIGEST).read_text().strip() == digest
    for step in (5, 10):
        (tmp_path / "ck" / f"checkpoint-{step}").mkdir()
        (tmp_path / "ck" / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "ck" / "checkpoint-15").mkdir()  # killed while saving: no trainer state
    assert resume_point(tmp_path / "ck", digest) == tmp_path / "ck" / "checkpoint-10"
    assert not (tmp_path / "ck" / "checkpoint-15").exists()

    more = pd.concat([rows, _rows({"a": 1})], ignore_index=True)  # a label arrived meanwhile
    changed = training_digest(more, ["a", "b"], TrainConfig(), tmp_path / "base")
    assert changed != digest
    assert training_digest(rows, ["a", "b"], TrainConfig(seed=1), tmp_path / "base") != digest
    assert resume_point(tmp_path / "ck", changed) is None
    assert list((tmp_path / "ck").glob("checkpoint-*")) == []


def test_training_folder_is_the_checkpoint_dir_or_a_temporary_one(tmp_path: Path) -> None:
    rows = _rows({"a": 10, "b": 10})
    with contextlib.ExitStack() as stack:
        out_dir, resume = training_folder(
            stack, rows, ["a", "b"], TrainConfig(), tmp_path, tmp_path / "ck", None
        )
        assert (out_dir, resume) == (tmp_path / "ck", None)
        assert (tmp_path / "ck" / CHECKPOINT_DIGEST).is_file()  # the retry resumes only on these rows
        (out_dir / "checkpoint-4").mkdir()
        (out_dir / "checkpoint-4" / "trainer_state.json").write_text("{}")
        again = training_folder(stack, rows, ["a", "b"], TrainConfig(), tmp_path, tmp_path / "ck", None)
        assert again == (tmp_path / "ck", tmp_path / "ck" / "checkpoint-4")
        temporary, nothing = training_folder(stack, rows, ["a", "b"], TrainConfig(), tmp_path, None, None)
        assert temporary.is_dir() and nothing is None
    assert not temporary.exists()  # removed with the stack
    assert (tmp_path / "ck" / "checkpoint-4").is_dir()


def test_report_line_on_training() -> None:
    line = _training(
        {
            "epochs_run": 2.0,
            "steps": 28,
            "stopped_early": True,
            "best_val_macro_f1": 0.91,
            "best_val_accuracy": 0.9,
            "weighting": "sqrt",
            "resumed_from": "checkpoint-14",
        }
    )
    assert "2 epochs, 28 steps (stopped early)" in line and "macro-F1 0.910" in line
    assert "class weighting sqrt" in line and "resumed from checkpoint-14" in line
    assert _training({}) == ""  # versions trained before these fields existed
