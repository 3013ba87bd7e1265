"""Who may write through the control API (issue 12, points 1 and 2): every write needs a named token with
role reviewer or above (or DRIFTLINE_API_TOKEN, an admin named 'api-token'); a missing, unknown or
revoked token is 401, a role too low 403, and none of them writes anything. What a token writes is
recorded under its name. Reads are open unless DRIFTLINE_OPEN_READS=false. In process, on SQLite and
(when configured) PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from registry import entities as e
from registry.artifacts import LocalArtifactStore
from registry.store import Registry
from service.api.deps import token_cache
from tests.integration.test_registry import spec

ENV_TOKEN = "env-admin-token"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def pending_decision(registry: Registry) -> int:
    decision = registry.add_decision(
        e.NewDecision(
            model_name="sentiment",
            candidate_version=2,
            incumbent_version=1,
            run_id=None,
            metrics={},
            passed=True,
            reasons=("passed the gate",),
            status=e.DecisionStatus.PENDING_APPROVAL,
        )
    )
    return decision.id


@pytest.fixture
def api(registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The control API alone on ``registry`` (v1 champion, v2), no DRIFTLINE_API_TOKEN unless a test sets it."""
    from registry.settings import get_settings
    from service.api.app import create_control_app

    get_settings.cache_clear()
    registry.register_version("sentiment", spec(1), set_aliases=[e.CHAMPION], actor="t", reason="first")
    registry.register_version("sentiment", spec(2), actor="t", reason="second")
    app = create_control_app(lambda: (registry, LocalArtifactStore(tmp_path / "artifacts")))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def secrets(registry: Registry) -> dict[str, str]:
    """One token per role, named after it, and one revoked reviewer; their secrets by name."""
    store = registry.tokens
    made = {role.value: store.create(role.value, role, created_by="test")[1] for role in e.Role}
    made["gone"] = store.create("gone", "reviewer", created_by="test")[1]
    store.revoke("gone")
    return made


def writes(api: TestClient, decision_id: int) -> dict[str, Callable[[dict[str, str]], Any]]:
    """Each write endpoint, sent with the given headers."""
    return {
        "promote": lambda h: api.post(
            "/models/sentiment/promote", json={"version": 2, "reason": "x"}, headers=h
        ),
        "rollback": lambda h: api.post("/models/sentiment/rollback", json={"reason": "x"}, headers=h),
        "approve": lambda h: api.post(f"/decisions/{decision_id}/approve", json={"reason": "ok"}, headers=h),
        "reject": lambda h: api.post(f"/decisions/{decision_id}/reject", json={"reason": "no"}, headers=h),
        "queue a run": lambda h: api.post("/runs", json={"reason": "try"}, headers=h),
        "request a check": lambda h: api.post("/checks", json={}, headers=h),
    }


def written(registry: Registry) -> tuple[int, int, int, list[str]]:
    return (
        len(registry.list_alias_events("sentiment")),
        len(registry.list_runs()),
        len(registry.list_check_requests()),
        [d.status.value for d in registry.list_decisions()],
    )


def test_no_write_without_the_right_role(
    api: TestClient, registry: Registry, secrets: dict[str, str]
) -> None:
    decision_id = pending_decision(registry)
    before = written(registry)
    for endpoint, send in writes(api, decision_id).items():
        for who, headers, status in [
            ("no token", {}, 401),
            ("unknown", bearer("dl_not-a-token"), 401),
            ("revoked", bearer(secrets["gone"]), 401),
            ("not bearer", {"Authorization": f"Basic {secrets['admin']}"}, 401),
            ("reader", bearer(secrets["reader"]), 403),
            ("labeler", bearer(secrets["labeler"]), 403),
        ]:
            r = send(headers)
            assert r.status_code == status, (endpoint, who, r.text)
            body = r.json()
            if status == 403:
                assert body == {
                    "error": "PERMISSION_DENIED",
                    "message": f"token '{who}' has role {who}; this needs reviewer",
                    "details": {"role": who, "needed": "reviewer"},
                }
            else:
                assert body["error"] == "UNAUTHENTICATED" and "Authorization: Bearer" in body["message"]
    assert written(registry) == before  # not one write


