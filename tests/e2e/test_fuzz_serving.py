"""Schemathesis fuzzing of a real `bentoml serve` (issue 12, "Fuzzing in CI"): ``/predict`` and
``/feedback`` as BentoML's own OpenAPI document (``/docs.json``) describes them, and the control API
mounted at ``/api`` as its document (``/api/openapi.json``) does, over HTTP through every middleware the
service adds (body limit, JSON only, route metrics).

``/predict`` and ``/feedback`` are sent generated requests (schemathesis's examples, coverage and
fuzzing phases) with no token, with the admin token (``DRIFTLINE_API_TOKEN``) and with a reader's (below
labeler: ``/feedback`` is 403); the control API with no token and as the admin. Feedback items are often
given a real prediction id and a real label (:func:`real_items`), so labels are stored, not only
refused. Every answer must be no 5xx, a documented status, a documented content type, a body and
headers of the documented schema (``tests/fuzzing.py``). ``make test`` sends a bounded number of cases
(well under a minute once the server is up); ``make test-slow`` the ``slow`` variants, thousands more;
both count what they sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st

from registry.settings import Settings
from registry.store import Registry
from service.api.responses import ErrorBody
from tests.e2e.served import AUTH, Server
from tests.fuzzing import Tally, all_selected, config, fuzz_settings

if not hasattr(pytest.Function, "_nodeid"):
    # schemathesis 4.32's schemas from a fixture (`from_fixture`, the way to fuzz a server that a fixture
    # starts) rename the running test through `request.node._nodeid`, which pytest 9.2 no longer has: an
    # AttributeError in every such test. Reading it gives the node id; the renaming is dropped (it only
    # changes the name the report shows; each operation is still reported as a subtest named after it).
    pytest.Function._nodeid = property(lambda self: self.nodeid, lambda self, value: None)  # type: ignore[attr-defined]

FAST_EXAMPLES = 60  # fuzzed cases per operation and token, besides the example and coverage cases
SLOW_EXAMPLES = 500
CONTROL_EXAMPLES = (
    2  # the control API is fuzzed in process at length (tests/integration/test_fuzz_control_api.py)
)
SLOW_CONTROL_EXAMPLES = 30
FAST_FLOOR = 1_000  # cases the default tests send at least
SLOW_FLOOR = 5_000
FAST_TESTS = (
    "test_fuzz_serving_without_a_token",
    "test_fuzz_serving_as_admin",
    "test_fuzz_serving_as_reader",
    "test_fuzz_control_api_through_bentoml_without_a_token",
    "test_fuzz_control_api_through_bentoml_as_admin",
)
SLOW_TESTS = tuple(f"{name}_slow" for name in FAST_TESTS)

TALLY = Tally()


@pytest.fixture(scope="module")
def server(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.models import copy_home

    home = copy_home(served_template, tmp_path_factory.mktemp("fuzz-serving") / "home")
    srv = Server(home, home.parent / "serve.log", env={"DRIFTLINE_LOG_FLUSH_INTERVAL_S": "0.2"})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def reader(server: Server) -> dict[str, str]:
    """A named reader token: it authenticates, and its role is below what ``/feedback`` needs."""
    registry = Registry.open(Settings(home=server.home))
    try:
        secret = registry.tokens.create("fuzz-reader", "reader", created_by="fuzz")[1]
    finally:
        registry.close()
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def admin() -> dict[str, str]:
    return AUTH


@pytest.fixture(scope="module")
def real(server: Server) -> dict[str, list[str]]:
    """Prediction ids the server made (and logs) and the champion's labels."""
    r = server.http.post("/predict", json={"texts": ["Heavy rain and strong wind.", "Chocolate cake."]})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    return {
        "prediction_id": [p["prediction_id"] for p in predictions],
        "label": sorted(predictions[0]["scores"]),
    }


