"""The review commands: queue a run, list runs and decisions, approve a pending promotion, promote and
roll back by hand. Every alias move is audited with the person's name."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from driftline.cli import main
from registry.entities import DecisionStatus, NewLabel, RunTrigger
from registry.settings import Settings
from registry.store import Registry
from retrain.run import execute_run
from tests.integration.test_retrain_run import finance_rows
from tests.textgen import topic_rows


def cli(home: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env={"DRIFTLINE_HOME": str(home), "USER": "alice"})


def test_manual_mode_waits_for_approval(served_home: Path) -> None:
    from registry.artifacts import LocalArtifactStore

    queued = cli(served_home, "retrain", "--reason", "try it", "--mode", "manual", "--json")
    assert queued.exit_code == 0, queued.stderr
    assert json.loads(queued.stdout)["config"]["mode"] == "manual"

    registry = Registry.open(Settings(home=served_home))
    topical = [
        NewLabel(text=r["text"] + " again", label=r["label"], model_name="sentiment")
        for r in topic_rows(60, seed=6)
    ]
    registry.add_labels(topical + finance_rows(160, seed=4))
    run = registry.create_run(
        "sentiment",
        trigger=RunTrigger.MANUAL,
        config={
            "mode": "manual",
            "train": {"epochs": 3, "learning_rate": 5e-4, "max_length": 32, "seed": 3},
            "assembly": {"min_new_labels": 100, "replay_ratio": 0.5},
        },
    )
    outcome = execute_run(run.id, registry, LocalArtifactStore(Settings(home=served_home).artifact_root))
    assert outcome.decision is not None and outcome.decision.status is DecisionStatus.PENDING_APPROVAL
    assert registry.get_version_by_alias("sentiment", "champion").version == 1  # waits

    listed = cli(served_home, "reports")
    assert f"decision {outcome.decision.id}: sentiment v4 vs v1: pending_approval" in listed.stdout
    assert "recent held-out" in listed.stdout
    runs = cli(served_home, "runs")
    assert f"run {run.id:>4}  succeeded" in runs.stdout

    ok = cli(served_home, "approve", str(outcome.decision.id), "--reason", "looks right")
    assert ok.exit_code == 0 and "approved" in ok.stdout
    assert registry.get_version_by_alias("sentiment", "champion").version == 4
    again = cli(served_home, "reject", str(outcome.decision.id), "--reason", "too late")
    assert again.exit_code == 1 and "not pending approval" in again.stderr
    event = registry.list_alias_events("sentiment", "champion")[0]
    assert event.actor == "cli:alice" and "looks right" in event.reason


def test_promote_and_rollback_by_hand(served_home: Path) -> None:
    assert (
        cli(served_home, "promote", "2", "--reason", "canary").stdout.strip()
        == "sentiment/champion: v1 -> v2"
    )
    assert (
        cli(served_home, "rollback", "--reason", "bad canary").stdout.strip()
        == "sentiment/champion: v2 -> v1"
    )
    missing = cli(served_home, "promote", "9", "--reason", "x")
    assert missing.exit_code == 1 and "model 'sentiment' has no version 9" in missing.stderr
    audit = json.loads(cli(served_home, "audit", "--json").stdout)
    assert [(a["from_version"], a["to_version"], a["actor"]) for a in audit][:2] == [
        (2, 1, "cli:alice"),
        (1, 2, "cli:alice"),
    ]
