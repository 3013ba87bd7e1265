"""The replay's bookkeeping against an in-memory service: labels arrive late and only for a seeded share,
every answer keeps the version that gave it, traffic is held while a run trains and resumes after the
hot swap."""

from __future__ import annotations

from typing import Any

import pandas as pd

from driftline.demo import DemoConfig, demo_stream
from driftline.replay import Replayer, ReplayOptions, StreamRow


class FakeService:
    """Answers like the HTTP API: predicts "pos", versions move when a queued run "finishes"."""

    def __init__(self, runs_script: list[list[dict[str, Any]]] | None = None) -> None:
        self.version = 1
        self.feedback_calls: list[tuple[int, list[dict[str, Any]]]] = []
        self.predicted = 0
        self.runs_script = list(runs_script or [])
        self.champion = 1

    def predict(self, texts: list[str]) -> tuple[int, list[dict[str, Any]]]:
        preds = [{"prediction_id": f"p{self.predicted + i}", "label": "pos"} for i in range(len(texts))]
        self.predicted += len(texts)
        return self.version, preds

    def feedback(self, items: list[dict[str, Any]]) -> int:
        self.feedback_calls.append((self.predicted, list(items)))
        return len(items)

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        if not self.runs_script:
            return []
        runs = self.runs_script.pop(0)
        if runs and all(r["status"] == "succeeded" for r in runs):
            self.champion = 2
        return runs

    def champion_version(self) -> int:
        return self.champion

    def served_version(self) -> int:
        self.version = self.champion  # the service swaps as soon as it is asked
        return self.version


def rows(n: int) -> list[StreamRow]:
    return [StreamRow(f"text {i}", "pos" if i % 2 else "neg", "a" if i < n // 2 else "b") for i in range(n)]


def test_labels_arrive_late_and_only_for_the_seeded_share() -> None:
    service = FakeService()
    log = Replayer(
        service,  # type: ignore[arg-type]
        ReplayOptions(batch_size=4, label_delay=10, label_fraction=0.5, hold_during_runs=False, seed=3),
        progress=lambda _: None,
    ).run(rows(100))
    sent = [(served_so_far, item) for served_so_far, items in service.feedback_calls for item in items]
    labeled = [r for r in log.served if r.labeled]
    assert len(sent) == len(labeled) == log.labels_sent
    assert 30 < len(labeled) < 70  # about half
    index = {f"p{r.index}": r for r in log.served}
    for served_so_far, item in sent[: len(sent) - 5]:  # the tail is flushed at the end
        row = index[item["prediction_id"]]
        assert served_so_far >= row.index + 10, "a label was sent before label_delay later rows"
        assert item["label"] == row.label and item["domain"] == row.domain
    again = Replayer(
        FakeService(),  # type: ignore[arg-type]
        ReplayOptions(batch_size=4, label_delay=10, label_fraction=0.5, hold_during_runs=False, seed=3),
        progress=lambda _: None,
    ).run(rows(100))
    assert [r.labeled for r in again.served] == [r.labeled for r in log.served]


def test_traffic_is_held_while_a_run_trains_and_resumes_on_the_new_champion() -> None:
    queued = [{"id": 7, "status": "queued", "error": None}]
    running = [{"id": 7, "status": "running", "error": None}]
    done = [{"id": 7, "status": "succeeded", "error": None}]
    service = FakeService(runs_script=[[], queued, running, done])
    messages: list[str] = []
    log = Replayer(
        service,  # type: ignore[arg-type]
        ReplayOptions(batch_size=10, label_delay=5, poll_interval_s=0.0),
        progress=messages.append,
    ).run(rows(60))
    (hold,) = log.holds
    assert hold.run_ids == [7] and hold.champion_before == 1 and hold.champion_after == 2 and hold.swapped
    assert hold.row == 20  # the second poll, after two batches, saw the queued run
    assert {r.version for r in log.served[:20]} == {1}
    assert {r.version for r in log.served[20:]} == {2}  # nothing was sent until the swap
    assert any("hot swap" in m and "v2" in m for m in messages)


def test_demo_stream_is_seeded_domain_after_domain() -> None:
    data = pd.DataFrame(
        {
            "text": [f"t{i}" for i in range(60)],
            "label": ["positive", "negative"] * 30,
            "domain": ["tweets"] * 20 + ["amazonReviewSnippets"] * 20 + ["movieReviewSnippets"] * 20,
        }
    )
    config = DemoConfig(
        stream_domains=("amazonReviewSnippets", "tweets"), rows_per_domain=5, bootstrap_rows=8, seed=1
    )
    stream = demo_stream(data, config)
    assert [r.domain for r in stream.rows] == ["amazon"] * 5 + ["tweets"] * 5
    assert len(stream.bootstrap) == 8 and set(stream.bootstrap["domain"]) == {"movies"}
    assert stream.rows == demo_stream(data, config).rows
    assert len({r.text for r in stream.rows} | set(stream.bootstrap["text"])) == 18
