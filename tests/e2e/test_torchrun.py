"""A retraining run as a real ``torchrun`` job of 2 processes on CPU (DDP over gloo), started by the
torchrun launcher: rank 0 alone records the run (one version, one decision, the artifacts once); a
skipped run ends every rank; a rank SIGKILLed during training fails the job, the dispatcher's retry
path queues the run again, and a second job resumes from the checkpoints rank 0 wrote."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from orchestration.launch import TorchrunLauncher
from registry.entities import DecisionStatus, NewLabel, RunStatus, RunTrigger
from tests.integration.test_retrain_run import finance_rows, open_home
from tests.textgen import topic_rows

RUN_CONFIG = {
    "train": {"epochs": 3, "learning_rate": 5e-4, "max_length": 32, "seed": 3},
    "assembly": {"min_new_labels": 100, "replay_ratio": 0.5},
}


def wait_for(launcher: TorchrunLauncher, run_id: int, timeout: float = 420) -> int:
    deadline = time.monotonic() + timeout
    while launcher.active() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not launcher.active(), f"run {run_id} still going after {timeout} s"
    (code,) = launcher.exited().values()
    return code


def stored_artifacts(root: Path) -> set[str]:
    return {p.name for p in (root / "sha256").iterdir()}


def test_a_torchrun_job_promotes_once(served_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(served_home))  # the job's processes find the same registry
    registry, artifacts = open_home(served_home)
    topical = [
        NewLabel(text=r["text"] + " today", label=r["label"], domain="blog", model_name="sentiment")
        for r in topic_rows(60, seed=4)
    ]
    registry.add_labels(topical + finance_rows(160))
    run = registry.create_run("sentiment", trigger=RunTrigger.MANUAL, config=RUN_CONFIG)
    before = stored_artifacts(Path(artifacts.root))

    launcher = TorchrunLauncher(nproc=2)
    launcher.launch(run.id)
    assert wait_for(launcher, run.id) == 0

    done = registry.get_run(run.id)
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert done.attempts == 1 and done.candidate_version == 4
    versions = [v.version for v in registry.list_versions("sentiment")]
    assert versions == [1, 2, 3, 4]  # exactly one new version
    (decision,) = registry.list_decisions("sentiment")
    assert decision.status is DecisionStatus.PROMOTED and decision.run_id == run.id, decision.reasons
    assert registry.get_version_by_alias("sentiment", "champion").version == 4
    events = registry.list_alias_events("sentiment", "champion")
    assert [(e.from_version, e.to_version) for e in events] == [(1, 4), (None, 1)]  # one move
    v4 = registry.get_version("sentiment", 4)
    train = v4.metrics["train"]
    assert train["processes"] == 2 and train["resumed_from"] is None
    # DDP shares each step's 16 rows between the 2 ranks: a step per 16 rows, as in one process (each
    # rank training alone on all rows, 8 at a time, would take twice the steps)
    assert train["steps"] == round(train["epochs_run"] * -(-train["n_train"] // 16))
    # the model and the data snapshot, each stored once
    assert stored_artifacts(Path(artifacts.root)) - before == {v4.artifact_sha256, v4.data_snapshot_sha256}
    assert (Path(artifacts.root) / "reports" / "runs" / str(run.id) / "promotion.html").is_file()
    assert not (served_home / "cache" / "runs" / str(run.id)).exists()  # the work dir is removed


def test_a_skipped_run_ends_every_rank(served_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(served_home))
    registry, _ = open_home(served_home)
    registry.add_labels(finance_rows(20))
    run = registry.create_run("sentiment", trigger=RunTrigger.DRIFT, config=RUN_CONFIG)
    launcher = TorchrunLauncher(nproc=2)
    launcher.launch(run.id)
    assert wait_for(launcher, run.id, timeout=240) == 0  # rank 1 was told, and exited 0 untrained
    skipped = registry.get_run(run.id)
    assert skipped.status is RunStatus.SKIPPED and "at least 100" in (skipped.error or "")
    assert [v.version for v in registry.list_versions("sentiment")] == [1, 2, 3]


def worker(torchrun_pid: int, rank: int) -> psutil.Process | None:
    """The process of global rank ``rank`` among the torchrun job's children."""
    for child in psutil.Process(torchrun_pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "retrain" in child.cmdline():
                return child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def complete_checkpoints(folder: Path) -> list[str]:
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return [p.name for p in sorted(done, key=lambda p: int(p.name.split("-")[1]))]


# slow (about 50 s): two torchrun jobs; the promotion test above runs in `make test`
@pytest.mark.slow
def test_a_killed_rank_fails_the_job_and_the_retry_resumes(
    served_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(served_home))
    registry, _ = open_home(served_home)
    topical = [
        NewLabel(text=r["text"] + " lately", label=r["label"], model_name="sentiment")
        for r in topic_rows(40, seed=6)
    ]
    registry.add_labels(topical + finance_rows(160))
    # A checkpoint every 2 steps and no early stop: training goes on long after the first checkpoint.
    config = {
        **RUN_CONFIG,
        "train": {**RUN_CONFIG["train"], "epochs": 4, "eval_steps": 2, "early_stopping_patience": 0},
    }
    run = registry.create_run("sentiment", trigger=RunTrigger.MANUAL, config=config)
    checkpoints = served_home / "cache" / "runs" / str(run.id) / "checkpoints"

    launcher = TorchrunLauncher(nproc=2)
    launcher.launch(run.id)
    pid = launcher.pid(run.id)
    assert pid is not None
    deadline = time.monotonic() + 300
    while not complete_checkpoints(checkpoints) and launcher.active() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert complete_checkpoints(checkpoints), "no checkpoint was written"
    victim = worker(pid, rank=1)
    assert victim is not None, "rank 1 is not running"
    victim.kill()  # SIGKILL: the rank records nothing, rank 0 sees its peer vanish
    assert wait_for(launcher, run.id) != 0  # torchrun fails the job and stops rank 0

    dead = registry.get_run(run.id)
    assert dead.status is RunStatus.RUNNING  # no outcome recorded: like a killed process
    assert [v.version for v in registry.list_versions("sentiment")] == [1, 2, 3]
    assert registry.list_decisions("sentiment") == []
    kept = complete_checkpoints(checkpoints)
    assert kept

    # What the dispatcher does when a child it launched exited (MonitorScheduler.notice_exited_runs).
    retried = registry.retry_or_fail_run(run.id, "process exited with 1", max_attempts=3, backoff_s=0)
    assert retried is not None and retried.status is RunStatus.QUEUED

    launcher.launch(run.id)
    assert wait_for(launcher, run.id) == 0
    done = registry.get_run(run.id)
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert done.attempts == 2 and done.candidate_version == 4
    assert [v.version for v in registry.list_versions("sentiment")] == [1, 2, 3, 4]
    assert len(registry.list_decisions("sentiment")) == 1
    train = registry.get_version("sentiment", 4).metrics["train"]
    assert train["resumed_from"] == kept[-1]  # the latest complete checkpoint, on every rank
    assert train["processes"] == 2 and train["steps"] > int(kept[-1].split("-")[1])
    assert not checkpoints.parent.exists()
