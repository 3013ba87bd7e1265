"""`driftline labels import`: bulk labels with the same checks as /feedback, all or nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from driftline.cli import main
from registry.entities import NewPrediction
from registry.settings import Settings
from registry.store import Registry


def run(home: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["labels", "import", *args], env={"DRIFTLINE_HOME": str(home)})


def test_import_by_text_and_by_prediction_id(served_home: Path, tmp_path: Path) -> None:
    store = Registry.open(Settings(home=served_home))
    now = datetime.now(UTC)
    store.add_predictions(
        [
            NewPrediction(
                id="a" * 32,
                created_at=now,
                text="Rain all day.",
                text_hash="h",
                label="weather",
                scores={},
                model_name="sentiment",
                model_version=1,
                latency_ms=1.0,
            )
        ]
    )
    by_text = tmp_path / "labels.csv"
    pd.DataFrame(
        {
            "sentence": ["A late goal.", "Roast chicken."],
            "y": ["sports", "food"],
            "where": ["news", "blog"],
            "at": ["2026-01-02T10:00:00Z", "2026-01-03T10:00:00Z"],
        }
    ).to_csv(by_text, index=False)
    ok = run(
        served_home,
        str(by_text),
        "--text-col",
        "sentence",
        "--label-col",
        "y",
        "--domain-col",
        "where",
        "--time-col",
        "at",
    )
    assert ok.exit_code == 0, ok.output
    assert "imported 2 labels" in ok.stdout
    by_id = tmp_path / "ids.jsonl"
    by_id.write_text(json.dumps({"pid": "a" * 32, "label": "weather"}) + "\n")
    ok2 = run(served_home, str(by_id), "--prediction-id-col", "pid", "--label-col", "label")
    assert ok2.exit_code == 0, ok2.output
    labels = store.list_labels("sentiment")
    assert [(lb.text, lb.label, lb.domain, lb.source) for lb in labels] == [
        ("A late goal.", "sports", "news", "import"),
        ("Roast chicken.", "food", "blog", "import"),
        ("Rain all day.", "weather", None, "import"),
    ]
    assert labels[0].created_at == datetime(2026, 1, 2, 10, tzinfo=UTC)
    assert labels[2].prediction_id == "a" * 32


def test_bad_import_writes_nothing(served_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"text": ["one", "two", "three"], "label": ["food", "politics", "food"]}).to_csv(
        path, index=False
    )
    r = run(served_home, str(path), "--text-col", "text", "--label-col", "label")
    assert r.exit_code == 2
    assert "column 'label' has 1 rows with unknown labels ['politics']" in r.stderr
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"pid": ["f" * 32], "label": ["food"]}).to_csv(ids, index=False)
    r2 = run(served_home, str(ids), "--prediction-id-col", "pid", "--label-col", "label")
    assert r2.exit_code == 1 and "unknown prediction ids" in r2.stderr
    assert Registry.open(Settings(home=served_home)).list_labels("sentiment") == []
