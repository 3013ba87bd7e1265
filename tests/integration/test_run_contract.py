"""The run contract at its edges, on a real registry: the API refuses a misspelt key with a 422 that names
it and queues nothing; ``mode: manual`` through the API makes the run wait for a reviewer; a stored config
that no longer parses ends its run ``failed`` with the reason on the first attempt, never retried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from registry.artifacts import LocalArtifactStore
from registry.entities import DecisionStatus, NewLabel, RunStatus, RunTrigger
from registry.errors import InvalidInputError
from registry.store import Registry
from retrain.run import execute_run
from tests.integration.test_retrain_run import finance_rows, open_home
from tests.textgen import topic_rows

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Home = tuple[TestClient, Registry, LocalArtifactStore]


@pytest.fixture
def home_api(served_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """The control API on the served home's registry (a tiny champion, v1), with a write token."""
    from registry.settings import get_settings
    from service.api.app import create_control_app

    monkeypatch.setenv("DRIFTLINE_API_TOKEN", TOKEN)
    get_settings.cache_clear()
    registry, artifacts = open_home(served_home)
    with TestClient(create_control_app(lambda: (registry, artifacts))) as client:
        yield client, registry, artifacts


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"gate": {"min_improvment": 1}}, ["body", "gate", "min_improvment"]),
        ({"assembly": {"min_new_label": 1}}, ["body", "assembly", "min_new_label"]),
        ({"config": {"epoch": 2}}, ["body", "train", "epoch"]),
        ({"mode": "later"}, ["body", "mode"]),
        ({"reason": "x", "modes": "manual"}, ["body", "modes"]),
        ({"search": {"space": {"learning_rate": [1e-3, 1e-5]}}}, ["body", "search", "space", "learning_rate"]),
        ({"search": {"space": {"dropout": [0.1, 0.2]}}}, ["body", "search", "space", "dropout"]),
        ({"search": {"max_trials": 0}}, ["body", "search", "max_trials"]),
    ],
)
def test_a_misspelt_key_is_a_422_naming_it_and_queues_nothing(
    home_api: Home, body: dict[str, Any], where: list[str]
) -> None:
    client, registry, _ = home_api
    before = registry.list_runs("sentiment")  # the bootstrap's
    answer = client.post("/runs", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert [error["loc"] for error in answer.json()["detail"]] == [where]
    assert registry.list_runs("sentiment") == before


def test_mode_manual_through_the_api_waits_for_a_reviewer(home_api: Home) -> None:
    client, registry, artifacts = home_api
    topical = [
        NewLabel(text=r["text"] + " today", label=r["label"], domain="blog", model_name="sentiment")
        for r in topic_rows(60, seed=4)
    ]
    registry.add_labels(topical + finance_rows(160))
    body = {
        "reason": "try it, ask me first",
        "mode": "manual",
        "config": {"epochs": 3, "learning_rate": 5e-4, "seed": 3},  # the body's old name for train
        "assembly": {"min_new_labels": 100, "replay_ratio": 0.5},
    }
    queued = client.post("/runs", json=body, headers=AUTH)
    assert queued.status_code == 201, queued.text
    record = registry.get_run(queued.json()["id"]).config
    assert record["mode"] == "manual" and record["requested_by"] and record["train"]["learning_rate"] == 5e-4
    assert "search" not in record  # not asked: the run process's DRIFTLINE_SEARCH decides (off in tests)

    outcome = execute_run(queued.json()["id"], registry, artifacts)  # the run's config, as it was stored
    assert outcome.gate is not None and outcome.gate.passed, outcome.gate
    assert outcome.decision is not None and outcome.decision.status is DecisionStatus.PENDING_APPROVAL
    assert registry.get_version_by_alias("sentiment", "champion").version == 1  # not promoted by itself


def test_a_stored_config_that_no_longer_parses_fails_its_run_at_once(home_api: Home) -> None:
    _, registry, artifacts = home_api
    run = registry.create_run(
        "sentiment", trigger=RunTrigger.MANUAL, config={"gate": {"min_improvment": 1}, "reason": "old"}
    )
    with pytest.raises(InvalidInputError, match="gate.min_improvment"):
        execute_run(run.id, registry, artifacts)
    failed = registry.get_run(run.id)
    assert failed.status is RunStatus.FAILED and failed.attempts == 1
    assert failed.error is not None and "gate.min_improvment: unexpected keyword argument" in failed.error
    # the dispatcher sees its process exit 1: a run that ended failed is not retried
    assert registry.retry_or_fail_run(run.id, "process exited with 1", max_attempts=3, backoff_s=0) is None
    assert registry.get_run(run.id).status is RunStatus.FAILED and registry.next_queued_run("sentiment") is None
    assert registry.get_run(run.id).attempts == 1
