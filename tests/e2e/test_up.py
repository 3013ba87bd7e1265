"""`driftline up` serves the registry's champion, generates and prints a write token, stops cleanly; a
SIGKILL of it ends its children too."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from orchestration.scheduler import LEASE
from registry.settings import Settings
from registry.store import Registry
from tests.e2e.served import free_port, start_up
from tests.models import copy_home


def test_up_serves_with_a_generated_token(served_template: Path, tmp_path: Path) -> None:
    home = copy_home(served_template, tmp_path / "home")
    port = free_port()
    env = {**os.environ, "DRIFTLINE_HOME": str(home), "DRIFTLINE_POLL_INTERVAL_S": "0.3"}
    env.pop("DRIFTLINE_API_TOKEN", None)
    driftline = Path(sys.executable).with_name("driftline")
    proc = subprocess.Popen(
        [str(driftline), "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        token = None
        lines = []
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            lines.append(line)
            if match := re.search(r"control API token \(write endpoints\): (\S+)", line):
                token = match.group(1)
        assert token, "".join(lines)
        while not lines[-1].startswith("console: ") and time.monotonic() < deadline:
            lines.append(proc.stdout.readline())  # type: ignore[union-attr]
        console = f"http://127.0.0.1:{port}/ui/"
        assert lines[-1] == f"console: {console} (sign in with the token above)\n", "".join(lines)
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        while time.monotonic() < deadline:
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        r = http.post("/predict", json={"texts": ["The striker scored twice."]})
        assert r.status_code == 200 and r.json()["model_version"] == 1
        assert http.get(console).status_code == 200  # the printed link opens the console
        assert (
            http.post("/api/models/sentiment/promote", json={"version": 2, "reason": "x"}).status_code == 401
        )
        ok = http.post(
            "/api/models/sentiment/promote",
            json={"version": 2, "reason": "up test"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert ok.status_code == 200, ok.text
        while (
            time.monotonic() < deadline
            and http.post("/predict", json={"texts": ["x y z"]}).json()["model_version"] != 2
        ):
            time.sleep(0.2)
        assert http.post("/predict", json={"texts": ["x y z"]}).json()["model_version"] == 2
        http.close()
        # The scheduler runs beside the service: it takes the leader lease.
        store = Registry.open(Settings(home=home))
        while store.get_lease(LEASE) is None and time.monotonic() < deadline:
            time.sleep(0.3)
        assert store.get_lease(LEASE) is not None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_sigkill_of_up_ends_the_service_its_workers_and_the_scheduler(
    served_template: Path, tmp_path: Path
) -> None:
    """SIGKILL cannot be forwarded: the children must end on their own (the parent-death signal), the
    scheduler releasing its lease, and the port must be free for the next `driftline up`."""
    home = copy_home(served_template, tmp_path / "home")
    port = free_port()
    proc = start_up(home, port, tmp_path / "up.log", {**os.environ, "DRIFTLINE_API_TOKEN": "t"})
    try:
        deadline = time.monotonic() + 90
        store = Registry.open(Settings(home=home))
        while store.get_lease(LEASE) is None and time.monotonic() < deadline:
            time.sleep(0.3)
        assert store.get_lease(LEASE) is not None  # the scheduler leads
        children = psutil.Process(proc.pid).children(recursive=True)
        commands = [" ".join(c.cmdline()) for c in children]
        assert any("driftline scheduler" in c for c in commands), commands
        assert any("_bentoml_impl.worker.service" in c for c in commands), commands  # BentoML's worker

        proc.kill()
        proc.wait()
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, [" ".join(p.cmdline()) for p in alive]
        assert store.get_lease(LEASE) is None  # the scheduler stopped cleanly: the next one leads at once
        store.close()
        with socket.socket() as s:  # as a server binds (SO_REUSEADDR): fails only while one listens
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group, if the test failed
