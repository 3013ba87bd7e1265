"""The label queue over a real registry (SQLite and, when configured, PostgreSQL): what is handed out, the
leases, the labeled ones left out; the API with bad input; the CLI's formats and the Label Studio round
trip."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from driftline.cli import main
from labeling.handout import hand_out
from registry import entities as e
from registry.artifacts import LocalArtifactStore
from registry.settings import Settings
from registry.store import Registry
from service.api.deps import token_cache
from tests.fakes import prediction_id
from tests.integration.test_registry import spec

LABELS = ("negative", "neutral", "positive")


def logged(n: int, *, model_version: int = 1, start: int = 0, seed: int = 0) -> list[e.NewPrediction]:
    """``n`` predictions with margins spread over (0, 1) and distinct random embeddings."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        top = 0.34 + 0.65 * (i / max(1, n - 1))
        rest = (1.0 - top) / 2
        scores = {"positive": top, "neutral": rest + 0.001, "negative": rest - 0.001}
        rows.append(
            e.NewPrediction(
                id=prediction_id(start + i),
                created_at=now - timedelta(seconds=n - i),
                text=f"logged text {start + i}",
                text_hash=f"{start + i:064x}",
                label="positive",
                scores=scores,
                model_name="sentiment",
                model_version=model_version,
                latency_ms=1.0,
                embedding=rng.normal(size=8).astype(np.float16).tobytes(),
            )
        )
    return rows


@pytest.fixture
def champion(registry: Registry) -> e.ModelVersion:
    registry.register_version(
        "sentiment",
        spec(1, calibration={"temperature": 1.0}),
        set_aliases=[e.CHAMPION],
        actor="t",
        reason="v1",
    )
    return registry.get_version_by_alias("sentiment", e.CHAMPION)


def test_hand_out_ranks_leases_and_never_offers_twice(registry: Registry, champion: e.ModelVersion) -> None:
    registry.add_predictions(logged(60))
    registry.add_predictions(logged(5, model_version=2, start=100))  # another version's: not the champion's
    first = hand_out(registry, champion, 10, handed_to="ann", random_share=0.2, seed=1)
    assert first.candidates == 60
    assert len(first.items) == 10 and [i.rank for i in first.items] == list(range(1, 11))
    assert sum(i.strategy == "random" for i in first.items) == 2
    margin_items = [i for i in first.items if i.strategy == "margin"]
    assert [i.margin for i in margin_items] == sorted(i.margin for i in margin_items)
    assert margin_items[0].prediction_id == prediction_id(0)  # the closest call of all
    assert all(i.model_version == 1 and set(i.scores) == set(LABELS) for i in first.items)
    assert first.expires_at - first.handed_out_at == timedelta(hours=24)

    second = hand_out(registry, champion, 100, handed_to="bob", seed=2)
    handed = {i.prediction_id for i in first.items}
    assert second.candidates == 50 and len(second.items) == 50
    assert handed.isdisjoint(i.prediction_id for i in second.items)
    assert hand_out(registry, champion, 10, handed_to="cid").items == []  # all leased

    # once a lease expires, its unlabeled items are offered again; labeled ones never are
    registry.add_labels(
        [e.NewLabel(label="neutral", prediction_id=first.items[0].prediction_id)], allowed_labels=LABELS
    )
    later = Registry(registry.engine, clock=lambda: datetime.now(UTC) + timedelta(hours=25))
    again = hand_out(later, champion, 100, handed_to="dan", random_share=0.0)
    offered = {i.prediction_id for i in again.items}
    assert len(offered) == 59 and first.items[0].prediction_id not in offered


