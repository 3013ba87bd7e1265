"""A real `bentoml serve` at its edges: unknown paths do not grow /metrics, malformed bodies are a 400
and no traceback, the OpenAPI document lists what /predict and /feedback answer, and an overload burst
is shed with 503 + Retry-After while every answered prediction is logged."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.settings import Settings
from registry.store import Registry
from tests.e2e.served import Server

JSON = {"Content-Type": "application/json"}
MAX_WAIT_MS = 20  # a queue of a few dozen texts is over it, even for the 1-layer model


@pytest.fixture(scope="module")
def server(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.models import copy_home

    home = copy_home(served_template, tmp_path_factory.mktemp("edges") / "home")
    srv = Server(
        home,
        home.parent / "serve.log",
        env={
            "DRIFTLINE_MAX_QUEUE_WAIT_MS": str(MAX_WAIT_MS),
            "DRIFTLINE_MAX_BATCH_SIZE": "4",
            "DRIFTLINE_LOG_FLUSH_INTERVAL_S": "0.1",
            "DRIFTLINE_LOG_BATCH_SIZE": "500",
        },
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def _metric(server: Server, name: str, expected: float) -> float:
    """The value of ``name`` once it is ``expected`` (exported every second), or the last one seen."""
    deadline = time.monotonic() + 10
    while True:
        match = re.search(rf"^{name} (\S+)$", server.http.get("/metrics").text, re.MULTILINE)
        value = float(match.group(1)) if match else 0.0
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_unknown_paths_do_not_grow_the_metrics(server: Server) -> None:
    # The first of each kind adds its series (a histogram per status): an unknown path, a run id, one
    # over the database's range; then the service's own metrics are exported (every second).
    for path in ("/no-such-path", "/api/runs/1", f"/api/runs/{10**20}"):
        server.http.get(path)
    time.sleep(1.5)
    before = len(server.http.get("/metrics").content)
    for i in range(300):
        assert server.http.get(f"/scan-{i}/wp-login.php").status_code == 404
    for i in range(50):
        server.http.get(f"/api/runs/{10**20 + i}")
    metrics = server.http.get("/metrics").text
    assert len(metrics.encode()) - before < 2048, "unknown paths added series to /metrics"
    assert "scan-" not in metrics and str(10**20) not in metrics
    assert 'endpoint="/{unknown}",http_response_code="404"' in metrics
    assert 'endpoint="/api/runs/{run_id}"' in metrics
    assert 'endpoint="/readyz"' in metrics  # known paths keep their label


def test_malformed_bodies_are_a_400_without_a_traceback(server: Server) -> None:
    log = Path(server.log.name)
    lines_before = log.read_bytes().count(b"\n")
    bodies = [
        b"{",
        b'{"texts": 3}',
        b"",
        b"[]",
        b'{"texts": ["ok", 1]}',
        b'{"items": [{"label": 7}]}',
        b"\xff",
    ]
    for body in bodies:
        for path in ("/predict", "/feedback"):
            r = server.http.post(path, content=body, headers=JSON)
            assert r.status_code == 400, (path, body, r.text)
            answer = r.json()
            assert answer["error"] == "INVALID_INPUT" and answer["details"]["field"], answer
            assert answer["message"].startswith(answer["details"]["field"])
    time.sleep(0.3)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    assert text.count("\n") - lines_before <= 2 * len(bodies)  # at most one line per request


def test_openapi_lists_every_status_with_its_body(server: Server) -> None:
    document = server.http.get("/docs.json").json()
    predict = document["paths"]["/predict"]["post"]["responses"]
    feedback = document["paths"]["/feedback"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(predict)
    assert {"200", "400", "401", "403", "404", "413", "415", "422", "503"} <= set(feedback)
    error_body = document["components"]["schemas"]["ErrorBody"]
    sent = server.http.post("/predict", content=b"{", headers=JSON).json()  # what a 400 is
    assert set(error_body["required"]) <= set(sent) <= set(error_body["properties"])
    assert "Retry-After" in predict["503"]["headers"]


async def _burst(url: str, clients: int, seconds: float) -> list[httpx.Response]:
    """``clients`` connections, each sending one text again as soon as it is answered."""
    answers: list[httpx.Response] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as http:
        deadline = time.monotonic() + seconds

        async def client(n: int) -> None:
            i = 0
            while time.monotonic() < deadline:
                answers.append(await http.post("/predict", json={"texts": [f"Rain and wind, {n}.{i}."]}))
                i += 1

        await asyncio.gather(*(client(n) for n in range(clients)))
    return answers


def test_overload_is_shed_and_every_answer_is_logged(server: Server) -> None:
    store = Registry.open(Settings(home=server.home))
    try:
        logged_before = store.count_predictions()
        answers = asyncio.run(_burst(server.url, clients=64, seconds=3.0))
        statuses = {r.status_code for r in answers}
        assert statuses <= {200, 503}, statuses
        shed = [r for r in answers if r.status_code == 503]
        answered = [
            p["prediction_id"] for r in answers if r.status_code == 200 for p in r.json()["predictions"]
        ]
        assert shed and answered, f"{len(shed)} shed, {len(answered)} answered"
        for r in shed:
            assert int(r.headers["retry-after"]) >= 1
            body = r.json()
            assert body["error"] == "UNAVAILABLE" and body["details"]["limit_ms"] == MAX_WAIT_MS
            assert "DRIFTLINE_MAX_QUEUE_WAIT_MS" in body["message"]
        deadline = time.monotonic() + 10
        while store.count_predictions() - logged_before < len(answered) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(store.get_predictions(answered)) == len(answered)
        assert store.count_predictions() - logged_before == len(answered)  # the shed are not logged
        assert _metric(server, "driftline_requests_shed_total", len(shed)) == len(shed)
    finally:
        store.close()
