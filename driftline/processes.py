"""Starting Driftline's processes: ``driftline up`` runs the serving process on embedded defaults."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from registry.entities import CHAMPION
from registry.errors import NotFoundError
from registry.settings import Settings
from registry.store import Registry

logger = logging.getLogger(__name__)


def bentoml_executable() -> str:
    candidate = Path(sys.executable).with_name("bentoml")
    return str(candidate) if candidate.exists() else "bentoml"


def run_up(settings: Settings, *, host: str, port: int, scheduler: bool = True) -> int:
    env = dict(os.environ)
    if settings.api_token is None or not settings.api_token.get_secret_value():
        token = secrets.token_urlsafe(24)
        env["DRIFTLINE_API_TOKEN"] = token
        print(f"control API token (write endpoints): {token}", flush=True)
        print(
            f"  e.g. curl -H 'Authorization: Bearer {token}' -X POST http://{host}:{port}/api/models/"
            f"{settings.model_name}/rollback -H 'Content-Type: application/json' -d '{{\"reason\": \"...\"}}'",
            flush=True,
        )
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
    print(f"API docs: http://{host}:{port}/api/docs   readiness: http://{host}:{port}/readyz", flush=True)
    cmd = [bentoml_executable(), "serve", "service.app:Driftline", "--host", host, "--port", str(port)]
    procs = [subprocess.Popen(cmd, env=env)]
    if scheduler:
        procs.append(subprocess.Popen([sys.executable, "-m", "driftline", "scheduler"], env=env))

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    code = procs[0].wait()  # the service decides: when it ends, the scheduler is stopped too
    for proc in procs[1:]:
        if proc.poll() is None:
            proc.terminate()
        proc.wait()
    return code