def test_hand_out_refuses_bad_arguments_and_handles_an_empty_log(
    registry: Registry, champion: e.ModelVersion
) -> None:
    from registry.errors import InvalidInputError

    assert hand_out(registry, champion, 5, handed_to="ann").items == []
    for kwargs, words in (
        ({"limit": 0}, "limit must be 1 to 5000"),
        ({"limit": 5001}, "limit must be 1 to 5000"),
        ({"limit": 5, "random_share": 1.5}, "random_share"),
        ({"limit": 5, "lease_hours": 0.0}, "lease_hours"),
    ):
        with pytest.raises(InvalidInputError, match=words):
            hand_out(registry, champion, handed_to="ann", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def api(registry: Registry, champion: e.ModelVersion, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    from registry.settings import get_settings
    from service.api.app import create_control_app

    get_settings.cache_clear()
    token_cache.clear()
    registry.add_predictions(logged(30))
    _, secret = registry.tokens.create("labeling-team", "labeler", created_by="t")
    app = create_control_app(lambda: (registry, LocalArtifactStore(tmp_path / "artifacts")))
    with TestClient(app) as client:
        yield client, secret


def test_the_api_hands_out_to_the_token_and_answers_bad_input_with_the_field(
    api: tuple[TestClient, str],
) -> None:
    client, secret = api
    auth = {"Authorization": f"Bearer {secret}"}
    assert client.get("/label-queue?model=sentiment&limit=5").status_code == 401  # a lease is a write
    r = client.get("/label-queue?model=sentiment&limit=5", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["handed_to"] == "labeling-team" and body["model_version"] == 1
    assert [i["rank"] for i in body["items"]] == [1, 2, 3, 4, 5]
    assert {"prediction_id", "text", "scores", "strategy", "margin", "predicted_label"} <= set(
        body["items"][0]
    )
    tasks = client.get("/label-queue?model=sentiment&limit=3&format=label-studio", headers=auth)
    assert tasks.status_code == 200 and len(tasks.json()) == 3
    assert tasks.json()[0]["predictions"][0]["model_version"] == "sentiment v1"
    offered = {i["prediction_id"] for i in body["items"]} | {t["data"]["prediction_id"] for t in tasks.json()}
    assert len(offered) == 8  # nothing handed out twice

    unknown = client.get("/label-queue?model=nope&limit=5", headers=auth)
    assert unknown.status_code == 404 and "nope" in unknown.json()["message"]
    for query, field in (
        ("limit=0", "limit"),
        ("limit=5001", "limit"),
        ("limit=ten", "limit"),
        ("format=xml", "format"),
        ("random_share=2", "random_share"),
        ("lease_hours=0", "lease_hours"),
    ):
        bad = client.get(f"/label-queue?model=sentiment&{query}", headers=auth)
        assert bad.status_code == 422, (query, bad.text)
        assert field in json.dumps(bad.json()), (query, bad.text)


def cli(home: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["labels", *args], env={"DRIFTLINE_HOME": str(home)})


def test_cli_formats_and_the_label_studio_round_trip(served_home: Path, tmp_path: Path) -> None:
    store = Registry.open(Settings(home=served_home))
    champion = store.get_version_by_alias("sentiment", e.CHAMPION)
    rows = [
        e.NewPrediction(
            id=prediction_id(1000 + i),
            created_at=datetime.now(UTC),
            text=f"Served text number {i}",
            text_hash=f"{1000 + i:064x}",
            label=champion.labels[i % len(champion.labels)],
            scores={
                label: (0.9 if k == i % len(champion.labels) else 0.1 / (len(champion.labels) - 1))
                for k, label in enumerate(champion.labels)
            },
            model_name="sentiment",
            model_version=champion.version,
            latency_ms=1.0,
        )
        for i in range(12)
    ]
    store.add_predictions(rows)

    out = tmp_path / "queue.csv"
    done = cli(served_home, "queue", "--limit", "4", "--format", "csv", "--out", str(out))
    assert done.exit_code == 0, done.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("rank,prediction_id,text,predicted_label,margin,strategy,score_")
    assert len(lines) == 5

    jsonl = cli(served_home, "queue", "--limit", "3", "--format", "jsonl")
    assert jsonl.exit_code == 0, jsonl.output
    records = [json.loads(line) for line in jsonl.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 3 and {r["strategy"] for r in records} <= {"margin", "random"}

    tasks_file = tmp_path / "tasks.json"
    done = cli(served_home, "queue", "--limit", "5", "--format", "label-studio", "--out", str(tasks_file))
    assert done.exit_code == 0, done.output
    tasks = json.loads(tasks_file.read_text())
    assert len(tasks) == 5  # the 12 less the 7 handed out above
    # a labeler answers three of them in Label Studio (one cancelled, one left), and exports
    answer = champion.labels[0]
    for task in tasks[:3]:
        task["annotations"] = [
            {
                "result": [
                    {
                        "value": {"choices": [answer]},
                        "from_name": "label",
                        "to_name": "text",
                        "type": "choices",
                    }
                ],
                "was_cancelled": False,
            }
        ]
    tasks[3]["annotations"] = [{"result": [{"value": {"choices": [answer]}}], "was_cancelled": True}]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    before = store.count_labels("sentiment")
    done = cli(served_home, "import", str(export), "--format", "label-studio")
    assert done.exit_code == 0, done.output
    assert "imported 3 labels" in done.output
    assert store.count_labels("sentiment") == before + 3
    labeled = {label.prediction_id: label.label for label in store.list_labels("sentiment", limit=100_000)}
    assert all(labeled[t["data"]["prediction_id"]] == answer for t in tasks[:3])

    # a label outside the champion's set: refused, nothing written
    tasks[4]["annotations"] = [{"result": [{"value": {"choices": ["not-a-label"]}}]}]
    export.write_text(json.dumps(tasks[4:]))
    refused = cli(served_home, "import", str(export), "--format", "label-studio")
    assert refused.exit_code != 0 and "not-a-label" in refused.output
    assert store.count_labels("sentiment") == before + 3
    export.write_text("{not json")
    broken = cli(served_home, "import", str(export), "--format", "label-studio")
    assert broken.exit_code != 0 and "not a JSON file" in broken.output
    wrong = cli(served_home, "queue", "--format", "xml")
    assert wrong.exit_code == 2 and "xml" in wrong.output
    assert cli(served_home, "queue", "--limit", "0").exit_code == 2
    store.close()