def real_items(
    real: dict[str, list[str]],
) -> Callable[[schemathesis.HookContext, Any], st.SearchStrategy[Any]]:
    """A ``flatmap_body`` hook: hypothesis may turn each generated feedback item into one about a real
    prediction with a real label (keeping its other fields), so some bodies are stored rather than all
    refused. An item whose label is not a string is left alone, and so is a body that is not a list of
    objects: those negative cases stay negative."""

    def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        items = body.get("items") if isinstance(body, dict) else None
        if context.operation is None or context.operation.path != "/feedback" or not isinstance(items, list):
            return st.just(body)
        if not items or not all(isinstance(item, dict) for item in items):
            return st.just(body)

        def one(item: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
            if not isinstance(item.get("label"), str):
                return st.just(item)
            kept = {key: value for key, value in item.items() if key != "text"}
            about_a_prediction = st.fixed_dictionaries(
                {
                    "prediction_id": st.sampled_from(real["prediction_id"]),
                    "label": st.sampled_from(real["label"]),
                }
            ).map(lambda chosen: {**kept, **chosen})
            return st.one_of(st.just(item), about_a_prediction)

        return st.tuples(*map(one, items)).map(lambda chosen: {**body, "items": list(chosen)})

    return flatmap_body


@pytest.fixture(scope="module")
def serving_schema(server: Server, real: dict[str, list[str]]) -> schemathesis.BaseSchema:
    """BentoML's document, as served (its ``/predict`` and ``/feedback``: see ``SERVING``)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/docs.json", config=config())
    schema.hook(real_items(real))
    TALLY.install(schema)
    return schema


@pytest.fixture(scope="module")
def control_schema(server: Server) -> schemathesis.BaseSchema:
    """The control API's own document, served under ``/api`` (its base URL)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json", config=config())
    schema.config.update(base_url=f"{server.url}/api")
    TALLY.install(schema)
    return schema


# Filters go on the lazy schema: one set on the fixture's schema would be replaced by these.
SERVING = schemathesis.pytest.from_fixture("serving_schema").include(path_regex=r"^/(predict|feedback)$")
CONTROL = schemathesis.pytest.from_fixture("control_schema")


def test_docs_list_predict_and_feedback(serving_schema: schemathesis.BaseSchema) -> None:
    """The filter above selects what it should: a renamed route would leave the fuzz tests nothing."""
    operations = {f"{r.ok().method.upper()} {r.ok().path}" for r in serving_schema.get_all_operations()}
    assert {"POST /predict", "POST /feedback"} <= operations


@fuzz_settings(FAST_EXAMPLES)
@SERVING.parametrize()
def test_fuzz_serving_without_a_token(case: schemathesis.Case) -> None:
    TALLY.send(case, "fast", None, timeout=60)


@fuzz_settings(FAST_EXAMPLES)
@SERVING.parametrize()
def test_fuzz_serving_as_admin(case: schemathesis.Case, admin: dict[str, str]) -> None:
    TALLY.send(case, "fast", admin, timeout=60)


@fuzz_settings(FAST_EXAMPLES)
@SERVING.parametrize()
def test_fuzz_serving_as_reader(case: schemathesis.Case, reader: dict[str, str]) -> None:
    TALLY.send(case, "fast", reader, timeout=60)


@fuzz_settings(CONTROL_EXAMPLES)
@CONTROL.parametrize()
def test_fuzz_control_api_through_bentoml_without_a_token(case: schemathesis.Case) -> None:
    TALLY.send(case, "fast", None, timeout=60)


@fuzz_settings(CONTROL_EXAMPLES)
@CONTROL.parametrize()
def test_fuzz_control_api_through_bentoml_as_admin(case: schemathesis.Case, admin: dict[str, str]) -> None:
    TALLY.send(case, "fast", admin, timeout=60)


@pytest.mark.slow
@fuzz_settings(SLOW_EXAMPLES)
@SERVING.parametrize()
def test_fuzz_serving_without_a_token_slow(case: schemathesis.Case) -> None:
    TALLY.send(case, "slow", None, timeout=60)


@pytest.mark.slow
@fuzz_settings(SLOW_EXAMPLES)
@SERVING.parametrize()
def test_fuzz_serving_as_admin_slow(case: schemathesis.Case, admin: dict[str, str]) -> None:
    TALLY.send(case, "slow", admin, timeout=60)


@pytest.mark.slow
@fuzz_settings(SLOW_EXAMPLES)
@SERVING.parametrize()
def test_fuzz_serving_as_reader_slow(case: schemathesis.Case, reader: dict[str, str]) -> None:
    TALLY.send(case, "slow", reader, timeout=60)


@pytest.mark.slow
@fuzz_settings(SLOW_CONTROL_EXAMPLES)
@CONTROL.parametrize()
def test_fuzz_control_api_through_bentoml_without_a_token_slow(case: schemathesis.Case) -> None:
    TALLY.send(case, "slow", None, timeout=60)


@pytest.mark.slow
@fuzz_settings(SLOW_CONTROL_EXAMPLES)
@CONTROL.parametrize()
def test_fuzz_control_api_through_bentoml_as_admin_slow(
    case: schemathesis.Case, admin: dict[str, str]
) -> None:
    TALLY.send(case, "slow", admin, timeout=60)


def test_fuzz_case_count(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str], server: Server
) -> None:
    all_selected(request, FAST_TESTS)
    assert TALLY.report(capsys, "serving fuzz, bentoml serve", "fast") >= FAST_FLOOR
    assert server.proc.poll() is None, "the server died"


@pytest.mark.slow
def test_fuzz_case_count_slow(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str], server: Server
) -> None:
    all_selected(request, SLOW_TESTS)
    assert TALLY.report(capsys, "serving fuzz, bentoml serve", "slow") >= SLOW_FLOOR
    assert server.proc.poll() is None, "the server died"


@pytest.mark.parametrize(
    "path", ["/api/models/a%0Ab/versions", "/api/models/sentiment/aliases/a%0Ab", "/api/reports/a%0Ab"]
)
def test_a_newline_in_an_api_path_answers_the_error_body(server: Server, path: str) -> None:
    r = server.http.get(path)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json", (r.headers, r.text)
    ErrorBody.model_validate(r.json())


def test_a_report_path_too_long_for_the_filesystem_is_not_a_500(server: Server) -> None:
    (Path(Settings(home=server.home).artifact_root) / "reports").mkdir(
        exist_ok=True
    )  # as after a drift check
    r = server.http.get("/api/reports/" + "a" * 256)
    assert r.status_code == 422, r.text  # refused before the filesystem is asked
    ErrorBody.model_validate(r.json())
