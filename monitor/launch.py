"""Launchers start retraining runs outside the scheduler's process. The dispatcher only knows this
interface; a ``torchrun`` or Kubernetes-Job launcher can take the subprocess one's place."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from typing import Protocol

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


def describe_exit(code: int) -> str:
    """``1``, or ``-9 (SIGKILL)`` for a child ended by a signal."""
    if code >= 0:
        return str(code)
    try:
        return f"{code} ({signal.Signals(-code).name})"
    except ValueError:
        return str(code)


def make_launcher(kind: str) -> Launcher | None:
    """The launcher ``DRIFTLINE_LAUNCHER`` names; ``None`` for ``none`` (this scheduler only queues)."""
    if kind == "none":
        return None
    if kind == "subprocess":
        return SubprocessLauncher()
    raise ValueError(f"unknown launcher '{kind}' (known: subprocess, none)")
