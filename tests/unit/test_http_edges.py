"""The service's HTTP edges without a server: the metrics' route labels, the OpenAPI document and the
error body."""

from __future__ import annotations

from types import SimpleNamespace

from starlette.responses import Response
from starlette.routing import Route

from registry.errors import ErrorCode, NotFoundError, error_body
from service.httpmetrics import UNKNOWN, RouteMetrics
from service.openapi import API_ERRORS, complete
from service.validation import Problem

SPEC = {
    "paths": {
        "/predict": {},
        "/readyz": {},
        "/api/runs": {},
        "/api/runs/{run_id}": {},
        "/api/models/{name}/versions/{version}": {},
    }
}


def _labels() -> RouteMetrics:
    control = SimpleNamespace(routes=[Route("/docs", lambda request: Response())])
    return RouteMetrics(None, spec=lambda: SPEC, mounts={"/api": control})


def test_known_paths_keep_their_label_and_ids_become_the_route() -> None:
    metrics = _labels()
    assert metrics.label("/predict") == "/predict"
    assert metrics.label("/docs.json") == "/docs.json"  # BentoML's own route
    assert metrics.label("/api/docs") == "/api/docs"  # the mounted app's, not in its document
    assert metrics.label("/api/runs") == "/api/runs"
    assert metrics.label("/api/runs/99999999999999999999") == "/api/runs/{run_id}"
    assert metrics.label("/api/models/sentiment/versions/3") == "/api/models/{name}/versions/{version}"


def test_unknown_paths_share_one_label() -> None:
    metrics = _labels()
    labels = {metrics.label(f"/scan-{i}/wp-admin.php") for i in range(500)}
    labels |= {metrics.label(f"/api/nothing-{i}") for i in range(500)}
    labels |= {metrics.label(f"/static_content/{i}.js") for i in range(500)}
    assert labels == {UNKNOWN, "/api/{unknown}", "/static_content/{unknown}"}


def test_openapi_lists_every_status_with_the_error_body() -> None:
    bentoml_errors = {
        code: {"description": "BentoML's", "content": {"application/json": {"schema": {}}}}
        for code in ("400", "404", "500")
    }
    ok = {"description": "Successful Response"}
    document = {
        "paths": {
            "/predict": {"post": {"responses": {"200": ok, **bentoml_errors}}},
            "/feedback": {"post": {"responses": {"200": ok, **bentoml_errors}}},
        }
    }
    done = complete(document)
    predict = done["paths"]["/predict"]["post"]["responses"]
    feedback = done["paths"]["/feedback"]["post"]["responses"]
    assert set(predict) == {"200", "400", "413", "415", "422", "429", "500", "503", "504"}
    assert {"401", "403", "404"} <= set(feedback)
    assert predict["200"] == ok
    assert predict["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert "Retry-After" in predict["503"]["headers"]
    schemas = done["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["error", "message"]
    assert "INVALID_INPUT" in schemas["ErrorCode"]["enum"]  # the $ref inside ErrorBody resolves
    assert schemas["BentoMLErrorBody"]["required"] == ["error"]
    assert set(API_ERRORS) == {"/predict", "/feedback"}


def test_every_error_body_comes_from_one_function() -> None:
    assert error_body(ErrorCode.NOT_FOUND, "no such page") == {
        "error": "NOT_FOUND",
        "message": "no such page",
    }
    assert error_body(ErrorCode.UNAVAILABLE, "busy", {}) == {"error": "UNAVAILABLE", "message": "busy"}
    assert list(error_body(ErrorCode.INVALID_INPUT, "bad", {"field": "x"})) == ["error", "message", "details"]
    assert NotFoundError("model 'm' does not exist", field="name").to_dict() == {
        "error": "NOT_FOUND",
        "message": "model 'm' does not exist",
        "details": {"field": "name"},
    }
    assert Problem("texts", "is empty", 3).body() == {
        "error": "INVALID_INPUT",
        "message": "texts: is empty",
        "details": {"field": "texts", "limit": 3},
    }
