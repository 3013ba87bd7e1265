"""The control API's edges (issue 12, points 3, 9, 10 and 11): numbers beyond what the database holds,
symlinks in the reports folder, what the OpenAPI document says each route answers, alias and model
names, and how many manual runs and check requests one token holder may queue. In process, on SQLite
and (when configured) PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from registry import entities as e
from registry.artifacts import FsspecArtifactStore, LocalArtifactStore
from registry.errors import InvalidInputError, NotFoundError
from registry.orm import RegisteredModelRow
from registry.store import Registry
from service.api.params import MAX_ID
from service.api.responses import ErrorBody, ValidationErrorBody
from tests.integration.test_registry import spec

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HUGE = 99999999999999999999  # the fuzzer's id: beyond 64 bits


@pytest.fixture
def api(registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The control API alone on ``registry`` (v1 champion, v2), a write token and a local artifact store."""
    from registry.settings import get_settings
    from service.api.app import create_control_app

    monkeypatch.setenv("DRIFTLINE_API_TOKEN", TOKEN)
    get_settings.cache_clear()
    registry.register_version("sentiment", spec(1), set_aliases=[e.CHAMPION], actor="t", reason="first")
    registry.register_version("sentiment", spec(2), actor="t", reason="second")
    app = create_control_app(lambda: (registry, LocalArtifactStore(tmp_path / "artifacts")))
    with TestClient(app) as client:
        yield client


# --- numbers beyond the database's columns (point 3) ----------------------------------------------

# (method, path, body) with {n} where the number goes, and the field a 422 must name
INT_FIELDS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/runs/{n}", None, "run_id"),
    ("GET", "/models/sentiment/versions/{n}", None, "version"),
    ("GET", "/drift-checks/{n}", None, "check_id"),
    ("GET", "/decisions/{n}", None, "decision_id"),
    ("GET", "/checks/requests/{n}", None, "request_id"),
    ("POST", "/decisions/{n}/approve", {"reason": "ok"}, "decision_id"),
    ("POST", "/decisions/{n}/reject", {"reason": "no"}, "decision_id"),
    ("POST", "/models/sentiment/promote", {"version": "{n}", "reason": "x"}, "version"),
]


def _send(api: TestClient, method: str, path: str, body: dict[str, Any] | None, n: int):  # type: ignore[no-untyped-def]
    json = None if body is None else {k: n if v == "{n}" else v for k, v in body.items()}
    return api.request(method, path.replace("{n}", str(n)), json=json, headers=AUTH)


@pytest.mark.parametrize(("method", "path", "body", "field"), INT_FIELDS, ids=[f[1] for f in INT_FIELDS])
@pytest.mark.parametrize("n", [HUGE, 2**63, MAX_ID + 1, 0, -1, -HUGE])
def test_numbers_out_of_range_are_422_naming_the_field(
    api: TestClient, method: str, path: str, body: dict[str, Any] | None, field: str, n: int
) -> None:
    r = _send(api, method, path, body, n)
    assert r.status_code == 422, r.text
    assert [issue["loc"][-1] for issue in r.json()["detail"]] == [field]
    largest = _send(api, method, path, body, MAX_ID)  # the largest id is looked up
    assert largest.status_code == 404 and str(MAX_ID) in largest.json()["message"], largest.text


def _calls(registry: Registry) -> dict[str, Callable[[int], object]]:
    """Every store method that takes an id, a version or a limit from its caller."""
    return {
        "get_run": registry.get_run,
        "claim_run": registry.claim_run,
        "finish_run": lambda n: registry.finish_run(n, e.RunStatus.FAILED, error="x"),
        "heartbeat": registry.heartbeat,
        "list_runs": lambda n: registry.list_runs(limit=n),
        "get_version": lambda n: registry.get_version("sentiment", n),
        "set_alias": lambda n: registry.set_alias("sentiment", e.CHAMPION, n, actor="t", reason="r"),
        "get_drift_check": registry.get_drift_check,
        "get_decision": registry.get_decision,
        "review_decision": lambda n: registry.review_decision(n, approve=True, reviewer="t", reason="r"),
        "get_check_request": registry.get_check_request,
        "finish_check_request": lambda n: registry.finish_check_request(n, error="x"),
        "window": lambda n: registry.window("sentiment", n, limit=10),
    }


