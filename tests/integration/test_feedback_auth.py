"""Who may send labels (issue 12, point 1): labels drive retraining and promotion, so ``POST /feedback``
needs a token with role labeler or above, and records its name with each label; an open /feedback is an
explicit setting (DRIFTLINE_OPEN_FEEDBACK=true). The BentoML service in-process, a 1-layer model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.integration.test_service import _client, registry

ENV_TOKEN = "feedback-env-token"
ITEMS = {"items": [{"text": "The referee stopped the match.", "label": "sports"}]}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def secrets(served_home: Path) -> dict[str, str]:
    store = registry(served_home)
    made = {
        role: store.tokens.create(role, role, created_by="test")[1] for role in ("reader", "labeler")
    }
    store.close()
    return made


@pytest.fixture
def client(
    served_home: Path, secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("DRIFTLINE_API_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("DRIFTLINE_POLL_INTERVAL_S", "0.2")
    yield from _client()


def test_feedback_needs_a_labeler(client: TestClient, served_home: Path, secrets: dict[str, str]) -> None:
    missing = client.post("/feedback", json=ITEMS)
    assert missing.status_code == 401, missing.text
    assert missing.json()["error"] == "UNAUTHENTICATED" and "labeler" in missing.json()["message"]
    assert client.post("/feedback", json=ITEMS, headers=bearer("dl_unknown")).status_code == 401
    reader = client.post("/feedback", json=ITEMS, headers=bearer(secrets["reader"]))
    assert reader.status_code == 403
    assert reader.json() == {
        "error": "PERMISSION_DENIED",
        "message": "token 'reader' has role reader; this needs labeler",
        "details": {"role": "reader", "needed": "labeler"},
    }
    store = registry(served_home)
    assert store.list_labels("sentiment") == []  # nothing of the refused requests was written

    ok = client.post("/feedback", json=ITEMS, headers=bearer(secrets["labeler"]))
    assert ok.status_code == 200, ok.text
    assert ok.json()["accepted"] == 1
    env = client.post("/feedback", json=ITEMS, headers=bearer(ENV_TOKEN))
    assert env.status_code == 200, env.text
    assert [lb.metadata for lb in store.list_labels("sentiment")] == [
        {"labeled_by": "labeler"},
        {"labeled_by": "api-token"},
    ]


def test_open_feedback_is_an_explicit_setting(
    served_home: Path, secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_OPEN_FEEDBACK", "true")
    for c in _client():
        r = c.post("/feedback", json=ITEMS)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 1
        # the control API's writes still need their role
        promote = c.post("/api/models/sentiment/promote", json={"version": 2, "reason": "x"})
        assert promote.status_code == 401
    assert [lb.metadata for lb in registry(served_home).list_labels("sentiment")] == [{}]
