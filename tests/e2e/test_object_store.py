"""Artifacts in an S3-compatible object store (issue 14, point 5): `driftline bootstrap`, a retraining run
(`python -m retrain run`) and a real `bentoml serve` hot swap, with ``DRIFTLINE_ARTIFACT_ROOT=s3://...``
against a moto server on loopback, talked to by s3fs exactly as it would talk to S3. Every load verifies
the artifact's checksums; a damaged object is refused and the service keeps serving what it had."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from driftline.lifeline import wrap
from registry import entities as e
from registry.artifacts import MANIFEST
from registry.settings import Settings
from registry.store import Registry
from tests.e2e.served import AUTH, Server, free_port
from tests.integration.test_retrain_run import finance_rows
from tests.textgen import topic_rows

BUCKET = "driftline-e2e"
ROOT = f"s3://{BUCKET}/artifacts"
pytestmark = pytest.mark.slow  # about 2 minutes: a bootstrap, a run and a served swap


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[dict]:
    """A moto S3 server on a free loopback port with an empty bucket; the fsspec options that reach it."""
    s3fs = pytest.importorskip("s3fs", reason="s3fs is not installed (make venv installs it)")
    server = Path(sys.executable).with_name("moto_server")
    if not server.exists():
        pytest.skip("moto[server] is not installed (make venv installs it)")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(tmp_path / "moto.log", "wb") as log:
        proc = subprocess.Popen(wrap([str(server), "-p", str(port)]), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, (
                    tmp_path / "moto.log"
                ).read_text()
                time.sleep(0.2)
        options = {
            "key": "test",
            "secret": "test",
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        boto3 = pytest.importorskip("boto3")
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)
        fs = s3fs.S3FileSystem(**options)
        yield {"options": options, "fs": fs}
    finally:
        proc.terminate()
        proc.wait(10)


def test_bootstrap_run_and_hot_swap_on_an_object_store(
    s3: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    env = {
        "DRIFTLINE_HOME": str(home),
        "DRIFTLINE_ARTIFACT_ROOT": ROOT,
        "DRIFTLINE_ARTIFACT_STORAGE_OPTIONS": json.dumps(s3["options"]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    fs = s3["fs"]
    data = tmp_path / "topics.csv"
    pd.DataFrame(topic_rows(300, seed=11)).to_csv(data, index=False)
    driftline = str(Path(sys.executable).with_name("driftline"))
    boot = subprocess.run(
        [driftline, "bootstrap", "--data", str(data), "--text-col", "text", "--label-col", "label",
         "--domain-col", "domain", "--num-hidden-layers", "1", "--epochs", "3", "--learning-rate", "5e-4",
         "--max-length", "32", "--seed", "3", "--json"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert boot.returncode == 0, boot.stderr[-3000:]
    registry = Registry.open(Settings())
    v1 = registry.get_version_by_alias("sentiment", e.CHAMPION)
    assert v1.artifact_uri == f"{ROOT}/sha256/{v1.artifact_sha256}"
    assert fs.exists(f"{BUCKET}/artifacts/sha256/{v1.artifact_sha256}/{MANIFEST}")
    assert not (home / "artifacts").exists()  # nothing went to the local default

    server = Server(home, tmp_path / "serve.log", env=env)
    try:
        server.wait_ready()
        assert (
            server.http.post("/predict", json={"texts": ["The striker scored twice."]}).json()[
                "model_version"
            ]
            == 1
        )

        # a retraining run, in its own process, reads v1 from the store and writes v2 there
        registry.add_labels(finance_rows(160))
        run = registry.create_run(
            "sentiment",
            trigger=e.RunTrigger.MANUAL,
            config={
                "train": {"epochs": 3, "learning_rate": 5e-4, "seed": 3},
                "assembly": {"min_new_labels": 100, "replay_ratio": 0.5},
            },
        )
        retrain = subprocess.run(
            [sys.executable, "-m", "retrain", "run", "--run-id", str(run.id)],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=400,
        )  # fmt: skip
        assert retrain.returncode == 0, retrain.stderr[-3000:]
        assert registry.get_run(run.id).status is e.RunStatus.SUCCEEDED
        v2 = registry.get_version_by_alias("sentiment", e.CHAMPION)
        assert v2.version == 2 and fs.ls(f"{BUCKET}/artifacts/sha256/{v2.artifact_sha256}")
        report = registry.list_decisions("sentiment", limit=1)[0].report_uri
        assert report and fs.exists(f"{BUCKET}/artifacts/reports/{report}")
        assert server.http.get(f"/api/reports/{report}").status_code == 200  # served from the store
        _wait_for_version(server, 2)  # the hot swap fetched v2 from the store and verified it

        # damage v1 in the store and drop the service's cached copy: rolling back to it must be refused
        files = [
            f
            for f in fs.find(f"{BUCKET}/artifacts/sha256/{v1.artifact_sha256}")
            if f.endswith(".safetensors")
        ]
        assert files, fs.find(f"{BUCKET}/artifacts/sha256/{v1.artifact_sha256}")
        with fs.open(files[0], "wb") as fh:
            fh.write(b"not the weights that were registered")
        shutil.rmtree(home / "cache" / "artifacts" / v1.artifact_sha256)
        rolled = server.http.post(
            "/api/models/sentiment/rollback", json={"reason": "object-store test"}, headers=AUTH
        )
        assert rolled.status_code == 200, rolled.text
        deadline = time.monotonic() + 60
        while "driftline_model_refused_total 1.0" not in server.http.get("/metrics").text:
            assert time.monotonic() < deadline, "the damaged version was not refused"
            time.sleep(0.3)
        assert server.http.post("/predict", json={"texts": ["rain all week"]}).json()["model_version"] == 2
    finally:
        server.stop()
        registry.close()


def _wait_for_version(server: Server, version: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while server.http.post("/predict", json={"texts": ["x y z"]}).json()["model_version"] != version:
        assert time.monotonic() < deadline, f"the service did not swap to v{version}"
        time.sleep(0.3)
