"""The BentoML service in-process (its ASGI app under a test client): predictions, the log, labels,
the control API, hot swap and bad input. A real 1-layer model serves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from registry.settings import Settings
from registry.store import Registry

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(served_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("DRIFTLINE_MAX_TEXTS_PER_REQUEST", "8")
    monkeypatch.setenv("DRIFTLINE_MAX_TEXT_CHARS", "200")
    monkeypatch.setenv("DRIFTLINE_POLL_INTERVAL_S", "0.2")
    monkeypatch.setenv("DRIFTLINE_API_TOKEN", TOKEN)
    yield from _client()


def _client(*, ready: bool = True) -> Iterator[TestClient]:
    """The service's ASGI app in-process. BentoML registers its Prometheus metrics in the global
    registry per app, so what this app added is unregistered afterwards."""
    from prometheus_client import REGISTRY

    from service.app import Driftline
    from service.metrics import get_metrics

    before = set(REGISTRY._collector_to_names)
    try:
        with TestClient(Driftline.to_asgi()) as c:
            if ready:
                wait_for(lambda: c.get("/readyz").status_code == 200, "the champion to load")
            yield c
    finally:
        for collector in set(REGISTRY._collector_to_names) - before:
            REGISTRY.unregister(collector)
        get_metrics.cache_clear()


def wait_for(condition, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def registry(home: Path) -> Registry:
    return Registry.open(Settings(home=home))


def predict(c: TestClient, *texts: str):  # type: ignore[no-untyped-def]
    return c.post("/predict", json={"texts": list(texts)})


def test_predict_answers_and_logs_every_prediction(client: TestClient, served_home: Path) -> None:
    r = predict(
        client, "The chef baked bread with garlic.", "Thick fog until noon.", "The striker scored twice."
    )
    assert r.status_code == 200
    assert r.headers["x-driftline-model-version"] == "1"
    body = r.json()
    assert body["model"] == "sentiment" and body["model_version"] == 1
    preds = body["predictions"]
    assert [p["label"] for p in preds] == ["food", "weather", "sports"]
    assert all(abs(sum(p["scores"].values()) - 1.0) < 1e-4 for p in preds)
    ids = [p["prediction_id"] for p in preds]
    assert len(set(ids)) == 3

    store = registry(served_home)
    wait_for(lambda: len(store.get_predictions(ids)) == 3, "the prediction log")
    logged = store.get_predictions(ids)
    row = logged[ids[1]]
    assert row.text == "Thick fog until noon." and row.label == "weather" and row.model_version == 1
    assert row.embedding is not None and len(row.embedding) == 384 * 2  # float16 pooled embedding
    assert row.latency_ms > 0 and row.scores == preds[1]["scores"]


BAD = [
    ({"texts": []}, 422, "texts", "at least 1"),
    ({"texts": ["a"] * 9}, 422, "texts", "limit is 8"),
    ({"texts": ["fine", ""]}, 422, "texts[1]", "empty"),
    ({"texts": ["x" * 201]}, 422, "texts[0]", "limit is 200"),
    ({"texts": ["ok", 5]}, 400, "texts", "valid string"),
    ({"texts": "not a list"}, 400, "texts", "valid array"),
    ({"text": ["wrong field name"]}, 400, "texts", "Field required"),
]


@pytest.mark.parametrize(("payload", "status", "field", "words"), BAD)
def test_bad_predict_input_is_a_4xx_naming_the_field(
    client: TestClient, served_home: Path, payload: dict, status: int, field: str, words: str
) -> None:
    r = client.post("/predict", json=payload)
    assert r.status_code == status, r.text
    assert field in r.text and words in r.text
    assert registry(served_home).count_predictions() == 0


def test_malformed_json_and_wrong_content_type(client: TestClient) -> None:
    r = client.post("/predict", content=b'{"texts": ["a"', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "Invalid JSON" in r.text
    r = client.post("/predict", content=b'{"texts": ["a"]}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["message"]
    r = client.post(
        "/feedback", content=b"label=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415


def test_feedback_is_all_or_nothing(client: TestClient, served_home: Path) -> None:
    ids = [
        p["prediction_id"]
        for p in predict(client, "Snow showers today.", "Grilled salmon.").json()["predictions"]
    ]
    # Sent at once: the predictions may still be in the log buffer; the service writes it out first.
    ok = client.post(
        "/feedback",
        json={
            "items": [
                {"prediction_id": ids[0], "label": "weather"},
                {"text": "The referee stopped the match.", "label": "sports", "domain": "news"},
            ]
        },
        headers=AUTH,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["accepted"] == 2
    store = registry(served_home)
    labels = store.list_labels("sentiment")
    assert [(lb.prediction_id, lb.label, lb.domain) for lb in labels] == [
        (ids[0], "weather", None),
        (None, "sports", "news"),
    ]
    assert labels[0].text == "Snow showers today."

    unknown_id = client.post(
        "/feedback",
        json={
            "items": [
                {"prediction_id": ids[1], "label": "food"},
                {"prediction_id": "f" * 32, "label": "food"},
            ]
        },
        headers=AUTH,
    )
    assert unknown_id.status_code == 404
    assert unknown_id.json()["details"]["unknown"] == ["f" * 32]
    unknown_label = client.post(
        "/feedback",
        json={"items": [{"prediction_id": ids[1], "label": "food"}, {"text": "hmm", "label": "politics"}]},
        headers=AUTH,
    )
    assert unknown_label.status_code == 422
    assert "politics" in unknown_label.json()["message"]
    neither = client.post("/feedback", json={"items": [{"label": "food"}]}, headers=AUTH)
    assert neither.status_code == 422 and "items[0]" in neither.text
    assert len(store.list_labels("sentiment")) == 2  # nothing of the refused requests was written


def test_control_api_reads_and_guards_writes(client: TestClient) -> None:
    versions = client.get("/api/models/sentiment/versions").json()
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert client.get("/api/models/sentiment/aliases/champion").json()["version"] == 1
    missing = client.get("/api/models/sentiment/versions/7")
    assert missing.status_code == 404 and missing.json()["message"] == "model 'sentiment' has no version 7"
    assert client.post("/api/models/sentiment/promote", json={"version": 2, "reason": "x"}).status_code == 401
    wrong = client.post(
        "/api/models/sentiment/promote",
        json={"version": 2, "reason": "x"},
        headers={"Authorization": "Bearer nope"},
    )
    assert wrong.status_code == 401
    bad = client.post("/api/models/sentiment/promote", json={"version": 0, "reason": "x"}, headers=AUTH)
    assert bad.status_code == 422
    assert client.get("/api/docs").status_code == 200
    assert "/models/{name}/promote" in client.get("/api/openapi.json").json()["paths"]
    queued = client.post(
        "/api/runs",
        json={"reason": "try", "config": {"epochs": 2}, "assembly": {"min_new_labels": 50}},
        headers=AUTH,
    )
    assert queued.status_code == 201 and queued.json()["status"] == "queued"
    run = client.get(f"/api/runs/{queued.json()['id']}").json()
    assert run["trigger"] == "manual"
    assert run["config"]["train"] == {"epochs": 2} and run["config"]["assembly"] == {"min_new_labels": 50}
    assert client.post("/api/checks", json={}).status_code == 401
    asked = client.post("/api/checks", json={}, headers=AUTH)
    assert asked.status_code == 202 and asked.json()["status"] == "pending"


def test_promote_swaps_rollback_swaps_back_and_broken_versions_are_refused(client: TestClient) -> None:
    def served() -> int:
        r = predict(client, "The coach signed with a rival club.")
        assert r.status_code == 200
        return int(r.headers["x-driftline-model-version"])

    assert served() == 1
    event = client.post("/api/models/sentiment/promote", json={"version": 2, "reason": "test"}, headers=AUTH)
    assert event.status_code == 200 and event.json()["from_version"] == 1
    wait_for(lambda: served() == 2, "v2 to serve")
    r = predict(client, "The chef baked bread.")
    assert r.json()["predictions"][0]["label"] == "sports"  # v2's bias favours 'sports'

    back = client.post("/api/models/sentiment/rollback", json={"reason": "v2 is odd"}, headers=AUTH)
    assert back.status_code == 200 and back.json()["to_version"] == 1
    wait_for(lambda: served() == 1, "v1 to serve again")

    client.post("/api/models/sentiment/promote", json={"version": 3, "reason": "damaged"}, headers=AUTH)
    time.sleep(1.0)  # several polls
    assert served() == 1  # v3 fails its checksum: refused, v1 keeps serving
    assert client.get("/readyz").status_code == 200
    events = client.get("/api/models/sentiment/events").json()
    assert [(e["from_version"], e["to_version"]) for e in events] == [(1, 3), (2, 1), (1, 2), (None, 1)]


def test_write_endpoints_refused_without_a_configured_token(served_home: Path) -> None:
    for c in _client():
        r = c.post("/api/models/sentiment/promote", json={"version": 2, "reason": "x"}, headers=AUTH)
        assert r.status_code == 401
        assert "`driftline tokens create NAME --role reviewer`" in r.json()["message"]
        assert "DRIFTLINE_API_TOKEN" in r.json()["message"]


def test_no_champion_is_503_with_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path / "empty"))
    for c in _client(ready=False):
        assert c.get("/readyz").status_code == 503
        r = predict(c, "anything")
        assert r.status_code == 503
        assert "driftline bootstrap" in r.json()["message"]
        assert c.get("/livez").status_code == 200
