"""`driftline replay` end to end, on a generated stream with a planted drift and a 1-layer model: real
`bentoml serve` and `driftline scheduler` processes, checks requested through the control API every
100 rows. The `drift` policy retrains after the planted change and not before; `never` retrains
nothing; metrics.json has every field. Bad files stop before anything starts, with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from driftline.session import SessionConfig, prepare_v1, run_session, session_settings
from registry.store import Registry
from tests.models import TINY_TRAIN
from tests.textgen import market_rows, topic_rows

BOOT = 400  # rows that train v1 (30 % of them held out: its reference profile)
CHANGE_AT = 300  # stream rows before the planted drift
FIELDS = {
    "rows",
    "seconds",
    "labels_sent",
    "labels_used",
    "accuracy",
    "macro_f1",
    "windows",
    "domains",
    "checks",
    "runs",
    "decisions",
    "counts",
    "recovery",
    "training_seconds",
    "promotion_checks",
    "holds",
    "interrupted",
    "config",
}


def stream_file(path: Path) -> Path:
    topical = topic_rows(BOOT + CHANGE_AT, seed=31)
    finance_ = market_rows(400, seed=5)
    pd.DataFrame(topical + finance_)[["text", "label", "domain"]].to_csv(path, index=False)
    return path


def session(tmp_path: Path, policy: str, **overrides: object) -> SessionConfig:
    values: dict = {
        "data": stream_file(tmp_path / "stream.csv"),
        "text_col": "text",
        "label_col": "label",
        "domain_col": "domain",
        "out": tmp_path / policy,
        "bootstrap_rows": BOOT,
        "bootstrap_heldout": 0.3,
        "window": 100,
        "check_every": 100,
        "label_delay": 20,
        "policy": policy,
        "train": TINY_TRAIN.to_dict(),
        "monitor": {"min_labels_floor": 100},
    }
    values.update(overrides)
    return SessionConfig(**values)


def test_drift_policy_retrains_after_the_change_and_recovers(tmp_path: Path) -> None:
    summary = run_session(session(tmp_path, "drift"), say=lambda _: None)

    metrics = json.loads((tmp_path / "drift" / "metrics.json").read_text())
    assert FIELDS <= set(metrics), FIELDS - set(metrics)
    assert (tmp_path / "drift" / "timeline.png").stat().st_size > 10_000
    assert metrics["rows"] == CHANGE_AT + 400 and metrics["labels_sent"] == CHANGE_AT + 400
    queued = [c for c in summary.checks if c["decision"] == "retrain"]
    assert queued, [c["reason"] for c in summary.checks]
    assert all(c["row"] > CHANGE_AT for c in queued), [(c["row"], c["reason"]) for c in queued]
    early = [(c["row"], c["reason"]) for c in summary.checks if c["row"] <= CHANGE_AT]
    assert early and not [c for c in summary.checks if c["row"] <= CHANGE_AT and c["drifted"]], (
        early
    )  # no false alarm
    assert summary.counts["promotions"] >= 1, [d["reasons"] for d in summary.decisions]
    by_version = summary.domains["finance"]["by_version"]
    assert by_version[1]["accuracy"] < 0.6  # v1 never saw the new domain
    promoted = max(v for v in by_version if v != 1)
    # The realized drop queues the run on the first check after the change, on fewer of the new domain's
    # labels than a second check would have had: a challenger near 0.87 (seen 2026-12-03) served sooner.
    assert by_version[promoted]["accuracy"] > 0.8
    assert summary.recovery is not None and summary.recovery["rows"] >= 0
    (scored,) = [p for p in summary.promotion_checks if p["promoted"] == promoted]
    assert scored["promoted_accuracy"] > scored["replaced_accuracy"] + 0.3  # on the same rows


# slow (35 s): the learning benchmark measures `never` on every stream too
@pytest.mark.slow
def test_never_policy_sees_the_drift_and_retrains_nothing(tmp_path: Path) -> None:
    # v1 prepared once and copied in, as bench.learning does for its policies
    v1 = prepare_v1(replace(session(tmp_path, "never"), out=tmp_path / "v1"), say=lambda _: None)
    summary = run_session(replace(session(tmp_path, "never"), v1_workspace=v1), say=lambda _: None)
    home = tmp_path / "never" / "workspace"
    assert not (home / "bootstrap.log").exists()  # nothing trained here
    (copied,) = Registry.open(session_settings(home)).list_versions("sentiment")
    (prepared,) = Registry.open(session_settings(v1)).list_versions("sentiment")
    assert copied.version == 1 and copied.artifact_sha256 == prepared.artifact_sha256
    assert (home / "artifacts" / "sha256" / copied.artifact_sha256).is_dir()
    assert summary.counts["runs"] == 0 and summary.decisions == []
    assert summary.counts["drift_alarms"] >= 1  # the checks still say what they saw
    assert all(c["decision"] == "none" for c in summary.checks)
    assert set(summary.domains["finance"]["by_version"]) == {1}


def replay_cli(tmp_path: Path, data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["--data", str(data), "--text-col", "text", "--label-col", "label", "--out", str(tmp_path / "out")]
    return subprocess.run(
        [sys.executable, "-m", "driftline", "replay", *args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("frame", "extra", "words"),
    [
        (pd.DataFrame({"body": ["a b", "c d"] * 20, "label": ["x", "y"] * 20}), (), "'text'"),
        (pd.DataFrame({"text": ["a b", ""] * 20, "label": ["x", "y"] * 20}), (), "empty"),
        (pd.DataFrame({"text": [f"t {i}" for i in range(40)], "label": ["x"] * 40}), (), "class"),
        (
            pd.DataFrame(
                {"text": [f"t {i}" for i in range(40)], "label": ["x", "y"] * 20, "ts": ["nope"] * 40}
            ),
            ("--time-col", "ts"),
            "ts",
        ),
        (
            pd.DataFrame({"text": [f"t {i}" for i in range(40)], "label": ["x", "y"] * 20}),
            ("--bootstrap-rows", "100"),
            "40 usable rows",
        ),
    ],
    ids=["missing-column", "empty-text", "one-class", "bad-time", "too-few-rows"],
)
def test_bad_files_stop_with_one_line_before_anything_starts(
    tmp_path: Path, frame: pd.DataFrame, extra: tuple[str, ...], words: str
) -> None:
    data = tmp_path / "bad.csv"
    frame.to_csv(data, index=False)
    proc = replay_cli(tmp_path, data, "--bootstrap-rows", "20", *extra)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and str(data) in lines[-1] and words in lines[-1], (
        proc.stderr
    )
    assert not (tmp_path / "out" / "workspace").exists()  # nothing was created, nothing started


# slow (48 s, and make test stays under 15 min): Ctrl-C mid-replay; test_up covers a signal to `up`
@pytest.mark.slow
def test_ctrl_c_stops_the_processes_and_keeps_what_was_replayed(tmp_path: Path) -> None:
    """SIGINT to the replay's process group (what Ctrl-C in a terminal does) mid-stream."""
    import os
    import signal
    import time

    data = stream_file(tmp_path / "stream.csv")
    args = [
        *("--data", str(data), "--text-col", "text", "--label-col", "label", "--domain-col", "domain"),
        *("--bootstrap-rows", str(BOOT), "--num-hidden-layers", "1", "--epochs", "1", "--window", "50"),
        *("--realtime", "--rate", "20", "--out", str(tmp_path / "out")),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftline", "replay", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    lines: list[str] = []
    deadline = time.monotonic() + 240
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.split()[:2] == ["rows", "50-100"]:  # two windows served
            break
    else:
        proc.kill()
        raise AssertionError("".join(lines))
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["interrupted"] is True, output
    assert 100 <= metrics["rows"] < CHANGE_AT + 400, output
    leftovers = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], output  # the service and the scheduler are gone


