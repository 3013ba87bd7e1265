"""Two workspaces on one machine: each service keeps its own Prometheus files (its own BentoML home), so
starting or restarting one does not wipe what the other's ``/metrics`` reports."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from registry.entities import CHAMPION
from registry.settings import Settings
from registry.store import Registry
from tests.e2e.served import Server
from tests.models import copy_home

GAUGE = re.compile(r'^driftline_model_version\{[^}]*model="sentiment"[^}]*\} (\S+)', re.MULTILINE)


def metrics_version(server: Server) -> int | None:
    match = GAUGE.search(server.http.get("/metrics").text)
    return int(float(match.group(1))) if match else None


def settle(server: Server, version: int, timeout: float = 15.0) -> int | None:
    """The version ``/metrics`` reports once it is ``version`` (exported each second), or the last seen."""
    deadline = time.monotonic() + timeout
    while (seen := metrics_version(server)) != version and time.monotonic() < deadline:
        time.sleep(0.3)
    return seen


# slow (40 s): two services and a restart
@pytest.mark.slow
def test_a_restart_in_one_workspace_keeps_the_other_workspaces_metrics(
    served_template: Path, tmp_path: Path
) -> None:
    home_a, home_b = copy_home(served_template, tmp_path / "a"), copy_home(served_template, tmp_path / "b")
    registry = Registry.open(Settings(home=home_b))
    registry.set_alias("sentiment", CHAMPION, 2, actor="test", reason="workspace b serves v2")
    registry.close()
    a = Server(home_a, tmp_path / "a.log")
    b = None
    try:
        a.wait_ready()
        assert settle(a, 1) == 1
        b = Server(home_b, tmp_path / "b.log")  # a BentoML server empties its Prometheus folder at start
        b.wait_ready()
        assert settle(b, 2) == 2
        a.stop()
        a = Server(home_a, tmp_path / "a-again.log")
        a.wait_ready()
        assert settle(a, 1) == 1
        time.sleep(2.0)  # two more exports of each
        assert (metrics_version(a), metrics_version(b)) == (1, 2)
        assert b.http.post("/predict", json={"texts": ["x"]}).headers["X-Driftline-Model-Version"] == "2"
    finally:
        a.stop()
        if b is not None:
            b.stop()
