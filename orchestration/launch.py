"""Launchers start retraining runs outside the scheduler's process. The dispatcher only knows this
interface: a child process per run (``subprocess``), or a ``torchrun`` job per run (several training
processes, DDP), or a Kubernetes Job per run (``orchestration/k8s.py``)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from monitor.settings import MonitorSettings

logger = logging.getLogger(__name__)


class Launcher(Protocol):
    def launch(self, run_id: int) -> None:
        """Start ``python -m retrain run --run-id RUN_ID`` somewhere; return at once."""
        ...

    def active(self) -> list[int]:
        """Runs this launcher started that are still going."""
        ...

    def exited(self) -> dict[int, int]:
        """Runs whose process ended since the last call, with its exit code (negative: the signal).

        The dispatcher compares them with the records at once: a run still ``running`` after its
        process ended was killed before it could record an outcome.
        """
        ...


class SubprocessLauncher:
    """Each run in a child process of the scheduler, with the scheduler's environment."""

    def __init__(self, python: str = sys.executable, env: dict[str, str] | None = None) -> None:
        self.python = python
        self.env = env
        self._children: dict[int, subprocess.Popen] = {}
        self._exited: dict[int, int] = {}

    def command(self, run_id: int) -> list[str]:
        return [self.python, "-m", "retrain", "run", "--run-id", str(run_id)]

    def launch(self, run_id: int) -> None:
        self._children[run_id] = subprocess.Popen(self.command(run_id), env=self.env or dict(os.environ))
        logger.info("started run %s (pid %s)", run_id, self._children[run_id].pid)

    def pid(self, run_id: int) -> int | None:
        """The process id of run ``run_id``'s child while it is going."""
        child = self._children.get(run_id)
        return child.pid if child is not None else None

    def active(self) -> list[int]:
        for run_id, child in list(self._children.items()):
            code = child.poll()
            if code is not None:
                logger.info("run %s process exited with %s", run_id, describe_exit(code))
                self._exited[run_id] = code
                del self._children[run_id]
        return sorted(self._children)

    def exited(self) -> dict[int, int]:
        self.active()
        found, self._exited = self._exited, {}
        return found


class TorchrunLauncher(SubprocessLauncher):
    """Each run as a ``torchrun`` job of ``nproc`` processes on this node, a child of the scheduler.

    ``python -m torch.distributed.run --standalone --nproc-per-node N -m retrain run --run-id ID``:
    rank 0 executes the run (claim, heartbeat, data, evaluation, gate, registration), every rank trains
    with DDP. ``torchrun`` exits non-zero when any rank fails or dies (it stops the others): the
    dispatcher then retries the run as it retries a killed subprocess, and the retry resumes from the
    checkpoints rank 0 wrote.
    """

    def __init__(
        self, nproc: int = 2, python: str = sys.executable, env: dict[str, str] | None = None
    ) -> None:
        if nproc < 1:
            raise ValueError(f"torchrun needs at least 1 process per node, not {nproc}")
        super().__init__(python=python, env=env)
        self.nproc = nproc

    def command(self, run_id: int) -> list[str]:
        return [
            self.python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(self.nproc),
            "-m",
            "retrain",
            "run",
            "--run-id",
            str(run_id),
        ]


def describe_exit(code: int) -> str:
    """``1``, or ``-9 (SIGKILL)`` for a child ended by a signal."""
    if code >= 0:
        return str(code)
    try:
        return f"{code} ({signal.Signals(-code).name})"
    except ValueError:
        return str(code)


def make_launcher(kind: str, settings: MonitorSettings | None = None) -> Launcher | None:
    """The launcher ``DRIFTLINE_LAUNCHER`` names; ``None`` for ``none`` (this scheduler only queues).

    ``torchrun`` takes its processes per run from ``settings`` (``DRIFTLINE_TORCHRUN_NPROC`` when none
    are given)."""
    if kind == "none":
        return None
    if kind == "subprocess":
        return SubprocessLauncher()
    if kind == "torchrun":
        if settings is None:
            from monitor.settings import MonitorSettings

            settings = MonitorSettings()
        return TorchrunLauncher(nproc=settings.torchrun_nproc)
    if kind == "kubernetes":
        from monitor.settings import MonitorSettings
        from orchestration.k8s import KubernetesLauncher, current_namespace, load_template

        settings = settings or MonitorSettings()
        if settings.k8s_job_template is None:
            raise ValueError("launcher 'kubernetes' needs DRIFTLINE_K8S_JOB_TEMPLATE, the run Job's manifest")
        return KubernetesLauncher(
            load_template(settings.k8s_job_template),
            settings.k8s_namespace or current_namespace(),
            node_selector=settings.k8s_node_selector,
            gpus=settings.k8s_gpus,
            image=settings.k8s_run_image,
        )
    raise ValueError(f"unknown launcher '{kind}' (known: subprocess, torchrun, kubernetes, none)")