@pytest.mark.parametrize("n", [HUGE, 2**63, -(2**63) - 1])
def test_registry_refuses_numbers_beyond_its_columns_as_invalid_input(
    registry: Registry, db_url: str, n: int
) -> None:
    """sqlite3 raises OverflowError beyond 64 bits, PostgreSQL SQLSTATE 22003 beyond its column: both are
    the caller's mistake (422), not a database failure, and the registry keeps working."""
    registry.register_version("sentiment", spec(1), set_aliases=[e.CHAMPION], actor="t", reason="r")
    for name, call in _calls(registry).items():
        with pytest.raises(InvalidInputError, match="a number is out of range for the database") as caught:
            call(n)
        assert caught.value.http_status == 422, name
    assert registry.get_version("sentiment", 1).version == 1
    # ids are 32-bit columns on PostgreSQL (so the API stops at MAX_ID), 64-bit on SQLite
    past_32_bits = pytest.raises(NotFoundError if db_url.startswith("sqlite") else InvalidInputError)
    with past_32_bits:
        registry.get_run(MAX_ID + 1)
    with pytest.raises(NotFoundError, match=f"retrain run {MAX_ID} does not exist"):
        registry.get_run(MAX_ID)


# --- reports and symlinks (point 9) ---------------------------------------------------------------


