"""Retraining data: new labels + replay, de-duplicated, the latest labels held out, no leakage."""

from __future__ import annotations

import pandas as pd
import pytest

from retrain.assemble import AssemblyConfig, SkipRun, assemble

LABELS = ("neg", "pos")


def frame(n: int, prefix: str, start: str = "2026-01-01", label_of=lambda i: LABELS[i % 2]) -> pd.DataFrame:  # noqa: E731
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
    with pytest.raises(SkipRun, match="single class \\(neg\\)"):
        assemble(one_class, frame(10, "old"), frame(5, "e"), labels=LABELS)
