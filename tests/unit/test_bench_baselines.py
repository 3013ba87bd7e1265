"""``bench.baselines``' ``bow-refit`` reference on tiny synthetic streams (milliseconds; no transformer):
it is refitted at every window on v1's rows and the stream labels that have arrived, never on a label
still inside the delay, and its row appears in ``bench.learning``'s table and targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from bench.baselines import Predict, bow_refit, fit_bow, refit_predictions
from bench.learning import compare, markdown


def frame(texts: Sequence[str], labels: Sequence[str], domains: Sequence[str] | None = None) -> pd.DataFrame:
    data = {"text": list(texts), "label": list(labels)}
    return pd.DataFrame(data if domains is None else {**data, "domain": list(domains)})


def last_label(_texts: Sequence[str], labels: Sequence[str]) -> Predict:
    """A stand-in model with no training: predicts the last label it was fitted on."""
    last = labels[-1]
    return lambda batch: [last] * len(batch)


BOOT = frame(["b0", "b1"], ["a", "a"])


def flipping(n: int, flip: int) -> pd.DataFrame:
    """``n`` rows labeled ``a``, then ``b`` from row ``flip`` on."""
    return frame([f"r{i}" for i in range(n)], ["a" if i < flip else "b" for i in range(n)])


def test_each_window_is_fitted_on_the_labels_that_have_arrived() -> None:
    seen: list[list[str]] = []

    def recording(texts: Sequence[str], labels: Sequence[str]) -> Predict:
        seen.append(list(texts))
        return last_label(texts, labels)

    rows = flipping(35, 100)
    _, windows = refit_predictions(BOOT, rows, window=10, label_delay=7, fit=recording)
    # windows start at rows 0, 10, 20, 30; before row s, rows 0 .. s-8 have sent their labels
    assert seen == [["b0", "b1"]] + [["b0", "b1", *[f"r{i}" for i in range(s - 7)]] for s in (10, 20, 30)]
    assert [w["labels"] for w in windows] == [2, 5, 15, 25]
    assert [(w["first_row"], w["last_row"]) for w in windows] == [(0, 9), (10, 19), (20, 29), (30, 34)]


@pytest.mark.parametrize(
    ("flip", "delay", "first_b"),
    [
        (22, 7, 30),  # row 22's label arrives after row 29: the window at 30 has it
        (23, 7, 40),  # row 23's is still inside the delay at row 30: not until the window at 40
        (23, 0, 30),  # no delay: the next window after the flip
        (5, 30, 40),  # a delay longer than a window
    ],
)
def test_a_label_flip_shows_the_lag_the_delay_and_window_give(flip: int, delay: int, first_b: int) -> None:
    rows = flipping(60, flip)
    predicted, _ = refit_predictions(BOOT, rows, window=10, label_delay=delay, fit=last_label)
    assert predicted == ["a"] * first_b + ["b"] * (60 - first_b)


def test_the_real_model_predicts_a_new_class_only_once_its_label_arrived() -> None:
    boot = frame(
        [f"alpha {i}" for i in range(10)] + [f"beta {i}" for i in range(10)], ["a"] * 10 + ["b"] * 10
    )
    texts = [f"{'alpha' if i % 2 else 'beta'} {i}" for i in range(20)] + [f"gamma {i}" for i in range(40)]
    labels = ["a" if i % 2 else "b" for i in range(20)] + ["c"] * 40
    rows = frame(texts, labels, ["old"] * 20 + ["new"] * 40)
    result = bow_refit(boot, rows, window=10, label_delay=5)
    predicted, _ = refit_predictions(boot, rows, window=10, label_delay=5)
    # the first "c" (row 20) is labeled after row 25: the window at 30 is the first to know class c
    assert "c" not in predicted[:30]
    assert predicted[30:] == ["c"] * 30
    assert predicted[:20] == labels[:20]  # the bag of words gets the old classes right
    assert result["accuracy"] == pytest.approx(50 / 60)
    new = result["domains"]["new"]
    assert (new["first_row"], new["last_row"], new["n"]) == (20, 59, 40)
    assert new["accuracy"] == pytest.approx(30 / 40)
    assert result["domains"]["old"]["accuracy"] == 1.0
    assert result["refits"] == 6 and result["labels_last_fit"] == 20 + 45
    assert 0.0 < result["macro_f1"] < 1.0 and result["fit_seconds"] >= 0.0


def test_one_class_fits_predict_it_and_bad_cadences_are_refused() -> None:
    assert fit_bow(["x", "y"], ["only", "only"])(["z", "w"]) == ["only", "only"]
    with pytest.raises(ValueError, match="window"):
        refit_predictions(BOOT, flipping(5, 2), window=0, label_delay=1)


def policy(accuracy: float, macro_f1: float) -> dict[str, Any]:
    return {
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "domains": {"A": {"n": 10, "first_row": 0, "last_row": 9, "accuracy": accuracy}},
        "counts": {"runs": 1, "promotions": 0},
        "labels_used": 10,
        "training_seconds": 3.0,
        "wall_s": 9.0,
        "rollbacks": 0,
        "time_to_recover": None,
        "harm": None,
    }


def test_the_reference_row_and_target_in_the_learning_table() -> None:
    rows = frame([f"alpha {i}" for i in range(10)], ["a"] * 10, ["A"] * 10)
    bow = bow_refit(frame(["alpha", "beta"], ["a", "b"]), rows, window=5, label_delay=2)
    drift = policy(0.9, 0.45)
    targets = compare({"drift": drift}, [], {"bow-refit": bow})
    assert targets["drift vs bow-refit"]["met"] is False  # below the bag of words' 1.000
    report = {
        "drifted": [],
        "targets": targets,
        "v1_seconds": 1.0,
        "policies": {"drift": drift},
        "references": {"bow-refit": bow},
    }
    head, _, drift_row, bow_row = markdown(report).splitlines()[:4]
    cells = dict(zip(head.strip("| ").split(" | "), bow_row.strip("| ").split(" | "), strict=True))
    assert cells["policy"] == "bow-refit" and cells["accuracy"] == "1.000" and cells["acc. A"] == "1.000"
    assert cells["runs"] == "2" and cells["promoted"] == ""
    assert "drift vs bow-refit" in markdown(report)
