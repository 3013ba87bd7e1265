"""A drift check asked for through the control API: the service records the request, the scheduler's
leader runs the check on its dispatch tick and links the request to it (or fails it with the reason).
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from registry import entities as e
from registry.errors import InvalidInputError, NotFoundError
from registry.store import Registry
from tests.integration.test_drift_job import serve
from tests.integration.test_scheduler import scheduler
from tests.textgen import topic_rows

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(served_home_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The control API alone (no model loaded; the service mounts it at ``/api``), with a write token."""
    from registry.settings import get_settings
    from service.api.app import create_control_app

    monkeypatch.setenv("DRIFTLINE_API_TOKEN", TOKEN)
    get_settings.cache_clear()
    app = create_control_app()
    with TestClient(app) as client:
        yield client
    if getattr(app.state, "registry", None) is not None:
        app.state.registry.close()


def test_requested_check_runs_on_the_leaders_dispatch_tick(api: TestClient, served_home_db: Path) -> None:
    assert api.post("/checks", json={}).status_code == 401
    assert api.post("/checks", json={}, headers={"Authorization": "Bearer nope"}).status_code == 401
    unknown = api.post("/checks", json={"model_name": "nope"}, headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["message"] == "model 'nope' does not exist"

    thin = api.post("/checks", headers=AUTH)  # no body: the configured model
    assert thin.status_code == 202, thin.text
    assert thin.json() | {"created_at": None} == {
        "id": thin.json()["id"],
        "model_name": "sentiment",
        "requested_by": "api-token",  # DRIFTLINE_API_TOKEN's actor name
        "status": "pending",
        "drift_check_id": None,
        "error": None,
        "created_at": None,
        "handled_at": None,
    }
    leader, standby = scheduler(served_home_db), scheduler(served_home_db)
    try:
        assert leader.dispatch_job() is None
        failed = api.get(f"/checks/requests/{thin.json()['id']}").json()
        assert failed["status"] == "failed" and "needs at least 20" in failed["error"]
        assert failed["handled_at"] is not None

        serve(served_home_db, [r["text"] for r in topic_rows(40, seed=8)], wrong_labels=False)
        asked = api.post("/checks", json={"model_name": "sentiment"}, headers=AUTH).json()
        standby.dispatch_job()  # the leader holds the lease: the standby leaves the request alone
        assert api.get(f"/checks/requests/{asked['id']}").json()["status"] == "pending"
        leader.dispatch_job()
        done = api.get(f"/checks/requests/{asked['id']}").json()
        assert done["status"] == "done" and done["error"] is None
        check = api.get(f"/drift-checks/{done['drift_check_id']}").json()
        assert check["model_name"] == "sentiment" and check["n_current"] == 40
        assert [r["id"] for r in api.get("/checks/requests", params={"status": "done"}).json()] == [
            asked["id"]
        ]
    finally:
        leader.stop()
        standby.stop()
    assert api.get("/checks/requests/999").status_code == 404


def test_store_check_requests(registry: Registry) -> None:
    registry.ensure_model("sentiment")
    with pytest.raises(NotFoundError, match="model 'nope' does not exist"):
        registry.request_check("nope", requested_by="t")
    first = registry.request_check("sentiment", requested_by="alice")
    second = registry.request_check("sentiment", requested_by="bob")
    assert registry.next_check_request() == first
    with pytest.raises(InvalidInputError, match="either drift_check_id"):
        registry.finish_check_request(first.id)
    failed = registry.finish_check_request(first.id, error="too few predictions")
    assert failed.status is e.CheckRequestStatus.FAILED and failed.handled_at is not None
    assert registry.next_check_request() == second
    assert [r.id for r in registry.list_check_requests()] == [second.id, first.id]
    with pytest.raises(NotFoundError, match="check request 99 does not exist"):
        registry.get_check_request(99)
