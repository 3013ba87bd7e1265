"""Retraining data: new labels + replay, de-duplicated, the latest labels held out, no leakage."""

from __future__ import annotations

import pandas as pd
import pytest

from contracts import AssemblyConfig
from retrain.assemble import SkipRun, allocate, assemble

LABELS = ("neg", "pos")


def frame(n: int, prefix: str, start: str = "2026-01-01", label_of=lambda i: LABELS[i % 2]) -> pd.DataFrame:
    times = pd.date_range(start, periods=n, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "text": [f"{prefix} text {i}" for i in range(n)],
            "label": [label_of(i) for i in range(n)],
            "domain": prefix,
            "time": times,
        }
    )


def test_latest_labels_are_held_out_and_replay_is_mixed_in() -> None:
    new = frame(100, "new")
    data = assemble(
        new,
        frame(500, "old"),
        frame(50, "oldeval"),
        labels=LABELS,
        config=AssemblyConfig(min_new_labels=50, holdout_fraction=0.2, replay_ratio=0.5),
    )
    assert data.counts == {
        "new_labels": 100,
        "new_train": 80,
        "replay": 40,
        "recent_heldout": 20,
        "old_heldout": 50,
        "unknown_labels": 0,
    }
    assert data.recent_heldout["time"].min() > data.train[data.train["origin"] == "new"]["time"].max()
    assert not set(data.train["text"]) & set(data.recent_heldout["text"])
    assert not set(data.train["text"]) & set(data.old_heldout["text"])
    assert set(data.train["origin"]) == {"new", "replay"}


def test_duplicates_keep_the_latest_label_and_never_leak() -> None:
    new = frame(60, "new")
    again = new.iloc[:5].assign(label="pos", time=pd.Timestamp("2027-01-01", tz="UTC"))  # relabelled later
    replay = pd.concat([frame(100, "old"), new.iloc[:10]])  # some new texts were in the old training data
    data = assemble(
        pd.concat([new, again]),
        replay,
        frame(10, "oldeval"),
        labels=LABELS,
        config=AssemblyConfig(min_new_labels=10, replay_ratio=1.0),
    )
    assert data.counts["new_labels"] == 60
    relabelled = data.recent_heldout[data.recent_heldout["text"] == "new text 0"]
    assert list(relabelled["label"]) == ["pos"]  # the later label, now among the latest rows
    assert data.train["text"].is_unique
    assert not set(data.train[data.train["origin"] == "replay"]["text"]) & set(new["text"])


def test_too_few_labels_or_one_class_skips_the_run() -> None:
    with pytest.raises(SkipRun, match="40 new labelled texts; at least 200 are needed"):
        assemble(frame(40, "new"), frame(10, "old"), frame(5, "e"), labels=LABELS)
    one_class = frame(300, "new", label_of=lambda i: "neg")
    old_one_class = frame(10, "old", label_of=lambda i: "neg")
    with pytest.raises(SkipRun, match="single class \\(neg\\)"):
        assemble(one_class, old_one_class, frame(5, "e"), labels=LABELS)
    # The replayed rows count: one new class plus the champion's other class is enough to train on.
    data = assemble(one_class, frame(10, "old"), frame(5, "e"), labels=LABELS)
    assert set(data.train["label"]) == {"neg", "pos"}


def test_skip_reason_names_labels_outside_the_champions_set() -> None:
    new = frame(300, "new", label_of=lambda i: "neg" if i % 10 else ("spam" if i % 20 else "ham"))
    with pytest.raises(SkipRun) as info:
        assemble(new, frame(10, "old", label_of=lambda i: "neg"), frame(5, "e"), labels=LABELS)
    reason = info.value.reason
    assert "single class (neg)" in reason
    assert "30 rows with labels outside the champion's label set were ignored ('ham' 15, 'spam' 15)" in reason
    data = assemble(
        new, frame(10, "old"), frame(5, "e"), labels=LABELS, config=AssemblyConfig(min_new_labels=10)
    )
    assert data.counts["unknown_labels"] == 30
    assert data.unknown_labels == {"ham": 15, "spam": 15}
    with pytest.raises(
        SkipRun, match=r"270 new labelled texts; at least 280 are needed; 30 rows with labels"
    ):
        assemble(
            new, frame(10, "old"), frame(5, "e"), labels=LABELS, config=AssemblyConfig(min_new_labels=280)
        )


