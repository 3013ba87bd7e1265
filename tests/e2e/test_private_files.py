"""Everything Driftline writes under its home is private to its user (files 0600, folders 0700), even
under umask 022: the records and artifacts of a bootstrap, the database (with its -wal/-shm files) after
`driftline up` served and logged a prediction, BentoML's files and the scheduler's."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

from driftline.cli import main
from registry.settings import Settings
from registry.store import Registry
from tests.e2e.served import free_port
from tests.textgen import topic_rows

TINY = ["--num-hidden-layers", "1", "--epochs", "1", "--max-length", "32", "--validation-fraction", "0"]


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 022 (files 0644, folders 0755) as a shell usually has; the process's own afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def readable_by_others(home: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(home):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            if stat.S_IMODE(path.lstat().st_mode) & 0o077:
                found.append(f"{path.relative_to(home)} {stat.filemode(path.lstat().st_mode)}")
    return found


def test_records_artifacts_and_logged_predictions_are_private(tmp_path: Path, open_umask: None) -> None:
    home = Path(os.environ["DRIFTLINE_HOME"])
    data = tmp_path / "topics.csv"
    pd.DataFrame(topic_rows(90, seed=5)).to_csv(data, index=False)
    result = CliRunner().invoke(
        main,
        ["bootstrap", "--data", str(data), "--text-col", "text", "--label-col", "label", *TINY],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    os.umask(0o022)  # the command line set 077 in this process: `up` must set it on its own

    port = free_port()
    with open(tmp_path / "up.log", "wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("driftline")), "up", "--port", str(port)],
            env={**os.environ, "DRIFTLINE_API_TOKEN": "t", "DRIFTLINE_POLL_INTERVAL_S": "0.3"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert http.post("/predict", json={"texts": ["The striker scored twice."]}).status_code == 200
        http.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)

    registry = Registry.open(Settings(home=home))
    assert registry.count_predictions() == 1
    registry.close()
    assert (home / "bentoml" / "prometheus_multiproc_dir").is_dir()
    assert readable_by_others(home) == []
