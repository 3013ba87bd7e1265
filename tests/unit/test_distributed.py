"""The torchrun launcher and the rank logic of a run under torchrun, without starting processes: the
command line, ``make_launcher("torchrun")``, the torchrun environment, what rank 0 sends the other
ranks (a plan or a stop, exactly once), how a lost rank is told from a failing one, and what the
other ranks do with the plan. A real 2-process job: tests/e2e/test_torchrun.py."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from contracts.train import TrainConfig
from monitor.settings import MonitorSettings
from orchestration.launch import SubprocessLauncher, TorchrunLauncher, make_launcher
from registry.entities import ArtifactRef, NewLabel, RunStatus, RunTrigger
from registry.errors import ConflictError, InvalidInputError
from retrain import challenger as run_module
from retrain import distributed
from retrain import run as retrain_run
from retrain.checkpoints import training_digest
from retrain.distributed import Channel, PeerLost, Ranks, Stop, TrainPlan
from retrain.hftrainer import training_args
from retrain.run import execute_run, follow_run
from tests.integration.test_retrain_run import CONFIG, finance_rows, open_home
from tests.textgen import topic_rows

GLOO_CLOSED = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
    "[127.0.0.1]:40357. This is typically caused by a remote worker crashing."
)
GLOO_RESET = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:24223: "
    "Connection reset by peer. This is typically caused by a remote worker hanging"
)
RANK0 = Ranks(rank=0, world_size=2, local_rank=0)
RANK1 = Ranks(rank=1, world_size=2, local_rank=1)


# --- the launcher ----------------------------------------------------------------------------------


def test_torchrun_command_line() -> None:
    launcher = TorchrunLauncher(nproc=4, python="/opt/py/bin/python")
    assert launcher.command(12) == [
        "/opt/py/bin/python",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "4",
        "-m",
        "retrain",
        "run",
        "--run-id",
        "12",
    ]
    assert isinstance(launcher, SubprocessLauncher)  # same active()/exited() semantics
    with pytest.raises(ValueError, match="at least 1"):
        TorchrunLauncher(nproc=0)


def test_make_launcher_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = make_launcher("torchrun")
    assert isinstance(launcher, TorchrunLauncher) and launcher.nproc == 2
    assert launcher.python == sys.executable
    monkeypatch.setenv("DRIFTLINE_TORCHRUN_NPROC", "3")
    from_env = make_launcher("torchrun")
    assert isinstance(from_env, TorchrunLauncher) and from_env.nproc == 3
    given = make_launcher("torchrun", MonitorSettings(torchrun_nproc=5))
    assert isinstance(given, TorchrunLauncher) and given.nproc == 5
    assert type(make_launcher("subprocess")) is SubprocessLauncher and make_launcher("none") is None
    with pytest.raises(ValueError, match="subprocess, torchrun, kubernetes, none"):
        make_launcher("slurm")


def test_launcher_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_LAUNCHER", "torchrun")
    monkeypatch.setenv("DRIFTLINE_TORCHRUN_NPROC", "8")
    settings = MonitorSettings()
    assert settings.launcher == "torchrun" and settings.torchrun_nproc == 8
    with pytest.raises(ValidationError):
        MonitorSettings(torchrun_nproc=0)
    with pytest.raises(ValidationError):
        MonitorSettings(launcher="mpirun")


def test_torchrun_launcher_reports_its_exit() -> None:
    false = shutil.which("false")
    assert false is not None
    launcher = TorchrunLauncher(nproc=2, python=false)  # "false -m torch.distributed.run ..." exits 1
    launcher.launch(7)
    assert launcher.pid(7) is not None
    deadline = time.monotonic() + 30
    while launcher.active() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert launcher.active() == [] and launcher.pid(7) is None
    assert launcher.exited() == {7: 1}
    assert launcher.exited() == {}


# --- the torchrun environment ----------------------------------------------------------------------


def test_ranks_from_the_torchrun_environment() -> None:
    assert distributed.from_env({}) is None  # no torchrun: a single process, as before
    assert distributed.from_env({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}) is None
    ranks = distributed.from_env(
        {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"}
    )
    assert ranks == Ranks(rank=3, world_size=4, local_rank=1) and not ranks.is_main
    assert distributed.from_env({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}) == RANK0
    assert RANK0.is_main
    for bad in ({"WORLD_SIZE": "2", "RANK": "2"}, {"WORLD_SIZE": "two"}, {"WORLD_SIZE": "0"}):
        with pytest.raises(InvalidInputError, match="torchrun environment"):
            distributed.from_env(bad)


def test_a_lost_peer_is_told_from_a_failing_rank() -> None:
    from torch.distributed import DistBackendError

    assert distributed.is_peer_failure(RuntimeError(GLOO_CLOSED))
    assert distributed.is_peer_failure(RuntimeError(GLOO_RESET))
    assert distributed.is_peer_failure(DistBackendError("NCCL communicator was aborted on rank 0"))
    try:
        try:
            raise RuntimeError(GLOO_CLOSED)
        except RuntimeError as inner:
            raise ValueError("while training") from inner
    except ValueError as outer:
        assert distributed.is_peer_failure(outer)  # the cause counts
    assert not distributed.is_peer_failure(ValueError("labels do not match"))
    assert not distributed.is_peer_failure(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not distributed.is_peer_failure(KeyboardInterrupt())


# --- what rank 0 sends -----------------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The messages rank 0 broadcasts (``distributed.share`` without a process group)."""
    messages: list[Any] = []

    def share(value: Any, ranks: Ranks) -> Any:
        assert ranks.is_main
        messages.append(value)
        return value

    monkeypatch.setattr(distributed, "share", share)
    return messages


