"""The steps every training job shares, without a model: failure cleanup, the data snapshot, the metrics
of a candidate, and both models' outputs put together."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from registry.entities import ArtifactRef, DecisionStatus, RunStatus
from registry.errors import InvalidInputError
from retrain.compare import stacked
from retrain.lifecycle import (
    Candidate,
    JobArtifacts,
    Outputs,
    evaluate_candidate,
    label_ids,
    training_job,
    write_data_snapshot,
)
from retrain.run import _decision_status, _trigger_detail

LABELS = ("neg", "pos")


class FakeRegistry:
    def __init__(self, used: frozenset[str] = frozenset()) -> None:
        self.used = used
        self.finished: list[tuple[int, RunStatus, str | None]] = []

    def versions_using_artifact(self, sha256: str) -> list[tuple[str, int]]:
        return [("m", 1)] if sha256 in self.used else []

    def finish_run(self, run_id: int, status: RunStatus, error: str | None = None) -> None:
        self.finished.append((run_id, status, error))


class FakeArtifacts:
    def __init__(self, stored: frozenset[str] = frozenset()) -> None:
        self.stored = set(stored)
        self.deleted: list[str] = []

    def put_dir(self, local_dir: Path) -> tuple[ArtifactRef, bool]:
        sha = Path(local_dir).name
        is_new = sha not in self.stored
        self.stored.add(sha)
        return ArtifactRef(f"mem://{sha}", sha), is_new

    def delete(self, ref: ArtifactRef) -> None:
        self.deleted.append(ref.sha256)


def test_a_failed_job_removes_only_what_it_stored_and_no_version_uses() -> None:
    registry, artifacts = FakeRegistry(used=frozenset({"shared"})), FakeArtifacts(stored=frozenset({"old"}))
    with pytest.raises(RuntimeError, match="boom"), training_job(registry, artifacts, 7) as job:  # type: ignore[arg-type]
        for name in ("old", "new", "shared"):
            job.store(artifacts, Path(name))  # type: ignore[arg-type]
        raise RuntimeError("boom")
    assert [ref.sha256 for ref in job.created] == ["new", "shared"]  # "old" was there before the job
    assert artifacts.deleted == ["new"]  # "shared" belongs to a registered version
    assert registry.finished == [(7, RunStatus.FAILED, "RuntimeError: boom")]


def test_a_registered_version_keeps_its_artifacts_and_a_left_running_failure_records_nothing() -> None:
    registry, artifacts = FakeRegistry(), FakeArtifacts()
    with pytest.raises(KeyboardInterrupt), training_job(registry, artifacts, 3) as job:  # type: ignore[arg-type]
        job.store(artifacts, Path("model"))  # type: ignore[arg-type]
        job.registered = True
        raise KeyboardInterrupt
    assert artifacts.deleted == [] and registry.finished == [(3, RunStatus.FAILED, "KeyboardInterrupt: ")]

    with (
        pytest.raises(InvalidInputError),
        training_job(registry, artifacts, 4, leave_running=(InvalidInputError,)) as job,  # type: ignore[arg-type]
    ):
        job.store(artifacts, Path("data"))  # type: ignore[arg-type]
        raise InvalidInputError("peer gone")
    assert artifacts.deleted == ["data"] and [run for run, *_ in registry.finished] == [3]


def test_a_job_that_succeeds_keeps_everything() -> None:
    registry, artifacts = FakeRegistry(), FakeArtifacts()
    with training_job(registry, artifacts, 1) as job:  # type: ignore[arg-type]
        job.store(artifacts, Path("model"))  # type: ignore[arg-type]
    assert artifacts.deleted == [] and registry.finished == []
    assert JobArtifacts().created == [] and not JobArtifacts().registered


def test_label_ids_index_the_label_set() -> None:
    rows = pd.DataFrame({"label": ["pos", "neg", "pos"]})
    assert label_ids(rows, LABELS).tolist() == [1, 0, 1]
    with pytest.raises(KeyError):
        label_ids(pd.DataFrame({"label": ["maybe"]}), LABELS)


def test_the_data_snapshot_holds_both_sets_and_its_readme(tmp_path: Path) -> None:
    train = pd.DataFrame({"text": ["a", "b"], "label": ["neg", "pos"]})
    heldout = pd.DataFrame({"text": ["c"], "label": ["pos"]})
    out = write_data_snapshot(tmp_path / "snap" / "data", train, heldout, "two and one\n")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "heldout.parquet", "train.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "train.parquet"), train)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "heldout.parquet"), heldout)
    assert (out / "README.md").read_text() == "two and one\n"
    plain = write_data_snapshot(tmp_path / "plain", train, heldout)
    assert sorted(p.name for p in plain.iterdir()) == ["heldout.parquet", "train.parquet"]


def _outputs(labels: list[str], logits: list[list[float]]) -> Outputs:
    rows = pd.DataFrame({"text": [f"t{i}" for i in range(len(labels))], "label": labels, "domain": None})
    values = np.array(logits, dtype=np.float32)
    return Outputs(rows, values, values * 2)


def test_a_candidates_metrics_are_its_heldout_metrics_quality_and_training() -> None:
    heldout = _outputs(["neg", "pos", "pos", "neg"], [[2, 0], [0, 2], [2, 0], [2, 0]])
    trained = SimpleNamespace(summary=lambda: {"n_train": 5, "steps": 3})
    train = pd.DataFrame({"text": list("abcdef"), "label": ["neg", "pos"] * 3})
    candidate = Candidate(
        trained=trained,
        train=train,
        labels=LABELS,
        max_length=16,
        seed=0,
        heldout=heldout,
        profile=heldout,
        train_detail={"counts": {"new": 6}},
    )
    metrics = evaluate_candidate(candidate)
    assert metrics["n"] == 4 and metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["per_class"]["pos"]["recall"] == pytest.approx(0.5)
    assert metrics["quality"]["baseline"]["label"] in LABELS
    assert metrics["train"] == {"n": 6, "n_train": 5, "steps": 3, "counts": {"new": 6}}


def test_stacked_outputs_keep_the_first_rows_first() -> None:
    first = _outputs(["neg"], [[1, 0]])
    second = _outputs(["pos", "pos"], [[0, 1], [0, 3]])
    both = stacked(first, second)
    assert both.rows["label"].tolist() == ["neg", "pos", "pos"] and both.rows.index.tolist() == [0, 1, 2]
    assert both.logits.tolist() == [[1, 0], [0, 1], [0, 3]]
    assert both.pooled.tolist() == [[2, 0], [0, 2], [0, 6]]


def test_the_decision_follows_the_gate_and_the_mode() -> None:
    passed, failed = SimpleNamespace(passed=True), SimpleNamespace(passed=False)
    assert _decision_status(passed, "auto") is DecisionStatus.PROMOTED  # type: ignore[arg-type]
    assert _decision_status(passed, "manual") is DecisionStatus.PENDING_APPROVAL  # type: ignore[arg-type]
    assert _decision_status(failed, "auto") is DecisionStatus.REJECTED  # type: ignore[arg-type]
    assert _decision_status(failed, "manual") is DecisionStatus.REJECTED  # type: ignore[arg-type]


def test_the_trigger_detail_names_the_drift_check() -> None:
    assert _trigger_detail(SimpleNamespace(config={"reason": "asked"}, drift_check_id=None)) == "asked"  # type: ignore[arg-type]
    queued = SimpleNamespace(config={"reason": "score drift"}, drift_check_id=12)
    assert _trigger_detail(queued) == "drift check 12: score drift"  # type: ignore[arg-type]
    assert _trigger_detail(SimpleNamespace(config={}, drift_check_id=None)) == ""  # type: ignore[arg-type]
