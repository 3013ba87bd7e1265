"""The int8 accuracy check's figures and verdict as pure functions of the held-out rows' outputs."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.onnxrt import HeldOut, int8_figures, int8_shortfalls


def heldout(y_true: list[int], logits: list[list[float]]) -> HeldOut:
    return HeldOut(
        texts=[f"t{i}" for i in range(len(y_true))],
        y_true=np.array(y_true),
        logits=np.array(logits, dtype=np.float64),
        pooled=np.zeros((len(y_true), 2)),
        temperature=1.0,
    )


def test_figures_compare_fp32_and_int8_on_the_same_rows() -> None:
    rows = heldout([0, 1, 1, 0], [[3.0, 0.0], [0.0, 3.0], [0.0, 3.0], [3.0, 0.0]])
    int8 = np.array([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0], [3.0, 0.0]])  # row 2 flips to class 0
    figures, agree = int8_figures(rows, int8)
    assert agree == 3
    assert figures["accuracy_fp32"] == 1.0 and figures["accuracy_int8"] == 0.75
    assert figures["macro_f1_fp32"] == 1.0
    assert figures["macro_f1_int8"] == pytest.approx((0.8 + 2 / 3) / 2)
    top = float(np.exp(3.0) / (np.exp(3.0) + 1.0))
    assert figures["confidence_fp32"] == pytest.approx(top) and figures["confidence_int8"] == pytest.approx(
        top
    )


def test_shortfalls_name_each_figure_more_than_margin_below_fp32() -> None:
    figures = {"accuracy_fp32": 0.9, "accuracy_int8": 0.89, "macro_f1_fp32": 0.8, "macro_f1_int8": 0.797}
    assert int8_shortfalls(figures, 0.005) == ["accuracy 0.8900 is more than 0.5 points below fp32's 0.9000"]
    assert int8_shortfalls(figures, 0.02) == []
    assert int8_shortfalls({**figures, "accuracy_int8": 0.95}, 0.001) == [
        "macro_f1 0.7970 is more than 0.1 points below fp32's 0.8000"
    ]
