"""A real `bentoml serve` process on a loopback port, for the end-to-end tests: its own BentoML home under
the Driftline home, and it ends with the test process (``driftline.lifeline``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from common.offline import OFFLINE_ENV
from driftline.lifeline import wrap
from driftline.processes import bentoml_home

TOKEN = "e2e-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, home: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DRIFTLINE_HOME": str(home),
            "DRIFTLINE_API_TOKEN": TOKEN,
            "DRIFTLINE_POLL_INTERVAL_S": "0.3",
            # Rows reach the database only when a batch of 5000 fills or at shutdown: the last test
            # can then tell that stopping the server flushed them.
            "DRIFTLINE_LOG_FLUSH_INTERVAL_S": "600",
            "DRIFTLINE_LOG_BATCH_SIZE": "5000",
            **OFFLINE_ENV,
            "BENTOML_HOME": str(bentoml_home(home)),  # its own Prometheus files, as `driftline up` gives
            **(env or {}),
        }
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        bentoml = Path(sys.executable).with_name("bentoml")
        self.proc = subprocess.Popen(
            wrap(
                [
                    str(bentoml),
                    "serve",
                    "service.app:Driftline",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ]
            ),
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(base_url=self.url, timeout=30.0)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited early: see {self.log.name}"
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"server not ready after {timeout} s: see {self.log.name}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.http.close()
        self.log.close()
        return self.proc.returncode


def start_up(home: Path, port: int, log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """`driftline up --port PORT` on ``home`` in a process group of its own, its output in ``log_path``;
    returns once ``/readyz`` answers 200 (fails with the log if it exits or takes over 90 s)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("driftline")), "up", "--port", str(port)],
            env={**env, "DRIFTLINE_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"driftline up did not get ready:\n{log_path.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        time.sleep(0.3)
