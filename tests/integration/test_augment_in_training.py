"""Augmentation inside a training job touches the training rows only: the validation rows the recipe
search compares trials on are set aside first and never edited or copied, and what was added is counted."""

from __future__ import annotations

import pandas as pd

from contracts import TrainConfig
from retrain.train import _augmented, default_base_model_path, validation_split
from tests.textgen import topic_rows


def test_augmentation_adds_rarer_class_rows_to_training_only() -> None:
    rows = pd.DataFrame(topic_rows(400, seed=3))[["text", "label"]]
    skewed = pd.concat([rows[rows["label"] == "food"], rows[rows["label"] != "food"].iloc[::4]], ignore_index=True)
    cfg = TrainConfig(augment_strength=0.5, validation_fraction=0.2, seed=3)
    split = validation_split(skewed, cfg)
    assert split.validation is not None
    augmented, summary = _augmented(split, cfg, default_base_model_path())

    pd.testing.assert_frame_equal(augmented.validation, split.validation)  # the validation rows: untouched
    assert len(augmented.train) == len(split.train) + summary["rows_added"] > len(split.train)
    assert augmented.train.iloc[: len(split.train)][["text", "label"]].equals(
        split.train[["text", "label"]].reset_index(drop=True)
    )  # the originals first, unchanged
    counts = split.train["label"].value_counts()
    assert summary["added"].get(counts.idxmax(), 0) == 0  # the largest class gains nothing
    new = augmented.train.iloc[len(split.train) :]
    assert set(new["text"]).isdisjoint(set(split.validation["text"]))
    assert set(new["label"]) <= set(counts.index[counts < counts.max()])
    assert _augmented(split, TrainConfig(augment_strength=0.0), default_base_model_path()) == (split, None)