def test_a_reviewer_writes_under_its_name(
    api: TestClient, registry: Registry, secrets: dict[str, str]
) -> None:
    first, second = pending_decision(registry), pending_decision(registry)
    reviewer = bearer(secrets["reviewer"])
    send = writes(api, first)
    assert send["promote"](reviewer).status_code == 200
    assert send["rollback"](reviewer).status_code == 200
    approved = api.post(
        f"/decisions/{first}/approve", json={"reason": "ok", "reviewer": "mallory"}, headers=reviewer
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["reviewer"] == "reviewer"  # the body cannot claim another identity
    assert "approved by reviewer: ok (on behalf of mallory)" in approved.json()["reasons"]
    rejected = writes(api, second)["reject"](reviewer)
    assert rejected.status_code == 200 and rejected.json()["reviewer"] == "reviewer"
    run = send["queue a run"](reviewer)
    assert run.status_code == 201 and run.json()["config"]["requested_by"] == "reviewer"
    asked = send["request a check"](reviewer)
    assert asked.status_code == 202 and asked.json()["requested_by"] == "reviewer"

    events = registry.list_alias_events("sentiment", e.CHAMPION)[:3]  # newest first
    assert [(ev.actor, ev.to_version) for ev in events] == [("reviewer", 2), ("reviewer", 1), ("reviewer", 2)]
    assert registry.get_decision(first).reviewer == "reviewer"
    assert registry.get_run(run.json()["id"]).config["requested_by"] == "reviewer"

    admin = api.post("/models/sentiment/rollback", json={"reason": "back"}, headers=bearer(secrets["admin"]))
    assert admin.status_code == 200 and admin.json()["actor"] == "admin"


def test_the_env_token_is_an_admin_named_api_token(
    api: TestClient, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.settings import get_settings

    monkeypatch.setenv("DRIFTLINE_API_TOKEN", ENV_TOKEN)
    get_settings.cache_clear()
    assert writes(api, 1)["promote"](bearer("wrong")).status_code == 401
    moved = writes(api, 1)["promote"](bearer(ENV_TOKEN))
    assert moved.status_code == 200 and moved.json()["actor"] == "api-token"


def test_with_no_token_anywhere_the_answer_says_how_to_make_one(api: TestClient, registry: Registry) -> None:
    r = writes(api, 1)["promote"](bearer("anything"))
    assert r.status_code == 401
    assert "none exists yet" in r.json()["message"]
    assert "`driftline tokens create NAME --role reviewer`" in r.json()["message"]
    assert len(registry.list_alias_events("sentiment")) == 1


def test_reads_are_open_by_default(api: TestClient, secrets: dict[str, str]) -> None:
    assert api.get("/models").status_code == 200
    assert api.get("/models/sentiment/events").status_code == 200


def test_closed_reads_need_a_reader(
    api: TestClient, secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.settings import get_settings

    monkeypatch.setenv("DRIFTLINE_OPEN_READS", "false")
    get_settings.cache_clear()
    gets = [
        *("/models", "/models/sentiment/versions", "/models/sentiment/events", "/runs", "/decisions"),
        *("/drift-checks", "/checks/requests", "/reports/nothing.html"),
    ]
    for path in gets:
        for headers in ({}, bearer("dl_unknown"), bearer(secrets["gone"])):
            refused = api.get(path, headers=headers)
            assert refused.status_code == 401, (path, refused.text)
        for role in ("reader", "labeler", "reviewer", "admin"):
            allowed = api.get(path, headers=bearer(secrets[role]))
            assert allowed.status_code in (200, 404), (path, role, allowed.text)  # 404: no such report
    # writes keep their own role
    assert writes(api, 1)["promote"](bearer(secrets["reader"])).status_code == 403


def test_a_revoked_token_stops_working_within_the_cache_ttl(
    api: TestClient, registry: Registry, secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.settings import get_settings

    monkeypatch.setenv("DRIFTLINE_OPEN_READS", "false")
    get_settings.cache_clear()
    monkeypatch.setattr(token_cache, "ttl_s", 0.5)
    headers = bearer(secrets["reader"])
    assert api.get("/models", headers=headers).status_code == 200  # looked up, then cached
    registry.tokens.revoke("reader")
    assert api.get("/models", headers=headers).status_code == 200  # still cached
    time.sleep(0.6)
    assert api.get("/models", headers=headers).status_code == 401
