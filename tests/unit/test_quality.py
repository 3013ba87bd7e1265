"""The degenerate-model check as a pure function: one-class predictions, a macro-F1 near the majority
baseline, too few rows to tell, and a sound model left alone."""

from __future__ import annotations

import pytest

from retrain.quality import assess, majority_baseline, warning_lines

LABELS = ("negative", "neutral", "positive")


def truth(n_pos: int, n_neg: int, n_neu: int) -> list[str]:
    return ["positive"] * n_pos + ["negative"] * n_neg + ["neutral"] * n_neu


def test_the_majority_baseline_is_computed_on_the_same_rows() -> None:
    b = majority_baseline(truth(77, 13, 10), LABELS)
    assert b["label"] == "positive" and b["accuracy"] == pytest.approx(0.77)
    assert b["macro_f1"] == pytest.approx((2 * 0.77 / 1.77) / 3, abs=1e-3)  # 0.290, as the issue saw


def test_a_majority_class_predictor_is_degenerate_with_advice() -> None:
    y = truth(77, 13, 10)
    predicted = ["positive"] * 100
    q = assess(predicted, y, LABELS, macro_f1=0.290)
    assert q["degenerate"] and len(q["reasons"]) == 2
    assert "predicts 'positive' for 100%" in q["reasons"][0]
    assert "within 0.05 of always predicting 'positive'" in q["reasons"][1]
    assert q["advice"] and q["too_small_to_tell"] == []
    lines = warning_lines(q)
    assert lines[0].startswith("WARNING: this model is degenerate") and "class weighting" in lines[1]


def test_near_baseline_macro_f1_is_enough_without_one_class_predictions() -> None:
    y = truth(60, 25, 15)
    predicted = ["positive"] * 80 + ["negative"] * 20
    q = assess(predicted, y, LABELS, macro_f1=majority_baseline(y, LABELS)["macro_f1"] + 0.03)
    assert q["degenerate"] and len(q["reasons"]) == 1 and "macro-F1" in q["reasons"][0]


def test_a_sound_model_is_left_alone_and_a_small_set_is_said_to_be_small() -> None:
    y = truth(40, 35, 25)
    q = assess(list(y), y, LABELS, macro_f1=1.0)
    assert not q["degenerate"] and q["reasons"] == [] and q["advice"] == []
    assert [line for line in warning_lines(q) if line.startswith("WARNING")] == []
    small = truth(20, 10, 3)
    q = assess(list(small), small, LABELS, macro_f1=1.0)
    assert not q["degenerate"]
    assert any("only 33 held-out rows" in note for note in q["too_small_to_tell"])
    assert any("'neutral'" in note for note in q["too_small_to_tell"])
