"""Metrics, configuration and error tables: pure functions, no model."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.train import TrainConfig
from registry.errors import HTTP_STATUS, ErrorCode, InvalidInputError, NotFoundError
from retrain.evaluate import classification_metrics, expected_calibration_error
from retrain.train import class_weights


def test_classification_metrics_by_hand() -> None:
    labels = ["neg", "pos"]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = classification_metrics(probs, ["neg", "pos", "pos", "neg"], labels)
    # predictions: neg, pos, neg, pos -> 2 of 4 right; each class: precision 0.5, recall 0.5
    assert m["n"] == 4
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["per_class"]["pos"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}


def test_missing_class_gets_zero_not_an_error() -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    m = classification_metrics(probs, ["a", "b"], ["a", "b", "c"])
    assert m["per_class"]["c"]["support"] == 0
    assert m["per_class"]["b"]["recall"] == 0.0


def test_calibration_error() -> None:
    y = np.array([0, 0, 1, 1])
    perfect = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, y) == pytest.approx(0.0)
    overconfident = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert expected_calibration_error(overconfident, y) == pytest.approx(0.5)


def test_class_weights() -> None:
    train = ["a"] * 8 + ["b"] * 2
    assert class_weights(train, ["a", "b"], "none") is None
    assert class_weights(train, ["a", "b"], "balanced") == pytest.approx([10 / 16, 10 / 4])
    assert class_weights(train, ["a", "b"], "sqrt") == pytest.approx([(10 / 16) ** 0.5, (10 / 4) ** 0.5])
    assert class_weights(train, ["a", "b", "c"], "balanced")[2] == 0.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": 0}, "epochs=0 must be > 0"),
        ({"max_length": 4}, "max_length=4 must be 'auto' or an integer between 8 and 512"),
        ({"test_size": 1.0}, "test_size=1.0 must be between 0 and 1"),
        ({"class_weighting": "odd"}, "class_weighting='odd' must be one of"),
    ],
)
def test_config_rejects_bad_values(values: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        TrainConfig(**values)


def test_config_from_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "train.json"
    path.write_text('{"epochs": 2, "seed": 5}')
    cfg = TrainConfig.from_file(path)
    assert (cfg.epochs, cfg.seed, cfg.max_length) == (2, 5, 64)
    path.write_text('{"epoch": 2}')
    with pytest.raises(InvalidInputError, match=r"unknown keys \['epoch'\]"):
        TrainConfig.from_file(path)


def test_every_error_code_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)
    err = NotFoundError("model 'sentiment' has no version 7", model="sentiment", version=7)
    assert err.http_status == 404
    assert err.to_dict() == {
        "error": "NOT_FOUND",
        "message": "model 'sentiment' has no version 7",
        "details": {"model": "sentiment", "version": 7},
    }
