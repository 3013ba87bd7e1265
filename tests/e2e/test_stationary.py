"""Stationary streams end to end (real `bentoml serve` + `driftline scheduler`, 1-layer model), checked
every 100 rows under the `drift` policy: a stream drawn from the same distribution as v1's rows queues
no drift run; a version 1 trained on too few rows is improved by the label-growth trigger all the same."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from driftline.session import SessionConfig, run_session
from driftline.summary import StreamSummary
from tests.models import TINY_TRAIN
from tests.textgen import topic_rows


def stationary_session(
    tmp_path: Path, rows: int, *, bootstrap_rows: int, monitor: dict[str, Any]
) -> StreamSummary:
    """A replay of ``rows`` shuffled topic rows (one distribution throughout: no drift by construction),
    v1 trained on the first ``bootstrap_rows``, a check every 100 rows under the drift policy."""
    stream = topic_rows(rows, seed=12)
    random.Random(3).shuffle(stream)
    data = tmp_path / "stream.csv"
    pd.DataFrame(stream)[["text", "label", "domain"]].to_csv(data, index=False)
    return run_session(
        SessionConfig(
            data=data,
            text_col="text",
            label_col="label",
            domain_col="domain",
            out=tmp_path / "out",
            bootstrap_rows=bootstrap_rows,
            bootstrap_heldout=0.3,
            window=100,
            check_every=100,
            label_delay=20,
            train=TINY_TRAIN.to_dict(),
            monitor=monitor,
        ),
        say=lambda _: None,
    )


# slow (about 35 s): `make bench-streams` measures the same on its shuffled control stream
@pytest.mark.slow
def test_a_stationary_stream_queues_no_run(tmp_path: Path) -> None:
    # the drift rule alone: the label-growth trigger would queue an improvement run here
    monitor = {"min_labels_floor": 100, "label_growth_share": 0}
    summary = stationary_session(tmp_path, 1000, bootstrap_rows=400, monitor=monitor)
    assert len(summary.checks) >= 5
    assert summary.counts["runs"] == 0 and summary.counts["promotions"] == 0, [
        c["reason"] for c in summary.checks
    ]
    assert all(c["decision"] == "none" for c in summary.checks)


def test_a_model_trained_on_too_few_rows_is_improved_without_drift(tmp_path: Path) -> None:
    # v1 trains on 48 rows; only the label growth can queue a run (the default share, 1.0 of v1's rows)
    summary = stationary_session(tmp_path, 360, bootstrap_rows=60, monitor={"min_labels_floor": 100})
    reasons = [c["reason"] for c in summary.checks]
    assert summary.counts["drift_alarms"] < len(summary.checks), reasons
    growth = [r for r in summary.runs if r["trigger"] == "label_growth"]
    assert growth and summary.counts["runs_label_growth"] == len(growth), (summary.runs, reasons)
    queued = next(c for c in summary.checks if c["decision"] == "retrain")
    assert "new labels = " in queued["reason"] and queued["reason"].endswith("improvement run queued")
    assert re.search(r"new labels = \d+% of the champion's \d+ training rows", queued["reason"])
    promoted = [d for d in summary.promotions if d["run_id"] == growth[0]["id"]]
    assert promoted and promoted[0]["candidate_version"] == 2, (summary.decisions, summary.runs)
    # the improvement shows on the rows served after it, against v1's on the rows before it
    first, last = summary.windows[0], summary.windows[-1]
    assert first["versions"] == [1] and 1 not in last["versions"], summary.windows
    assert last["accuracy"] > first["accuracy"] + 0.1, summary.windows
