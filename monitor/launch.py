"""Launchers start retraining runs outside the scheduler's process. The dispatcher only knows this
interface; a ``torchrun`` or Kubernetes-Job launcher can take the subprocess one's place."""

from __future__ import annotations

import logging
import os
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


class SubprocessLauncher:
    """Each run in a child process of the scheduler, with the scheduler's environment."""

    def __init__(self, python: str = sys.executable, env: dict[str, str] | None = None) -> None:
        self.python = python
        self.env = env
        self._children: dict[int, subprocess.Popen] = {}

    def launch(self, run_id: int) -> None:
        cmd = [self.python, "-m", "retrain", "run", "--run-id", str(run_id)]
        self._children[run_id] = subprocess.Popen(cmd, env=self.env or dict(os.environ))
        logger.info("started run %s (pid %s)", run_id, self._children[run_id].pid)

    def active(self) -> list[int]:
        for run_id, child in list(self._children.items()):
            code = child.poll()
            if code is not None:
                logger.info("run %s process exited with %s", run_id, code)
                del self._children[run_id]
        return sorted(self._children)
