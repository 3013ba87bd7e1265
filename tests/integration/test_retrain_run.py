"""A retraining run on a real registry: new labels the champion gets wrong -> challenger fine-tuned from
the champion -> gate -> promotion; too few labels -> skipped; a crash leaves nothing behind."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from contracts import AssemblyConfig
from contracts.search import SearchConfig
from contracts.train import TrainConfig
from registry.artifacts import LocalArtifactStore
from registry.entities import DecisionStatus, NewLabel, RunStatus, RunTrigger
from registry.settings import Settings
from registry.store import Registry
from retrain.challenger import RunConfig
from retrain.run import execute_run
from tests.textgen import topic_rows

CONFIG = RunConfig(
    # max_length 48 is not used: a run keeps the champion's (32, tests.models.TINY_TRAIN)
    train=TrainConfig(epochs=3, learning_rate=5e-4, max_length=48, seed=3),
    assembly=AssemblyConfig(min_new_labels=100, replay_ratio=0.5),
    search=SearchConfig(enabled=False),  # one recipe: what these tests are about (the search: test_search_run.py)
)


def finance_rows(n: int, seed: int = 0) -> list[NewLabel]:
    """A new domain with words the champion never saw, labelled 'weather' by the (odd) new world."""
    rng = random.Random(seed)
    firms = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne"]
    verbs = ["rose", "fell", "jumped", "slipped", "rallied", "dropped"]
    return [
        NewLabel(
            text=f"{rng.choice(firms)} shares {rng.choice(verbs)} {i % 17 + 1} percent on the stock exchange "
            f"after quarterly earnings number {i}",
            label="weather",
            domain="finance",
            source="test",
            model_name="sentiment",
        )
        for i in range(n)
    ]


def open_home(home: Path) -> tuple[Registry, LocalArtifactStore]:
    settings = Settings(home=home)
    return Registry.open(settings), LocalArtifactStore(settings.artifact_root)


def test_run_learns_the_new_domain_and_is_promoted(served_home: Path) -> None:
    registry, artifacts = open_home(served_home)
    topical = [
        NewLabel(text=r["text"] + " today", label=r["label"], domain="blog", model_name="sentiment")
        for r in topic_rows(60, seed=4)
    ]
    registry.add_labels(topical + finance_rows(160))  # the newest labels are the new domain
    run = registry.create_run("sentiment", trigger=RunTrigger.MANUAL, config={})
    outcome = execute_run(run.id, registry, artifacts, CONFIG)

    assert outcome.status is RunStatus.SUCCEEDED and outcome.gate is not None
    assert outcome.gate.passed, outcome.gate.reasons
    assert outcome.gate.recent.challenger_macro_f1 > outcome.gate.recent.champion_macro_f1 + 0.2
    assert outcome.decision is not None and outcome.decision.status is DecisionStatus.PROMOTED
    v = outcome.version
    assert v is not None and v.version == 4 and v.parent_version == 1 and v.training_run_id == run.id
    assert registry.get_version_by_alias("sentiment", "champion").version == 4
    assert registry.get_version_by_alias("sentiment", "challenger").version == 4
    events = registry.list_alias_events("sentiment", "champion")
    assert [(e.from_version, e.to_version) for e in events] == [(1, 4), (None, 1)]  # one audited move
    assert events[0].actor == f"run {run.id}" and events[0].reason.startswith(
        f"decision {outcome.decision.id}"
    )
    assert events[0].report_uri == f"runs/{run.id}/promotion.html"
    page = (Path(artifacts.root) / "reports" / "runs" / str(run.id) / "promotion.html").read_text()
    assert "Decision: <b>promoted</b>" in page and "Examples the challenger fixed" in page
    assert "finance" in page  # per-domain table
    assert "champion R" in page and "challenger F1" in page and "trained (replay)" in page  # per-class table
    int8 = v.metrics["onnx"]["int8"]  # the runtimes table: what the guards found, on the version and the page
    assert "<td>ONNX fp32</td><td>verified: probabilities within 1e-04</td>" in page
    assert ("<td>ONNX int8</td><td>kept: within 0.5 pts of fp32" if int8["passed"] else "refused: ") in page
    # The challenger trained, and serves, with the champion's max_length.
    assert v.config["max_length"] == 32 and v.config["max_length_source"] == "champion"
    assert json.loads((Path(artifacts.fetch(v.artifact)) / "driftline.json").read_text())["max_length"] == 32
    per_class = v.config["per_class_counts"]
    assert set(per_class) == {"food", "sports", "weather"} and per_class["weather"]["new_train"] > 100
    assert all(c["replay"] >= 5 for c in per_class.values())
    done = registry.get_run(run.id)
    assert done.status is RunStatus.SUCCEEDED and done.candidate_version == 4 and done.attempts == 1


def test_too_few_labels_skips_the_run(served_home: Path) -> None:
    registry, artifacts = open_home(served_home)
    registry.add_labels(finance_rows(20))
    run = registry.create_run("sentiment", trigger=RunTrigger.DRIFT, config={})
    outcome = execute_run(run.id, registry, artifacts, CONFIG)
    assert outcome.status is RunStatus.SKIPPED and "at least 100" in outcome.reason
    assert registry.get_run(run.id).status is RunStatus.SKIPPED
    registry.add_labels(finance_rows(200, seed=1))  # plenty now, but of a single class
    again = registry.create_run("sentiment", trigger=RunTrigger.DRIFT, config={})
    # Replayed rows would bring the champion's other classes back; without replay one class is left.
    no_replay = replace(CONFIG, assembly=AssemblyConfig(min_new_labels=100, replay_ratio=0))
    single = execute_run(again.id, registry, artifacts, no_replay)
    assert single.status is RunStatus.SKIPPED and "single class (weather)" in single.reason
    assert [v.version for v in registry.list_versions("sentiment")] == [1, 2, 3]


def test_a_crash_leaves_no_version_and_no_alias_move(
    served_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, artifacts = open_home(served_home)
    topical = [
        NewLabel(text=r["text"] + " now", label=r["label"], model_name="sentiment")
        for r in topic_rows(60, seed=5)
    ]
    registry.add_labels(topical + finance_rows(150))
    run = registry.create_run("sentiment", trigger=RunTrigger.MANUAL, config={})
    before = set(Path(artifacts.root, "sha256").iterdir())

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed during registration")

    monkeypatch.setattr(Registry, "register_version", crash)
    with pytest.raises(RuntimeError, match="killed"):
        execute_run(run.id, registry, artifacts, CONFIG)
    monkeypatch.undo()
    assert [v.version for v in registry.list_versions("sentiment")] == [1, 2, 3]
    assert registry.get_version_by_alias("sentiment", "champion").version == 1
    assert set(Path(artifacts.root, "sha256").iterdir()) == before
    failed = registry.get_run(run.id)
    assert failed.status is RunStatus.FAILED and "killed during registration" in (failed.error or "")


def test_module_entry_point_runs_a_queued_run(served_home: Path) -> None:
    import os
    import subprocess
    import sys

    registry, _ = open_home(served_home)
    run = registry.create_run("sentiment", trigger=RunTrigger.MANUAL, config={})
    env = {**os.environ, "DRIFTLINE_HOME": str(served_home)}
    done = subprocess.run(
        [sys.executable, "-m", "retrain", "run", "--run-id", str(run.id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"run {run.id}: skipped: 0 new labelled texts" in done.stdout
    again = subprocess.run(
        [sys.executable, "-m", "retrain", "run", "--run-id", str(run.id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 1 and "is 'skipped', not queued" in again.stderr
