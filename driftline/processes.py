"""Starting Driftline's processes: ``driftline up`` runs the serving process and the scheduler on
embedded defaults; the demo and the replay start the same pair in the background, and say how to serve
their workspace again once they stopped it (:class:`ConsoleHint`)."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from common.filemodes import PRIVATE_UMASK, secure_home
from driftline.lifeline import wrap
from registry.entities import CHAMPION
from registry.errors import NotFoundError
from registry.settings import Settings
from registry.store import Registry

logger = logging.getLogger(__name__)


def bentoml_executable() -> str:
    candidate = Path(sys.executable).with_name("bentoml")
    return str(candidate) if candidate.exists() else "bentoml"


def driftline_executable() -> str:
    """This environment's ``driftline`` (the venv's, beside this Python), for commands printed to run."""
    candidate = Path(sys.executable).with_name("driftline")
    return str(candidate) if candidate.exists() else "driftline"


DEFAULT_PORT = 3000  # `driftline up --port`'s default


def console_url(host: str, port: int) -> str:
    """The review console of the service on ``host:port`` (mounted at ``/ui``, service/app.py)."""
    return f"http://{host}:{port}/ui/"


def bentoml_home(home: Path) -> Path:
    """The BentoML home of the workspace at ``home``: ``HOME/bentoml``, set as ``BENTOML_HOME`` for every
    service Driftline starts (replacing one set in the environment).

    BentoML keeps its Prometheus multiprocess files in ``BENTOML_HOME/prometheus_multiproc_dir`` and
    empties that folder whenever a server starts: with the default ``~/bentoml`` shared by two workspaces,
    starting one deleted the other's files, whose ``/metrics`` then showed the first one's values (a
    replay once waited 300 s for a hot swap that ``/predict`` already answered with). Driftline keeps
    nothing else there (models live in its own registry).
    """
    return (home / "bentoml").absolute()


@dataclass(frozen=True)
class ConsoleHint:
    """How to open the review console on a session's workspace. The session's own service (on a free
    port) is stopped before the summary is written, so its URL is dead: the hint is the command that
    serves the workspace again (``driftline up --no-scheduler``: no new checks or runs change what the
    session recorded) and the console's URL on ``up``'s default port."""

    command: str
    url: str
    decisions_url: str | None = None  # the console's list of promotion decisions, when there are some

    @classmethod
    def of(cls, settings: Settings, *, decisions: bool = False) -> ConsoleHint:
        env = [f"DRIFTLINE_HOME={shlex.quote(str(Path(settings.home).absolute()))}"]
        if settings.model_name != Settings.model_fields["model_name"].default:
            env.append(f"DRIFTLINE_MODEL_NAME={shlex.quote(settings.model_name)}")
        command = " ".join([*env, shlex.quote(driftline_executable()), "up", "--no-scheduler"])
        url = console_url("127.0.0.1", DEFAULT_PORT)
        return cls(command=command, url=url, decisions_url=url + "decisions" if decisions else None)

    def lines(self) -> list[str]:
        decisions = f" (decisions: {self.decisions_url})" if self.decisions_url else ""
        return [
            "console: this session's service has stopped; to review its records, run",
            f"  {self.command}",
            f"  then open {self.url}{decisions} and sign in with the token it prints "
            "(DRIFTLINE_API_TOKEN if set)",
        ]


@dataclass
class Processes:
    """The service (first) and the scheduler (if started), as child processes."""

    procs: list[subprocess.Popen] = field(default_factory=list)
    token: str | None = None

    @property
    def service(self) -> subprocess.Popen:
        return self.procs[0]

    @property
    def scheduler(self) -> subprocess.Popen | None:
        return self.procs[1] if len(self.procs) > 1 else None

    def stop(self, timeout: float = 20.0, procs: list[subprocess.Popen] | None = None) -> None:
        """SIGINT each process (BentoML and the scheduler shut down cleanly on it), then SIGKILL stragglers."""
        procs = self.procs if procs is None else procs
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_processes(
    settings: Settings,
    *,
    host: str,
    port: int,
    scheduler: bool = True,
    env: Mapping[str, str] | None = None,
    output: IO[str] | None = None,
) -> Processes:
    """Start ``bentoml serve`` (and ``driftline scheduler``) in ``env`` (default: this environment).

    Without a configured API token, one is generated for this run. ``output``: where the children's
    stdout and stderr go (inherited when ``None``). The children end when this process (this thread)
    ends, however it ends, on Linux (``driftline.lifeline``, which says what is not covered elsewhere);
    they create files private to this user (umask 077, ``common.filemodes``) and the service gets
    this workspace's own BentoML home (:func:`bentoml_home`).
    """
    child_env = dict(os.environ if env is None else env)
    child_env["BENTOML_HOME"] = str(bentoml_home(settings.home))
    token = child_env.get("DRIFTLINE_API_TOKEN") or (
        settings.api_token.get_secret_value() if settings.api_token else None
    )
    if not token:
        token = secrets.token_urlsafe(24)
        child_env["DRIFTLINE_API_TOKEN"] = token
    cmd = [bentoml_executable(), "serve", "service.app:Driftline", "--host", host, "--port", str(port)]
    stderr = subprocess.STDOUT if output is not None else None  # None: both streams inherited
    running = Processes(token=token)
    running.procs.append(
        subprocess.Popen(wrap(cmd), env=child_env, umask=PRIVATE_UMASK, stdout=output, stderr=stderr)
    )
    if scheduler:
        running.procs.append(
            subprocess.Popen(
                wrap([sys.executable, "-m", "driftline", "scheduler"]),
                env=child_env,
                umask=PRIVATE_UMASK,
                stdout=output,
                stderr=stderr,
            )
        )
    return running


def run_up(settings: Settings, *, host: str, port: int, scheduler: bool = True) -> int:
    secure_home(settings)
    registry = Registry.open(settings)  # creates an empty database, refuses an old one
    try:
        champion = registry.get_version_by_alias(settings.model_name, CHAMPION)
        print(f"serving {settings.model_name} v{champion.version} on http://{host}:{port}", flush=True)
    except NotFoundError:
        print(
            f"model '{settings.model_name}' has no champion yet: /predict answers 503 until one exists "
            "(`driftline bootstrap ...`); it is picked up without a restart",
            flush=True,
        )
    registry.close()
    generated = not (settings.api_token and settings.api_token.get_secret_value())
    running = start_processes(settings, host=host, port=port, scheduler=scheduler)
    if generated:
        print(f"control API token (write endpoints): {running.token}", flush=True)
        print(
            f"  e.g. curl -H 'Authorization: Bearer {running.token}' -X POST http://{host}:{port}/api/models/"
            f"{settings.model_name}/rollback -H 'Content-Type: application/json' -d '{{\"reason\": \"...\"}}'",
            flush=True,
        )
    print("named tokens (reader, labeler, reviewer, admin): driftline tokens create alice --role reviewer")
    print(f"API docs: http://{host}:{port}/api/docs   readiness: http://{host}:{port}/readyz", flush=True)
    sign_in = (
        "sign in with the token above"
        if generated
        else "sign in with DRIFTLINE_API_TOKEN or a named token of role reviewer"
    )
    print(f"console: {console_url(host, port)} ({sign_in})", flush=True)

    def forward(signum: int, _frame: object) -> None:
        for proc in running.procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    code = running.service.wait()  # the service decides: when it ends, the scheduler is stopped too
    for proc in running.procs[1:]:
        if proc.poll() is None:
            proc.terminate()
        proc.wait()
    return code
