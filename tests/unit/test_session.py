"""A replay's stream: time order, the bootstrap cut by rows or by time, integer labels, flag checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from driftline.session import SessionConfig, copy_v1, load_stream
from registry.errors import InvalidInputError


def config(tmp_path: Path, data: Path, **overrides: object) -> SessionConfig:
    values: dict = {"data": data, "text_col": "body", "label_col": "y", "out": tmp_path / "out"}
    values.update(overrides)
    return SessionConfig(**values)


def test_rows_follow_the_time_column_and_the_bootstrap_is_cut_by_time(tmp_path: Path) -> None:
    n = 60
    frame = pd.DataFrame(
        {
            "body": [f"text number {i}" for i in range(n)],
            "y": [i % 3 for i in range(n)],  # integer labels
            "when": pd.date_range("2026-01-01", periods=n, freq="h")[::-1].astype(str),  # newest first
            "src": ["a"] * n,
        }
    )
    data = tmp_path / "s.jsonl"
    frame.to_json(data, orient="records", lines=True)
    stream = load_stream(
        config(tmp_path, data, time_col="when", domain_col="src", bootstrap_until="2026-01-02T00:00:00"),
        tmp_path / "cache",
    )
    assert len(stream.bootstrap) == 24  # the first day's hours
    assert stream.rows[0].text == f"text number {n - 25}"  # the oldest row after the cut comes first
    assert stream.rows[-1].text == "text number 0"
    assert {r.label for r in stream.rows} == {"0", "1", "2"} and stream.rows[0].domain == "a"


def test_limit_and_row_count_cut(tmp_path: Path) -> None:
    data = tmp_path / "s.csv"
    pd.DataFrame({"body": [f"t {i}" for i in range(100)], "y": ["p", "n"] * 50}).to_csv(data, index=False)
    stream = load_stream(config(tmp_path, data, bootstrap_rows=30, limit=10), tmp_path / "cache")
    assert len(stream.bootstrap) == 30 and [r.text for r in stream.rows] == [f"t {i}" for i in range(30, 40)]
    assert all(r.domain is None for r in stream.rows)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"policy": "sometimes"}, "--policy"),
        ({"label_fraction": 0.0}, "--label-fraction"),
        ({"bootstrap_until": "2026-01-01"}, "--bootstrap-until needs --time-col"),
        ({"bootstrap_rows": 5}, "--bootstrap-rows"),
    ],
)
def test_flags_are_checked(tmp_path: Path, overrides: dict, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        config(tmp_path, tmp_path / "x.csv", **overrides)


def test_a_prepared_v1_must_hold_records_and_artifacts(tmp_path: Path) -> None:
    source = tmp_path / "not-a-workspace"
    source.mkdir()
    (source / "driftline.db").write_bytes(b"")
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(InvalidInputError, match="not a prepared workspace \\(missing artifacts\\)"):
        copy_v1(source, home, say=lambda _: None)
    assert list(home.iterdir()) == []  # nothing copied
