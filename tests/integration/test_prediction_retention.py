"""The prediction log over months (issue 14, point 7): retention deletes old rows in batches and never a
labeled one nor a version's latest window; the export streams every row with its label; the scheduler's
leader prunes when retention is set. On SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from driftline.export import export_predictions, parse_time
from monitor.settings import MonitorSettings
from orchestration.scheduler import MonitorScheduler
from registry import entities as e
from registry.artifacts import LocalArtifactStore
from registry.errors import InvalidInputError
from registry.store import Registry

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def log(
    registry: Registry, n: int, *, version: int = 1, start: datetime, step: timedelta, prefix: str
) -> list[str]:
    ids = [f"{prefix}{i:05d}" for i in range(n)]
    registry.add_predictions(
        [
            e.NewPrediction(
                id=pid,
                created_at=start + i * step,
                text=f"text {pid}",
                text_hash=f"h{pid}",
                label="positive",
                scores={"positive": 0.9, "negative": 0.1},
                model_name="sentiment",
                model_version=version,
                latency_ms=1.5,
            )
            for i, pid in enumerate(ids)
        ]
    )
    return ids


def test_prune_keeps_labeled_rows_and_each_versions_window(registry: Registry) -> None:
    old = log(registry, 120, start=NOW - timedelta(days=90), step=timedelta(minutes=1), prefix="old")
    recent = log(registry, 30, start=NOW - timedelta(days=1), step=timedelta(minutes=1), prefix="new")
    quiet = log(registry, 8, version=2, start=NOW - timedelta(days=80), step=timedelta(hours=1), prefix="v2-")
    registry.add_labels([e.NewLabel(label="positive", prediction_id=pid) for pid in old[:5]])

    result = registry.prediction_log.prune(NOW - timedelta(days=30), keep_latest=20, batch_size=25)
    left = set(registry.get_predictions(old + recent + quiet))
    assert set(old[:5]) <= left  # labels point to them
    assert set(recent) <= left  # newer than the cutoff
    assert set(quiet) <= left  # v2's latest 20 rows hold all 8: its window stays whole
    assert result.deleted == 115 and left == set(old[:5]) | set(recent) | set(quiet)
    assert result.batches == 5 and result.kept_labeled == 5
    # again: nothing left to delete
    assert registry.prediction_log.prune(NOW - timedelta(days=30), keep_latest=20).deleted == 0


def test_prune_keeps_the_latest_rows_of_a_version_older_than_the_cutoff(registry: Registry) -> None:
    ids = log(registry, 50, start=NOW - timedelta(days=60), step=timedelta(minutes=1), prefix="p")
    result = registry.prediction_log.prune(
        NOW - timedelta(days=30), keep_latest=10, max_batches=1, batch_size=100
    )
    assert result.deleted == 40 and set(registry.get_predictions(ids)) == set(ids[-10:])


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_export_streams_every_row_with_its_label(registry: Registry, tmp_path: Path, fmt: str) -> None:
    ids = log(registry, 35, start=NOW - timedelta(days=2), step=timedelta(minutes=5), prefix="x")
    registry.add_labels([e.NewLabel(label="negative", prediction_id=ids[3])])
    out = tmp_path / f"predictions.{fmt}"
    since = NOW - timedelta(days=2) + timedelta(minutes=10)  # from the third row on
    rows = export_predictions(registry, out, fmt=fmt, since=since, batch_size=10)
    assert rows == 33
    frame = {
        "parquet": pd.read_parquet,
        "jsonl": lambda p: pd.read_json(p, lines=True),
        "csv": pd.read_csv,
    }[fmt](out)
    assert list(frame["prediction_id"]) == ids[2:]  # oldest first, across batches
    assert frame.loc[frame["prediction_id"] == ids[3], "true_label"].item() == "negative"
    assert frame["true_label"].isna().sum() == 32
    assert json.loads(frame["scores"].iloc[0]) == {"negative": 0.1, "positive": 0.9}
    assert not list(tmp_path.glob(".*partial"))


def test_export_refuses_bad_input_and_leaves_no_file(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="--since must be an ISO 8601"):
        parse_time("last tuesday", "--since")
    assert parse_time("2026-12-01", "--since") == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="--format must be one of"):
        export_predictions(registry, tmp_path / "exports" / "out.xlsx", fmt="xlsx")
    assert not (tmp_path / "exports").exists()


def test_the_leader_prunes_only_when_retention_is_set(registry: Registry, tmp_path: Path) -> None:
    ids = log(
        registry, 40, start=datetime.now(UTC) - timedelta(days=100), step=timedelta(minutes=1), prefix="s"
    )
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    off = MonitorScheduler(registry, artifacts, "sentiment", MonitorSettings(launcher="none"))
    assert off.prune_job() is None and len(registry.get_predictions(ids)) == 40
    on = MonitorScheduler(
        registry,
        artifacts,
        "sentiment",
        MonitorSettings(launcher="none", prediction_retention_days=30, window_size=10),
    )
    result = on.prune_job()
    assert result is not None and result.deleted == 30
    assert set(registry.get_predictions(ids)) == set(ids[-10:])


@pytest.mark.slow
def test_the_log_benchmark_runs(tmp_path: Path) -> None:
    """``python -m bench.predlog --quick`` finishes on PostgreSQL and writes the fields its table shows."""
    import os
    import subprocess
    import sys

    server = os.environ.get("DRIFTLINE_TEST_DATABASE_URL")
    if not server:
        pytest.skip("DRIFTLINE_TEST_DATABASE_URL is not set: the log benchmark needs PostgreSQL")
    out = tmp_path / "predlog.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.predlog", "--quick", "--server", server, "--out", str(out)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["writes"]["rows_per_s"] > 0
    (entry,) = report["window_query"]
    assert entry["rows"] == 20_000 and entry["sql_indexed_ms"] is not None
    assert any("Index Scan" in line for line in entry["plan_indexed"])  # which index is the planner's choice