def shifting(n: int, prefix: str, first: float, last: float, labels=LABELS) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """``n`` rows in time order whose share of ``labels[1]`` moves linearly from ``first`` to ``last``."""
    out = frame(n, prefix)
    owed = 0.0
    values = []
    for i in range(n):
        owed += first + (last - first) * i / max(1, n - 1)
        values.append(labels[1] if owed >= 1 else labels[0])
        owed -= 1 if owed >= 1 else 0
    return out.assign(label=values)


def test_prior_moving_from_90_10_to_10_90_keeps_every_class_in_each_set() -> None:
    # The champion learnt on a 90 % neg world; the new labels move from 90/10 to 10/90 neg/pos.
    old = frame(400, "old", label_of=lambda i: "pos" if i % 10 == 0 else "neg")
    new = shifting(300, "new", 0.1, 0.9)
    data = assemble(new, old, frame(40, "e"), labels=LABELS, config=AssemblyConfig(min_new_labels=100))
    recent = data.recent_heldout["label"].value_counts().to_dict()
    new_counts = new["label"].value_counts().to_dict()
    for label in LABELS:  # each class's latest 20 % of its own rows
        assert recent[label] == round(new_counts[label] * 0.2), (label, recent)
    assert abs(len(data.recent_heldout) - 60) <= 2  # still about holdout_fraction of the new rows
    # Within a class, the held-out rows are its latest ones.
    trained = data.train[data.train["origin"] == "new"]
    for label in LABELS:
        assert (
            data.recent_heldout[data.recent_heldout["label"] == label]["time"].min()
            > trained[trained["label"] == label]["time"].max()
        )
    replayed = data.train[data.train["origin"] == "replay"]["label"].value_counts().to_dict()
    assert replayed["pos"] >= 5 and replayed["neg"] > replayed["pos"]  # proportional, with a floor
    assert data.per_class == {
        label: {
            "new_train": int((trained["label"] == label).sum()),
            "replay": replayed[label],
            "recent_heldout": recent[label],
            "old_heldout": int((data.old_heldout["label"] == label).sum()),
        }
        for label in LABELS
    }
    assert sum(c["new_train"] for c in data.per_class.values()) == data.counts["new_train"]


def test_a_class_that_vanished_from_recent_labels_is_still_held_out_and_replayed() -> None:
    labels = ("a", "b", "c")
    # "c" was common in the champion's data; lately it appears only twice, early on.
    old = frame(300, "old", label_of=lambda i: labels[i % 3])
    new = frame(200, "new", label_of=lambda i: "c" if i in (3, 50) else labels[i % 2])
    data = assemble(
        new, old, frame(30, "e"), labels=labels, config=AssemblyConfig(min_new_labels=50, replay_ratio=0.1)
    )
    assert set(data.recent_heldout["label"]) == set(
        labels
    )  # the rare class's later row is in the gate's rows
    assert data.per_class["c"]["recent_heldout"] == 1 and data.per_class["c"]["new_train"] == 1
    replayed = data.train[data.train["origin"] == "replay"]["label"].value_counts().to_dict()
    assert set(replayed) == set(labels) and min(replayed.values()) >= 5
    # A class absent from the new labels altogether is still replayed.
    only_ab = frame(200, "new", label_of=lambda i: labels[i % 2])
    data = assemble(only_ab, old, frame(30, "e"), labels=labels, config=AssemblyConfig(min_new_labels=50))
    assert data.per_class["c"]["new_train"] == 0 and data.per_class["c"]["replay"] > 0
    assert data.per_class["c"]["recent_heldout"] == 0


def test_allocate_floors_then_shares_in_proportion() -> None:
    assert allocate({"a": 900, "b": 100, "c": 3}, 100, 5) == {"a": 83, "b": 14, "c": 3}
    assert allocate({"a": 10, "b": 10}, 100, 5) == {"a": 10, "b": 10}  # never more than a class has
    assert allocate({"a": 50, "b": 50, "c": 50}, 4, 5) == {"a": 5, "b": 5, "c": 5}  # the floors win
    assert sum(allocate({"a": 7, "b": 5, "c": 1}, 9, 1).values()) == 9