def test_the_channel_sends_once(sent: list[Any]) -> None:
    single = Channel(None)
    single.send(Stop("x"))
    single.close("y")
    assert sent == [] and not single.distributed  # a single process talks to no one

    channel = Channel(RANK0)
    channel.send(Stop("skipped"))
    channel.send(Stop("again"))
    channel.close("ended")
    assert sent == [Stop("skipped")]

    quiet = Channel(RANK0)
    quiet.close("run 3 ended before training")
    assert sent[-1] == Stop("run 3 ended before training")
    with pytest.raises(ValueError, match="only rank 0"):
        Channel(RANK1)


def test_close_never_raises_when_the_others_are_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(value: Any, ranks: Ranks) -> Any:
        raise RuntimeError(GLOO_CLOSED)

    monkeypatch.setattr(distributed, "share", gone)
    Channel(RANK0).close("ended")


def test_rank0_tells_the_others_a_run_was_skipped(served_home: Path, sent: list[Any]) -> None:
    registry, artifacts = open_home(served_home)
    registry.add_labels(finance_rows(20))
    run = registry.create_run("sentiment", trigger=RunTrigger.DRIFT, config={})
    outcome = execute_run(run.id, registry, artifacts, CONFIG, ranks=RANK0)
    assert outcome.status is RunStatus.SKIPPED
    assert len(sent) == 1 and isinstance(sent[0], Stop) and "skipped" in sent[0].reason
    assert "at least 100" in sent[0].reason

    with pytest.raises(ConflictError):  # not claimable: the others are told to stop all the same
        execute_run(run.id, registry, artifacts, CONFIG, ranks=RANK0)
    assert len(sent) == 2 and sent[1] == Stop(f"run {run.id} ended before training")


def _labelled_run(registry: Any) -> Any:
    topical = [
        NewLabel(text=r["text"] + " now", label=r["label"], model_name="sentiment")
        for r in topic_rows(60, seed=5)
    ]
    registry.add_labels(topical + finance_rows(150))
    return registry.create_run("sentiment", trigger=RunTrigger.MANUAL, config={})