# slow (about 40 s): a whole session, as the never test
@pytest.mark.slow
def test_a_label_budget_spent_by_the_queue_labels_what_the_queue_hands_out(tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from registry.orm import LabelRequestRow, LabelRow

    config = session(tmp_path, "never", label_budget=0.2, label_strategy="queue", label_delay=10)
    summary = run_session(config, say=lambda _: None)
    metrics = json.loads((tmp_path / "never" / "metrics.json").read_text())
    assert metrics["config"]["label_strategy"] == "queue" and metrics["config"]["label_budget"] == 0.2
    rows = CHANGE_AT + 400
    labeling = metrics["labeling"]
    # the budget is earned 50 rows at a time (asked at the first batch of 8 past them) and spent on
    # what the queue hands out, nothing else
    assert labeling["queue_asks"] >= rows // (50 + 8)
    assert 0.15 * rows <= summary.labels_sent <= 0.2 * rows + 1, labeling
    assert labeling["queue_items"] == labeling["rows_labeled"] == summary.labels_sent
    registry = Registry.open(session_settings(tmp_path / "never" / "workspace"))
    with registry.engine.connect() as conn:
        labels = conn.scalar(
            select(func.count()).select_from(LabelRow).where(LabelRow.prediction_id.is_not(None))
        )
        strategies = dict(
            conn.execute(
                select(LabelRequestRow.strategy, func.count())
                .where(LabelRequestRow.prediction_id.in_(select(LabelRow.prediction_id)))
                .group_by(LabelRequestRow.strategy)
            ).all()
        )
    assert labels == summary.labels_sent
    assert sum(strategies.values()) == labels  # every label answers a hand-out
    assert 0 < strategies.get("random", 0) < strategies["margin"]  # the random share is in it