def test_reports_refuse_symlinks_and_paths_outside_the_reports_folder(
    api: TestClient, tmp_path: Path
) -> None:
    reports = tmp_path / "artifacts" / "reports"
    (reports / "drift" / "1").mkdir(parents=True)
    (reports / "drift" / "1" / "report.html").write_text("<p>drift</p>")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "page.html").write_text("secret page")
    (reports / "leak.txt").symlink_to(secret)
    (reports / "hostname").symlink_to("/etc/hostname")
    (reports / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    # links that stay inside are refused too: no symlink is followed
    (reports / "drift" / "alias.html").symlink_to(reports / "drift" / "1" / "report.html")
    (reports / "drift" / "up").symlink_to(reports, target_is_directory=True)

    ok = api.get("/reports/drift/1/report.html")
    assert ok.status_code == 200 and ok.text == "<p>drift</p>"
    assert ok.headers["content-type"].startswith("text/html")
    for path in (
        "leak.txt",
        "hostname",
        "linked/page.html",
        "drift/alias.html",
        "drift/up/drift/1/report.html",
        "missing.html",
    ):
        r = api.get(f"/reports/{path}")
        assert r.status_code == 404, path
        assert r.json() == {
            "error": "NOT_FOUND",
            "message": f"report '{path}' does not exist",
            "details": {"field": "path"},
        }
    nul = api.get("/reports/drift/1/a%00.html")
    assert nul.status_code == 422 and nul.json()["details"] == {"field": "path"}

    # an artifact root reached through a symlink is still served, and so is a store without symlinks
    real = tmp_path / "real-artifacts"
    (real / "reports" / "runs" / "1").mkdir(parents=True)
    (real / "reports" / "runs" / "1" / "promotion.html").write_text("<p>promoted</p>")
    (tmp_path / "linked-root").symlink_to(real, target_is_directory=True)
    api.app.state.artifacts = LocalArtifactStore(tmp_path / "linked-root")  # type: ignore[attr-defined]
    assert api.get("/reports/runs/1/promotion.html").text == "<p>promoted</p>"
    store = FsspecArtifactStore(f"memory://driftline-{uuid.uuid4().hex}")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.json").write_text('{"ok": true}')
    store.put_report(tmp_path / "report", "drift/3")
    api.app.state.artifacts = store  # type: ignore[attr-defined]
    assert api.get("/reports/drift/3/report.json").json() == {"ok": True}
    assert api.get("/reports/drift/3/nope.json").status_code == 404


# --- what the OpenAPI document says (point 10) ----------------------------------------------------

ERROR_REF = "#/components/schemas/ErrorBody"
VALIDATION_REF = "#/components/schemas/ValidationErrorBody"


def _refs(response: dict[str, Any]) -> set[str]:
    schema = response["content"]["application/json"]["schema"]
    return {s["$ref"] for s in schema.get("anyOf", [schema])}


def test_openapi_documents_every_status_each_route_answers(api: TestClient) -> None:
    spec_ = api.get("/openapi.json").json()
    routes = 0
    for path, operations in spec_["paths"].items():
        for method, op in operations.items():
            routes += 1
            where = f"{method.upper()} {path}"
            documented = set(op["responses"])
            expected = {"401", "403", "503"}  # auth (writes; reads where closed), the database
            if method == "post":
                expected |= {"409", "422"}
            if "{" in path:
                expected.add("404")
            if op.get("parameters") or "requestBody" in op:
                expected.add("422")
            assert expected <= documented, f"{where} does not document {sorted(expected - documented)}"
            for status in documented - {"200", "201", "202"}:
                assert ERROR_REF in _refs(op["responses"][status]), f"{where} {status}: not the error body"
            if "422" in documented:
                assert VALIDATION_REF in _refs(op["responses"]["422"]), f"{where} 422: not FastAPI's body"
            for param in op.get("parameters", []):
                if param["schema"].get("type") == "integer":
                    assert 1 <= param["schema"]["minimum"] and param["schema"]["maximum"] <= MAX_ID, where
            if "requestBody" in op:
                ref = op["requestBody"]["content"]["application/json"]["schema"]
                ref = ref.get("anyOf", [ref])[0]["$ref"]
                body = spec_["components"]["schemas"][ref.rsplit("/", 1)[1]]
                for prop, sub in body["properties"].items():
                    if sub.get("type") == "integer":
                        assert 1 <= sub["minimum"] and sub["maximum"] <= MAX_ID, f"{where} body {prop}"
    assert routes >= 20


def test_answers_match_what_is_documented(api: TestClient) -> None:
    """Real error answers have the documented status and body."""
    spec_ = api.get("/openapi.json").json()
    answers = [
        (api.get("/runs/7"), "/runs/{run_id}", "get", ErrorBody),
        (api.post("/runs", json={}), "/runs", "post", ErrorBody),  # no token
        (
            api.post("/models/sentiment/rollback", json={"reason": "x"}, headers=AUTH),
            "/models/{name}/rollback",
            "post",
            ErrorBody,
        ),  # no previous champion
        (api.get("/runs/0"), "/runs/{run_id}", "get", ValidationErrorBody),
        (
            api.post("/models/sentiment/promote", json={"version": 1}, headers=AUTH),
            "/models/{name}/promote",
            "post",
            ValidationErrorBody,
        ),
    ]
    assert [r.status_code for r, *_ in answers] == [404, 401, 409, 422, 422]
    for r, path, method, body in answers:
        assert str(r.status_code) in spec_["paths"][path][method]["responses"]
        body.model_validate(r.json())
    ErrorBody.model_validate(InvalidInputError("a number is out of range", field="version").to_dict())


# --- names (point 11) -----------------------------------------------------------------------------

BAD_ALIASES = ["../../etc", "<img src=x>", "Champion", "", "a" * 64, "champion\n", "9lives", "a b", "a/b"]


@pytest.mark.parametrize("alias", BAD_ALIASES)
def test_bad_alias_names_are_refused_by_the_api_naming_the_field(api: TestClient, alias: str) -> None:
    r = api.post(
        "/models/sentiment/promote", json={"version": 2, "reason": "x", "alias": alias}, headers=AUTH
    )
    assert r.status_code == 422
    assert [issue["loc"] for issue in r.json()["detail"]] == [["body", "alias"]]
    assert api.get("/models/sentiment/events").json()[0]["to_version"] == 1  # nothing moved


def test_alias_names_are_checked_by_the_store(registry: Registry) -> None:
    registry.register_version("sentiment", spec(1), set_aliases=[e.CHAMPION], actor="t", reason="r")
    for alias in BAD_ALIASES:
        with pytest.raises(InvalidInputError, match="^alias .* must be") as caught:
            registry.set_alias("sentiment", alias, 1, actor="t", reason="r")
        assert caught.value.details == {"field": "alias"}
    with pytest.raises(InvalidInputError) as caught:
        registry.set_alias("sentiment", "../../etc", 1, actor="t", reason="r")
    assert caught.value.message == (
        "alias '../../etc' is not allowed: it must be 1 to 63 lowercase letters, digits, '_' or '-', "
        "starting with a letter"
    )
    with pytest.raises(InvalidInputError, match="alias '<b>'"):
        registry.register_version("sentiment", spec(2), set_aliases=["<b>"], actor="t", reason="r")
    assert [v.version for v in registry.list_versions("sentiment")] == [1]  # the version went with it
    for alias in (e.CHAMPION, e.CHALLENGER, "canary-2", "shadow_a"):
        registry.set_alias("sentiment", alias, 1, actor="t", reason="r")
    assert len(registry.list_alias_events("sentiment")) == 5


def test_model_names_are_checked_when_a_model_is_created(registry: Registry) -> None:
    for name in ("../../etc", "<img src=x>", "a/b", ".hidden", "", "m" * 101, "two words"):
        with pytest.raises(InvalidInputError, match="^model name .* must be") as caught:
            registry.ensure_model(name)
        assert caught.value.details == {"field": "model_name"}
    for name in ("sentiment", "demo", "topics", "m", "Sentiment.v2", "news_en-2"):
        assert registry.ensure_model(name).name == name
    with Session(registry.engine) as s, s.begin():  # a model created before the rule keeps working
        s.add(RegisteredModelRow(name="old name", description="", created_at=datetime.now(UTC)))
    assert registry.register_version("old name", spec(1)).version == 1


# --- how much one token holder may queue (point 11) -----------------------------------------------


def test_manual_runs_are_limited_per_model(
    api: TestClient, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.settings import get_settings

    assert get_settings().max_pending_manual_runs == 3
    queued = [api.post("/runs", json={"reason": f"try {i}"}, headers=AUTH) for i in range(3)]
    assert [r.status_code for r in queued] == [201, 201, 201]
    ids = [r.json()["id"] for r in queued]
    registry.create_run("sentiment", trigger=e.RunTrigger.DRIFT, config={})  # other triggers do not count
    fourth = api.post("/runs", json={"reason": "one more"}, headers=AUTH)
    assert fourth.status_code == 409
    assert fourth.json() == {
        "error": "CONFLICT",
        "message": f"model 'sentiment' already has 3 manual runs queued or running (ids {ids[0]}, {ids[1]}, "
        f"{ids[2]}); the limit is 3 at once: wait until one is done",
        "details": {"pending": 3, "limit": 3},
    }
    registry.claim_run(ids[0])  # running still counts
    assert api.post("/runs", json={}, headers=AUTH).status_code == 409
    registry.finish_run(ids[0], e.RunStatus.SUCCEEDED)
    assert api.post("/runs", json={}, headers=AUTH).status_code == 201
    registry.ensure_model("topics")  # per model
    assert api.post("/runs", json={"model_name": "topics"}, headers=AUTH).status_code == 201
    assert api.post("/runs", json={"model_name": "nope"}, headers=AUTH).status_code == 404

    monkeypatch.setenv("DRIFTLINE_MAX_PENDING_MANUAL_RUNS", "5")
    get_settings.cache_clear()
    assert api.post("/runs", json={}, headers=AUTH).status_code == 201
    manual = [r for r in registry.list_runs("sentiment") if r.trigger is e.RunTrigger.MANUAL]
    assert sum(not r.status.finished for r in manual) == 4


def test_check_requests_are_limited_per_model(
    api: TestClient, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.settings import get_settings

    monkeypatch.setenv("DRIFTLINE_MAX_PENDING_CHECK_REQUESTS", "2")
    get_settings.cache_clear()
    asked = [api.post("/checks", json={}, headers=AUTH) for _ in range(2)]
    assert [r.status_code for r in asked] == [202, 202]
    third = api.post("/checks", json={}, headers=AUTH)
    assert third.status_code == 409
    first, second = (r.json()["id"] for r in asked)
    assert third.json()["message"] == (
        f"model 'sentiment' already has 2 drift-check requests pending (ids {first}, {second}); "
        "the limit is 2 at once: wait until one is done"
    )
    registry.finish_check_request(first, error="too few predictions")
    assert api.post("/checks", json={}, headers=AUTH).status_code == 202
    assert len(registry.list_check_requests(e.CheckRequestStatus.PENDING)) == 2
