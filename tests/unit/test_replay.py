"""The replay's bookkeeping against an in-memory service: labels arrive late and only for a seeded share,
every answer keeps the version that gave it, traffic is held while a run trains and resumes after the
hot swap; a request the service refuses is resent row by row and only the bad rows are counted as
refused; a 5xx or a lost connection ends the replay early, keeping what was replayed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pandas as pd
import pytest

from driftline.client import DriftlineClient, encode_body, fold_numbers
from driftline.demo import DemoConfig, demo_stream
from driftline.preflight import ServiceLimits, preflight
from driftline.replay import Replayer, ReplayOptions
from driftline.replay_types import Refused, StreamRow
from registry.errors import InvalidInputError
from service.settings import ServeSettings
from service.validation import check_texts


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


# --- refusals: the real client against httpx.MockTransport -----------------------------------------


class HTTPService:
    """/predict and /feedback as the service answers them: texts checked by ``service.validation`` (the
    service's own rule and message), labels outside ``labels`` refused all-or-nothing, a 500 on request
    number ``fail_at``."""

    def __init__(self, *, max_chars: int = 2000, labels: tuple[str, ...] = ("neg", "pos"), fail_at: int = 0):
        self.max_chars = max_chars
        self.labels = labels
        self.fail_at = fail_at
        self.predict_bodies: list[bytes] = []
        self.feedback_calls: list[list[dict[str, Any]]] = []
        self.predicted = 0

    def client(self) -> DriftlineClient:
        client = DriftlineClient("http://driftline.test", model_name="sentiment", token=None)
        client.http.close()
        client.http = httpx.Client(
            base_url="http://driftline.test", transport=httpx.MockTransport(self.handle)
        )
        return client

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/predict":
            self.predict_bodies.append(request.content)
            if len(self.predict_bodies) == self.fail_at:
                return httpx.Response(500, json={"error": "INTERNAL", "message": "the model crashed"})
            texts = json.loads(request.content)["texts"]
            problem = check_texts(texts, max_texts=64, max_chars=self.max_chars)
            if problem is not None:
                return httpx.Response(422, json=problem.body())
            preds = [{"prediction_id": uuid.uuid4().hex, "label": "pos"} for _ in texts]
            self.predicted += len(texts)
            return httpx.Response(200, json={"model": "sentiment", "model_version": 1, "predictions": preds})
        if request.url.path == "/feedback":
            items = json.loads(request.content)["items"]
            self.feedback_calls.append(items)
            unknown = sorted({i["label"] for i in items} - set(self.labels))
            if unknown:
                error = InvalidInputError(f"unknown labels {unknown} (known: {', '.join(self.labels)})")
                return httpx.Response(422, json=error.to_dict())
            return httpx.Response(200, json={"accepted": len(items), "label_ids": list(range(len(items)))})
        if request.url.path == "/api/runs":
            return httpx.Response(200, json=[])
        return httpx.Response(404, json={"error": "NOT_FOUND", "message": f"no route {request.url.path}"})


QUIET = ReplayOptions(batch_size=4, label_delay=3, hold_during_runs=False)


def test_a_refused_batch_is_resent_row_by_row_and_only_the_bad_row_is_refused() -> None:
    stream = rows(20)
    stream[5] = StreamRow("x" * 2581, "pos", "a")  # over the service's 2,000 characters
    service = HTTPService(max_chars=2000)
    messages: list[str] = []
    log = Replayer(service.client(), QUIET, progress=messages.append).run(stream)

    assert not log.interrupted and log.ended_early is None  # the replay went on to the end
    assert [r.index for r in log.served] == [i for i in range(20) if i != 5]
    reason = "422 INVALID_INPUT: texts[0]: has N characters; the limit is 2000 (DRIFTLINE_MAX_TEXT_CHARS)"
    assert log.refused_rows == [Refused(5, reason)]
    assert len(service.predict_bodies) == 5 + 4  # the refused batch of 4, then its rows one by one
    assert log.labels_sent == 19  # a refused row has no prediction, so no label either
    assert any(reason in m for m in messages)


def test_refused_rows_do_not_change_which_later_rows_get_labels() -> None:
    options = ReplayOptions(batch_size=4, label_delay=3, label_fraction=0.5, hold_during_runs=False, seed=1)
    clean = Replayer(HTTPService().client(), options, progress=lambda _: None).run(rows(40))
    stream = rows(40)
    stream[6] = StreamRow("y" * 3000, "pos", "a")
    with_refusal = Replayer(HTTPService().client(), options, progress=lambda _: None).run(stream)
    labeled = {r.index: r.labeled for r in clean.served}
    assert {r.index: r.labeled for r in with_refusal.served} == {i: v for i, v in labeled.items() if i != 6}


def test_a_refused_label_is_counted_and_the_other_labels_are_kept() -> None:
    stream = rows(20)
    stream[7] = StreamRow("text 7", "7", "a")  # integer-like label outside the champion's set
    service = HTTPService(labels=("neg", "pos"))
    log = Replayer(service.client(), QUIET, progress=lambda _: None).run(stream)

    assert not log.interrupted and len(log.served) == 20  # the row itself is served
    assert log.refused_labels == [Refused(7, "422 INVALID_INPUT: unknown labels ['7'] (known: neg, pos)")]
    assert log.labels_sent == 19
    sent = [item["label"] for call in service.feedback_calls for item in call]
    assert sent.count("7") == 2  # in its chunk, then alone


def test_a_5xx_ends_the_replay_early_and_keeps_what_was_replayed() -> None:
    service = HTTPService(fail_at=3)
    messages: list[str] = []
    log = Replayer(service.client(), QUIET, progress=messages.append).run(rows(40))

    assert log.interrupted and log.ended_early is not None
    assert log.ended_early.startswith("POST /predict answered 500") and "the model crashed" in log.ended_early
    assert [r.index for r in log.served] == list(range(8))  # two batches answered before the failure
    assert log.refused_rows == []  # a 5xx refuses nothing: it ends the replay
    assert any("ended early after 8 of 40 rows" in m for m in messages)


def test_a_lost_connection_ends_the_replay_early() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = DriftlineClient("http://driftline.test", model_name="sentiment", token=None)
    client.http = httpx.Client(base_url="http://driftline.test", transport=httpx.MockTransport(handle))
    log = Replayer(client, QUIET, progress=lambda _: None).run(rows(8))
    assert log.interrupted and log.ended_early is not None and "ConnectError" in log.ended_early
    assert log.served == []


def test_the_served_version_is_asked_of_predict_not_of_metrics() -> None:
    """/metrics can lag behind what serves; one probe /predict answers with the version that served it."""
    service = HTTPService()  # answers 404 to /metrics
    assert service.client().served_version() == 1
    assert len(service.predict_bodies) == 1 and service.predicted == 1


def test_requests_over_the_body_limit_are_split_and_a_row_over_it_alone_is_not_sent() -> None:
    stream = rows(8)
    stream[2] = StreamRow("é" * 600, "pos", "a")  # 1,200 bytes in UTF-8: over the limit on its own
    for i in (5, 6, 7):  # each under it alone, over it together
        stream[i] = StreamRow(str(i) * 350, "pos", "a")
    limit = 1000
    service = HTTPService(max_chars=100_000)
    options = ReplayOptions(batch_size=4, label_delay=3, hold_during_runs=False, max_body_bytes=limit)
    log = Replayer(service.client(), options, progress=lambda _: None).run(stream)

    assert all(len(body) <= limit for body in service.predict_bodies)  # nothing over it was sent
    assert len(service.predict_bodies) == 3 + 4  # both requests split, row 2 never sent
    assert [r.index for r in log.served] == [0, 1, 3, 4, 5, 6, 7]
    ((index, reason),) = [(r.index, r.reason) for r in log.refused_rows]
    assert index == 2 and reason.startswith("not sent") and "DRIFTLINE_MAX_BODY_BYTES" in reason
    assert not log.interrupted


def test_a_lone_surrogate_is_sent_as_a_json_escape_for_the_service_to_clean() -> None:
    body = encode_body({"texts": ["ok \ud800 then", "é"]})
    assert b"\\ud800" in body and json.loads(body)["texts"][0] == "ok \ud800 then"
    assert encode_body({"texts": ["é"]}) == '{"texts":["é"]}'.encode()  # UTF-8 as usual otherwise


def test_reasons_fold_row_numbers_and_keep_limits() -> None:
    assert (
        fold_numbers("texts[2]: has 2581 characters; the limit is 2000 (DRIFTLINE_MAX_TEXT_CHARS)")
        == "texts[2]: has N characters; the limit is 2000 (DRIFTLINE_MAX_TEXT_CHARS)"
    )
    assert fold_numbers("request body is over the limit of 8388608 bytes (DRIFTLINE_MAX_BODY_BYTES)") == (
        "request body is over the limit of 8388608 bytes (DRIFTLINE_MAX_BODY_BYTES)"
    )
    assert fold_numbers(f"unknown prediction ids ['{'ab' * 16}']") == "unknown prediction ids ['<id>']"


# --- limits, counted before the replay ---------------------------------------------------------------


def test_limits_are_the_ones_the_sessions_service_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_MAX_TEXT_CHARS", "7")  # this shell's: the session's service never sees it
    defaults = ServeSettings.model_fields
    limits = ServiceLimits.from_env({"DRIFTLINE_MAX_FEEDBACK_ITEMS": "10", "PATH": "/bin"})
    assert limits.max_text_chars == defaults["max_text_chars"].default
    assert limits.max_feedback_items == 10
    assert limits.max_texts_per_request == defaults["max_texts_per_request"].default
    assert limits.max_body_bytes == getattr(defaults.get("max_body_bytes"), "default", None)
    assert ServiceLimits.from_env({"DRIFTLINE_MAX_TEXT_CHARS": "50"}).max_text_chars == 50


def test_preflight_counts_rows_over_the_limits_and_long_texts() -> None:
    stream = [StreamRow("a" * n, "pos") for n in [10] * 5395 + [2500, 2500, 100_001, 100_001, 200_000]]
    limits = ServiceLimits(
        max_text_chars=100_000, max_texts_per_request=64, max_feedback_items=1000, max_body_bytes=150_000
    )
    report = preflight(stream, limits, batch_size=8, max_length=128)
    assert (report.over_chars, report.long_texts, report.requests) == (3, 5, 675)
    assert (report.requests_over_body, report.rows_over_body) == (1, 1)
    lines = report.lines()
    assert lines[0] == (
        "3 of 5,400 rows are over the service's 100,000-character limit (DRIFTLINE_MAX_TEXT_CHARS); "
        "they will be refused and counted"
    )
    assert any("1 of 675 requests" in line and "150,000-byte body limit" in line for line in lines)
    assert lines[-1] == (
        "5 of 5,400 rows are longer than 2,000 characters; the model reads the first 128 tokens of each"
    )
    fine = preflight([StreamRow("short", "pos")] * 10, limits, batch_size=8)
    assert fine.lines() == [
        "service limits: 100,000 characters per text, 150,000 bytes per request; no row is over them"
    ]


def test_a_bad_limit_in_the_sessions_settings_is_one_line_naming_it() -> None:
    with pytest.raises(InvalidInputError, match="DRIFTLINE_MAX_TEXT_CHARS: .*'lots'"):
        ServiceLimits.from_env({"DRIFTLINE_MAX_TEXT_CHARS": "lots"})
