"""What a real `bentoml serve` does with input nobody planned for: long texts are served and marked
truncated, NUL bytes and lone surrogates are cleaned and logged, right-to-left and emoji text is served
as sent, a body over the byte limit is answered 413 unread, an over-long text 422 naming its limit;
never a 5xx."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.texts import REPLACEMENT
from registry.settings import Settings
from registry.store import Registry
from tests.e2e.served import AUTH, Server

BODY_LIMIT = 300_000
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.models import copy_home

    home = copy_home(served_template, tmp_path_factory.mktemp("hostile") / "home")
    srv = Server(
        home,
        home.parent / "serve.log",
        env={"DRIFTLINE_MAX_BODY_BYTES": str(BODY_LIMIT), "DRIFTLINE_LOG_FLUSH_INTERVAL_S": "0.1"},
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def _stored(server: Server, prediction_ids: list[str]) -> dict:  # type: ignore[type-arg]
    registry = Registry.open(Settings(home=server.home))
    try:
        deadline = time.monotonic() + 10
        while len(found := registry.get_predictions(prediction_ids)) < len(prediction_ids):
            assert time.monotonic() < deadline, f"only {len(found)} of {len(prediction_ids)} rows logged"
            time.sleep(0.1)
        return found
    finally:
        registry.close()


def _metric(server: Server, name: str) -> float:
    deadline = time.monotonic() + 10  # gauges and counters are exported every second
    while True:
        match = re.search(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", server.http.get("/metrics").text, re.MULTILINE)
        if match and float(match.group(1)) > 0 or time.monotonic() > deadline:
            return float(match.group(1)) if match else 0.0
        time.sleep(0.2)


def test_long_texts_are_served_and_marked_truncated(server: Server) -> None:
    email = "Subject: the coach trained hard\n\n" + "The home team won the championship game. " * 150
    assert len(email) > 5000
    r = server.http.post("/predict", json={"texts": [email, "Heavy rain and strong wind."]})
    assert r.status_code == 200, r.text
    first, second = r.json()["predictions"]
    assert first["label"] == "sports"  # the head of the text decides
    stored = _stored(server, [first["prediction_id"], second["prediction_id"]])
    assert stored[first["prediction_id"]].truncated and len(stored[first["prediction_id"]].text) == len(email)
    assert not stored[second["prediction_id"]].truncated
    assert _metric(server, "driftline_texts_truncated_total") >= 1


def test_unstorable_characters_are_cleaned_and_other_scripts_kept(server: Server) -> None:
    texts = ["poison \u0000 byte in the rain", "lone \ud800 surrogate cake", "مطر غزير 🌧️ וְרוּחַ חזקה"]
    body = json.dumps({"texts": texts}).encode()  # ensure_ascii: the surrogate travels as \ud800
    r = server.http.post("/predict", content=body, headers=JSON)
    assert r.status_code == 200, r.text
    ids = [p["prediction_id"] for p in r.json()["predictions"]]
    stored = _stored(server, ids)
    assert stored[ids[0]].text == f"poison {REPLACEMENT} byte in the rain"
    assert stored[ids[1]].text == f"lone {REPLACEMENT} surrogate cake"
    assert stored[ids[2]].text == texts[2]
    feedback = json.dumps(
        {"items": [{"prediction_id": ids[0], "label": " weather "}, {"text": "nul \u0000 cake", "label": "food"}]}
    ).encode()
    r = server.http.post("/feedback", content=feedback, headers={**JSON, **AUTH})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2


def test_limits_are_named_and_nothing_answers_5xx(server: Server) -> None:
    over_chars = server.http.post("/predict", json={"texts": ["a" * 150_000]})
    assert over_chars.status_code == 422
    assert "the limit is 100000 (DRIFTLINE_MAX_TEXT_CHARS)" in over_chars.json()["message"]

    megabyte = server.http.post("/predict", json={"texts": ["b" * 1_000_000]})
    assert megabyte.status_code == 413
    assert megabyte.json()["details"] == {"field": "body", "limit": BODY_LIMIT}
    assert "DRIFTLINE_MAX_BODY_BYTES" in megabyte.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds for a streamed body too
        yield b'{"texts": ["'
        for _ in range(40):
            yield b"c" * 10_000
        yield b'"]}'

    streamed = server.http.post("/predict", content=chunks(), headers=JSON)
    assert streamed.status_code == 413

    big_feedback = server.http.post("/feedback", json={"items": [{"text": "d" * 400_000, "label": "food"}]})
    assert big_feedback.status_code == 413
    for body in (
        b'{"texts": ["\\ud800"]}',  # only a lone surrogate
        b'{"texts": ["\\u0000"]}',
        b'{"texts": ["   "]}',
        b'{"texts": [1]}',
        b'{"texts": "not a list"}',
        b'{"items": [{"label": "food"}]}',
    ):
        for path in ("/predict", "/feedback"):
            r = server.http.post(path, content=body, headers=JSON)
            assert r.status_code < 500, (path, body, r.status_code, r.text)
    assert server.http.get("/readyz").status_code == 200
    assert httpx.get(f"{server.url}/livez").status_code == 200
