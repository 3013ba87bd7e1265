"""The post-promotion guard end to end (real `bentoml serve` + `driftline scheduler`, 1-layer model,
a check every 100 rows): v1 learns three topics; market news arrives, drift is seen, v2 is trained on it
and promoted (it beats v1 there and keeps the topics); from then on the stream plants a change v2 handles worse:
topic sentences followed by market news whose verb v2 learned to read as another label. The guard,
comparing v2 with v1 on the labeled rows v2 served, rolls v2 back: an alias move by actor 'guard' with
the evidence in its reason and a report."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

from driftline.session import SessionConfig, run_session, session_settings
from registry.entities import CHAMPION
from registry.store import Registry
from tests.models import TINY_TRAIN
from tests.textgen import market_rows, topic_rows

BOOT = 400
TOPICS_AFTER = 200  # stream rows of the known topics
MARKET = 200  # then market news: drift, and at its end a run: v2 promoted
MIXED = 300  # then, right after the promotion, topic sentences with market news whose verb says another label


def mixed_rows(n: int, *, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    topics = topic_rows(n, seed=seed + 1)
    up = ["rose", "jumped", "rallied", "climbed"]  # v2 reads these as 'sports'
    down = ["fell", "slipped", "dropped", "sank"]  # and these as 'food'
    rows = []
    for i, row in enumerate(topics):
        verb = rng.choice(down if row["label"] == "sports" else up)  # never the topic's own label
        news = f"Meanwhile Acme shares {verb} {i % 17 + 1} percent after quarterly earnings number {i}."
        rows.append({"text": f"{row['text']} {news}", "label": row["label"], "domain": "mixed"})
    return rows


def test_guard_rolls_back_a_promotion_that_serves_worse(tmp_path: Path) -> None:
    rows = topic_rows(BOOT + TOPICS_AFTER, seed=31) + market_rows(MARKET, seed=5) + mixed_rows(MIXED, seed=8)
    data = tmp_path / "stream.csv"
    pd.DataFrame(rows)[["text", "label", "domain"]].to_csv(data, index=False)
    config = SessionConfig(
        data=data,
        text_col="text",
        label_col="label",
        domain_col="domain",
        out=tmp_path / "out",
        bootstrap_rows=BOOT,
        bootstrap_heldout=0.3,
        window=100,
        check_every=100,
        label_delay=20,
        train=TINY_TRAIN.to_dict(),
        monitor={
            "min_labels_floor": 100,
            # The planted change starts where the promotion comes when drift must persist for 2 checks; a
            # realized drop acting on its first check would promote a check earlier and the guard's watch
            # (160 labels) would end on market rows, where v2 is right, before the planted change.
            "realized_drop_skips_persistence": False,
            "guard_min_labels": 40,
            "guard_watch_labels": 160,
        },
    )
    summary = run_session(config, say=lambda _: None)

    registry = Registry.open(session_settings(tmp_path / "out" / "workspace"))
    events = list(reversed(registry.list_alias_events("sentiment", CHAMPION)))
    promoted = [e for e in events if e.actor.startswith("run ")]
    assert promoted, [(e.actor, e.reason) for e in events]
    guard = [e for e in events if e.actor == "guard"]
    assert guard, [(e.actor, e.from_version, e.to_version, e.reason[:120]) for e in events]
    rollback = guard[0]
    assert rollback.from_version == promoted[0].to_version and rollback.to_version == promoted[0].from_version
    assert "is worse than" in rollback.reason and "McNemar" in rollback.reason
    report = tmp_path / "out" / "workspace" / "artifacts" / "reports" / rollback.report_uri  # type: ignore[operator]
    evidence = json.loads(report.with_name("guard.json").read_text())
    assert evidence["verdict"]["difference"] < -0.01
    # after the rollback the mixed rows are served by the version the guard restored, and it does better
    by_version = summary.domains["mixed"]["by_version"]
    assert rollback.to_version in by_version
    assert by_version[rollback.to_version]["accuracy"] > by_version[rollback.from_version]["accuracy"]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["rows"] == TOPICS_AFTER + MARKET + MIXED
