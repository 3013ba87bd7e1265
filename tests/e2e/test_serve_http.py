"""A real `bentoml serve` process on a loopback port: predictions over HTTP, hot swap under load with
zero failed requests, refusal of a damaged version, metrics, and a log flushed at shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from registry.entities import NewDriftCheck
from registry.settings import Settings
from registry.store import Registry
from tests.e2e.served import AUTH, Server


@pytest.fixture(scope="module")
def server(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.models import copy_home, register_variant

    home = copy_home(served_template, tmp_path_factory.mktemp("e2e") / "home")
    registry = Registry.open(Settings(home=home))
    v1 = registry.get_version("sentiment", 1)
    registry.close()
    assert register_variant(home, v1, favour="food", onnx=True).version == SWAP_TO
    registry = Registry.open(Settings(home=home))
    registry.add_drift_check(ESTIMATED_CHECK)  # what /metrics exports of the champion's latest check
    registry.close()
    srv = Server(home, home.parent / "serve.log")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


SWAP_TO = 4  # a variant of v1 with its own verified ONNX graph: the swap is from ONNX to ONNX
ESTIMATED_CHECK = NewDriftCheck(
    model_name="sentiment",
    model_version=1,
    window_start=datetime(2026, 12, 1, tzinfo=UTC),
    window_end=datetime(2026, 12, 2, tzinfo=UTC),
    reference="v1 reference (60 rows)",
    n_reference=60,
    n_current=100,
    scores={
        "accuracy_estimates": {
            "expected_accuracy": {
                "method": "expected_accuracy",
                "value": 0.8,
                "low": 0.75,
                "high": 0.85,
                "rows": 100,
            },
            "atc": {"method": "atc", "value": 0.7, "low": 0.6, "high": 0.78, "rows": 100, "threshold": 0.9},
            "level": 0.95,
            "disagree": True,
            "disagree_gap": 0.03,
        }
    },
    drifted=False,
    decision="none",
    reason="no drift",
    report_uri=None,
)


def served_version(srv: Server, client: httpx.Client | None = None) -> int:
    r = (client or srv.http).post("/predict", json={"texts": ["The coach trained hard before the race."]})
    assert r.status_code == 200, r.text
    assert r.headers["x-driftline-model-version"] == str(r.json()["model_version"])
    return r.json()["model_version"]


def test_predict_over_http(server: Server) -> None:
    r = server.http.post(
        "/predict", json={"texts": ["Heavy rain and strong wind.", "Chocolate cake for dessert."]}
    )
    assert r.status_code == 200
    assert [p["label"] for p in r.json()["predictions"]] == ["weather", "food"]
    assert server.http.post("/predict", json={"texts": []}).status_code == 422
    assert (
        server.http.post("/predict", content=b"{", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
    deadline = time.monotonic() + 10  # the service exports its gauges every second
    while 'driftline_model_version{model="sentiment"} 1.0' not in (
        metrics := server.http.get("/metrics").text
    ):
        assert time.monotonic() < deadline, metrics
        time.sleep(0.2)
    assert "driftline_prediction_log_queue_depth" in metrics
    # v1 carries a verified ONNX graph: it serves on ONNX Runtime (DRIFTLINE_RUNTIME=auto)
    assert 'driftline_model_runtime{model="sentiment",runtime="onnx"} 1.0' in metrics
    # the champion's latest check's accuracy estimates, read at start and every 15 s
    assert (
        'driftline_estimated_accuracy{bound="low",method="atc",model="sentiment",version="1"} 0.6' in metrics
    )
    assert 'driftline_accuracy_estimates_disagree{model="sentiment",version="1"} 1.0' in metrics


def test_hot_swap_under_load_fails_no_request(server: Server) -> None:
    assert served_version(server) == 1
    stop = threading.Event()
    seen: dict[int, list[int]] = {}
    failures: list[str] = []

    def client_loop(n: int) -> None:
        versions = seen.setdefault(n, [])
        with httpx.Client(base_url=server.url, timeout=30.0) as c:
            while not stop.is_set():
                try:
                    versions.append(served_version(server, c))
                except Exception as exc:  # noqa: BLE001 - any failure is what the test counts
                    failures.append(repr(exc))

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    r = server.http.post(
        "/api/models/sentiment/promote", json={"version": SWAP_TO, "reason": "e2e swap"}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(v and v[-1] == SWAP_TO for v in seen.values()):
        time.sleep(0.1)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(30)

    assert failures == []
    total = sum(len(v) for v in seen.values())
    assert total > 20
    for versions in seen.values():
        assert versions[0] == 1 and versions[-1] == SWAP_TO
        switch = versions.index(SWAP_TO)
        assert set(versions[switch:]) == {SWAP_TO}  # once answered by the new version, never by v1 again

    # A damaged version is refused; the new one keeps serving, on ONNX Runtime.
    server.http.post("/api/models/sentiment/promote", json={"version": 3, "reason": "damaged"}, headers=AUTH)
    time.sleep(2.5)  # several polls, and a metrics export
    assert served_version(server) == SWAP_TO
    metrics = server.http.get("/metrics").text
    assert 'driftline_model_runtime{model="sentiment",runtime="onnx"} 1.0' in metrics
    assert "driftline_model_refused_total 1.0" in metrics
    assert "driftline_model_swaps_total 1.0" in metrics


def test_shutdown_flushes_the_prediction_log(server: Server) -> None:
    ids = []
    for i in range(20):
        r = server.http.post(
            "/predict", json={"texts": [f"Sunny and warm, day {i}.", f"Fresh bread number {i}."]}
        )
        ids += [p["prediction_id"] for p in r.json()["predictions"]]
    store = Registry.open(Settings(home=server.home))
    assert len(store.get_predictions(ids)) == 0  # still in the service's buffer
    assert server.stop() is not None
    logged = store.get_predictions(ids)
    assert len(logged) == len(ids) == 40
