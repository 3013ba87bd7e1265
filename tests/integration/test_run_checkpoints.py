"""A retraining run's checkpoints: kept when its process dies, resumed by the retry of the same run id,
removed once the run ends; what the new version records about its training."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import AssemblyConfig
from contracts.search import SearchConfig
from contracts.train import TrainConfig
from registry.entities import NewLabel, RunStatus, RunTrigger
from registry.store import Registry
from retrain import lifecycle
from retrain.challenger import RunConfig
from retrain.run import execute_run
from tests.integration.test_retrain_run import finance_rows, open_home
from tests.textgen import topic_rows

# One epoch is enough here: what is checked is where the checkpoints go, not what is learnt.
CONFIG = RunConfig(
    train=TrainConfig(epochs=1, learning_rate=5e-4, max_length=32, seed=3, validation_fraction=0.2),
    assembly=AssemblyConfig(min_new_labels=100, replay_ratio=0.5),
    search=SearchConfig(enabled=False),  # one recipe: what these tests are about (the search: test_search_run.py)
)


def test_a_killed_run_is_resumed_by_its_retry(served_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry, artifacts = open_home(served_home)
    topical = [
        NewLabel(text=r["text"] + " lately", label=r["label"], model_name="sentiment")
        for r in topic_rows(30, seed=6)
    ]
    registry.add_labels(topical + finance_rows(90))
    run = registry.create_run("sentiment", trigger=RunTrigger.MANUAL, config={})
    work_dir = served_home / "cache" / "runs" / str(run.id)

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("SIGKILL after training")

    # A killed process records nothing: the run stays 'running' until the scheduler reaps it.
    monkeypatch.setattr(Registry, "register_version", killed)
    monkeypatch.setattr(lifecycle, "record_failure", lambda *args: None)
    with pytest.raises(KeyboardInterrupt):
        execute_run(run.id, registry, artifacts, CONFIG, work_dir=work_dir)
    monkeypatch.undo()
    kept = sorted(p.name for p in (work_dir / "checkpoints").glob("checkpoint-*"))
    assert kept, "the checkpoints of a killed run are kept for its retry"
    retried = registry.retry_or_fail_run(run.id, "process died", max_attempts=3, backoff_s=0)
    assert retried is not None and retried.status is RunStatus.QUEUED

    outcome = execute_run(run.id, registry, artifacts, CONFIG, work_dir=work_dir)
    assert outcome.status is RunStatus.SUCCEEDED and outcome.version is not None
    train = outcome.version.metrics["train"]
    assert train["resumed_from"] == kept[-1]  # the last checkpoint: no step trained again
    assert train["steps"] == int(kept[-1].split("-")[1])
    assert train["n"] == train["n_train"] + train["n_validation"] and train["n_validation"] >= 20
    # 90 finance rows labelled weather among 30 topical ones: imbalanced, so "auto" weighs by sqrt
    assert train["best_val_macro_f1"] is not None and train["weighting"] == "sqrt"
    assert len(train["class_weights"]) == 3
    assert {"epochs_run", "stopped_early", "best_val_accuracy", "class_weights", "counts"} <= set(train)
    assert not work_dir.exists()  # removed once the run succeeded
    assert registry.get_run(run.id).attempts == 2
    page = (Path(artifacts.root) / "reports" / "runs" / str(run.id) / "promotion.html").read_text()
    assert f"resumed from {kept[-1]}" in page


def test_a_skipped_run_removes_its_work_dir(served_home: Path) -> None:
    registry, artifacts = open_home(served_home)
    run = registry.create_run("sentiment", trigger=RunTrigger.DRIFT, config={})
    work_dir = served_home / "cache" / "runs" / str(run.id)
    (work_dir / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    outcome = execute_run(run.id, registry, artifacts, CONFIG, work_dir=work_dir)
    assert outcome.status is RunStatus.SKIPPED and not work_dir.exists()