def test_rank0_sends_the_plan_and_a_lost_rank_leaves_the_run_running(
    served_home: Path, sent: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, artifacts = open_home(served_home)
    run = _labelled_run(registry)
    work_dir = served_home / "cache" / "runs" / str(run.id)
    calls: list[dict[str, Any]] = []

    def peer_dies(train: pd.DataFrame, labels: Any, cfg: TrainConfig, **kwargs: Any) -> None:
        calls.append({"train": train, "labels": list(labels), "cfg": cfg, **kwargs})
        raise RuntimeError(GLOO_CLOSED)

    monkeypatch.setattr(run_module, "fine_tune", peer_dies)
    with pytest.raises(PeerLost, match="a training process was lost"):
        execute_run(run.id, registry, artifacts, CONFIG, work_dir=work_dir, ranks=RANK0)

    (plan,) = sent
    assert isinstance(plan, TrainPlan) and plan.run_id == run.id
    (call,) = calls
    pd.testing.assert_frame_equal(plan.train, call["train"])  # the very rows rank 0 trains on
    assert plan.labels == call["labels"] == ["food", "sports", "weather"]
    assert plan.cfg == call["cfg"] and plan.cfg.max_length == 32  # resolved: the champion's length
    champion = registry.get_version_by_alias("sentiment", "champion")
    assert plan.champion == champion.artifact
    assert plan.checkpoint_dir == call["checkpoint_dir"] == work_dir / "checkpoints"
    assert call["ranks"] == RANK0
    # Like a killed process: nothing recorded, so the dispatcher's retry path retries the run.
    stays = registry.get_run(run.id)
    assert stays.status is RunStatus.RUNNING and stays.error is None
    assert [v.version for v in registry.list_versions("sentiment")] == [1, 2, 3]
    retried = registry.retry_or_fail_run(run.id, "process exited with 1", max_attempts=3, backoff_s=0)
    assert retried is not None and retried.status is RunStatus.QUEUED


def test_rank0_records_its_own_error(
    served_home: Path, sent: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, artifacts = open_home(served_home)
    run = _labelled_run(registry)

    def fails(*args: Any, **kwargs: Any) -> None:
        raise ValueError("a bug in training")

    monkeypatch.setattr(run_module, "fine_tune", fails)
    with pytest.raises(ValueError, match="a bug"):
        execute_run(run.id, registry, artifacts, CONFIG, ranks=RANK0)
    assert len(sent) == 1 and isinstance(sent[0], TrainPlan)
    failed = registry.get_run(run.id)
    assert failed.status is RunStatus.FAILED and "a bug in training" in (failed.error or "")


def test_a_single_process_run_sends_nothing(
    served_home: Path, sent: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, artifacts = open_home(served_home)
    run = _labelled_run(registry)
    seen: list[Any] = []

    def lost(*args: Any, **kwargs: Any) -> None:
        seen.append(kwargs["ranks"])
        raise RuntimeError(GLOO_CLOSED)  # whatever it says, one process has no peer to lose

    monkeypatch.setattr(run_module, "fine_tune", lost)
    with pytest.raises(RuntimeError, match="Connection closed"):
        execute_run(run.id, registry, artifacts, CONFIG)
    assert sent == [] and seen == [None]
    assert registry.get_run(run.id).status is RunStatus.FAILED


# --- what the other ranks do -----------------------------------------------------------------------


class FetchOnly:
    """An artifact store that can only fetch: a rank other than 0 reads the champion, nothing else."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fetched: list[ArtifactRef] = []

    def fetch(self, ref: ArtifactRef) -> Path:
        self.fetched.append(ref)
        return self.root / ref.sha256


def test_other_ranks_train_with_the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train = pd.DataFrame({"text": ["a b", "c d", "e f"], "label": ["x", "y", "x"]})
    plan = TrainPlan(
        run_id=9,
        train=train,
        labels=["x", "y"],
        cfg=TrainConfig(max_length=32),
        champion=ArtifactRef("sha256/abc", "abc"),
        checkpoint_dir=tmp_path / "runs" / "9" / "checkpoints",
    )
    received: list[Ranks] = []

    def share(value: Any, ranks: Ranks) -> Any:
        assert value is None  # a rank other than 0 sends nothing
        received.append(ranks)
        return plan

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(distributed, "share", share)
    monkeypatch.setattr(retrain_run, "fine_tune", lambda *a, **k: calls.append((a, k)))
    store = FetchOnly(tmp_path / "cache")
    assert follow_run(store, RANK1) is plan  # type: ignore[arg-type]
    assert received == [RANK1] and store.fetched == [plan.champion]
    ((args, kwargs),) = calls
    assert args == (train, ["x", "y"], plan.cfg)
    assert kwargs == {
        "base_path": tmp_path / "cache" / "abc",
        "progress": False,
        "checkpoint_dir": plan.checkpoint_dir,
        "ranks": RANK1,
    }


def test_other_ranks_stop_when_rank0_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "share", lambda value, ranks: Stop("run 9 skipped: too few labels"))
    monkeypatch.setattr(run_module, "fine_tune", lambda *a, **k: pytest.fail("nothing to train"))
    store = FetchOnly(tmp_path)
    assert follow_run(store, RANK1) is None  # type: ignore[arg-type]
    assert store.fetched == []
    monkeypatch.setattr(distributed, "share", lambda value, ranks: {"not": "a plan"})
    with pytest.raises(InvalidInputError, match="not a training plan"):
        follow_run(store, RANK1)  # type: ignore[arg-type]


# --- training arguments and checkpoints under DDP --------------------------------------------------


def test_ddp_training_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    import transformers

    # The arguments as given (a real TrainingArguments with use_cpu sets up devices at once, which
    # needs the process group of a real job: tests/e2e/test_torchrun.py).
    monkeypatch.setattr(transformers, "TrainingArguments", lambda **kwargs: kwargs)
    cfg = TrainConfig(batch_size=16)
    one = training_args(cfg, tmp_path, n_train=100, validate=True, keep=True, progress=False)
    assert one["per_device_train_batch_size"] == 16 and "use_cpu" not in one and "ddp_backend" not in one
    assert one["logging_steps"] == 1  # 7 steps per epoch, 1 epoch
    two = training_args(cfg, tmp_path, n_train=100, validate=True, keep=True, progress=False, world_size=2)
    assert two["per_device_train_batch_size"] == 8  # a step still sees 16 rows: the protocol is unchanged
    assert {
        k: v for k, v in two.items() if k not in ("per_device_train_batch_size", "use_cpu", "ddp_backend")
    } == {k: v for k, v in one.items() if k != "per_device_train_batch_size"}
    three = training_args(cfg, tmp_path, n_train=100, validate=True, keep=True, progress=False, world_size=3)
    assert three["per_device_train_batch_size"] == 6
    if not torch.cuda.is_available():
        # Without use_cpu the Trainer would train each CPU rank on its own, with no DDP at all.
        assert two["use_cpu"] is True and two["ddp_backend"] == "gloo"


def test_checkpoints_of_several_processes_resume_only_with_as_many() -> None:
    train = pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]})
    cfg, base = TrainConfig(), Path("/models/base")
    single = training_digest(train, ["x", "y"], cfg, base)
    assert training_digest(train, ["x", "y"], cfg, base, world_size=1) == single
    assert training_digest(train, ["x", "y"], cfg, base, world_size=2) != single
