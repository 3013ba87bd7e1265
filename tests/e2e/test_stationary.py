"""The stationary control end to end (real `bentoml serve` + `driftline scheduler`, 1-layer model): a
stream drawn from the same distribution as v1's rows, checked every 100 rows under the `drift` policy,
queues no run and promotes nothing."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from driftline.session import SessionConfig, run_session
from tests.models import TINY_TRAIN
from tests.textgen import topic_rows


# slow (about 35 s): `make bench-streams` measures the same on its shuffled control stream
@pytest.mark.slow
def test_a_stationary_stream_queues_no_run(tmp_path: Path) -> None:
    rows = topic_rows(1000, seed=12)
    random.Random(3).shuffle(rows)  # one distribution throughout: no drift by construction
    data = tmp_path / "stream.csv"
    pd.DataFrame(rows)[["text", "label", "domain"]].to_csv(data, index=False)
    summary = run_session(
        SessionConfig(
            data=data,
            text_col="text",
            label_col="label",
            domain_col="domain",
            out=tmp_path / "out",
            bootstrap_rows=400,
            bootstrap_heldout=0.3,
            window=100,
            check_every=100,
            label_delay=20,
            train=TINY_TRAIN.to_dict(),
            monitor={"DRIFTLINE_MIN_NEW_LABELS": "100"},
        ),
        say=lambda _: None,
    )
    assert len(summary.checks) >= 5
    assert summary.counts["runs"] == 0 and summary.counts["promotions"] == 0, [c["reason"] for c in summary.checks]
    assert all(c["decision"] == "none" for c in summary.checks)
