"""Two serving replicas and two schedulers on one PostgreSQL database (issue 14, point 6), as real
processes: a promotion swaps both replicas with 0 failed requests under load, labels posted to either
replica for predictions either one served count once, and one drift episode queues one run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from driftline.lifeline import wrap
from registry import entities as e
from registry.settings import Settings
from registry.store import Registry
from tests.conftest import _truncate_all, copy_registry
from tests.e2e.served import AUTH, Server
from tests.textgen import market_rows

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_home(
    served_home: Path, pg_migrated: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str]]:
    """``served_home``'s versions and champion registered in the session's emptied PostgreSQL database."""
    from registry.settings import get_settings

    _truncate_all(pg_migrated)
    copy_registry(f"sqlite:///{served_home / 'driftline.db'}", pg_migrated)
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", pg_migrated)
    get_settings.cache_clear()
    yield served_home, pg_migrated
    get_settings.cache_clear()


def replica(home: Path, url: str, tmp_path: Path, name: str) -> Server:
    return Server(
        home,
        tmp_path / f"{name}.log",
        env={
            "DRIFTLINE_DATABASE_URL": url,
            "DRIFTLINE_LOG_FLUSH_INTERVAL_S": "0.5",
            "DRIFTLINE_LOG_BATCH_SIZE": "200",
            "BENTOML_HOME": str(tmp_path / f"bentoml-{name}"),  # each replica its own metrics files
        },
    )


class Load:
    """Clients sending one text at a time to each replica in turn, recording every answer."""

    def __init__(self, urls: list[str], clients: int = 4) -> None:
        self.urls = urls
        self.stop = threading.Event()
        self.answers: dict[str, list[int]] = defaultdict(list)  # replica -> model versions, in order
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def _client(self, i: int) -> None:
        with httpx.Client(timeout=30) as http:
            n = i
            while not self.stop.is_set():
                url = self.urls[n % len(self.urls)]
                n += 1
                try:
                    r = http.post(f"{url}/predict", json={"texts": [f"the striker scored in minute {n}"]})
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(f"{url}: {exc!r}")
                    continue
                with self._lock:
                    if r.status_code != 200:
                        self.failures.append(f"{url}: {r.status_code} {r.text[:200]}")
                    else:
                        self.answers[url].append(r.json()["model_version"])

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_two_replicas_swap_together_and_count_each_label_once(
    pg_home: tuple[Path, str], tmp_path: Path
) -> None:
    home, url = pg_home
    a, b = replica(home, url, tmp_path, "a"), replica(home, url, tmp_path, "b")
    registry = Registry.open(Settings(home=home, database_url=url))
    try:
        a.wait_ready()
        b.wait_ready()
        with Load([a.url, b.url]) as load:
            time.sleep(2)
            promoted = a.http.post(
                "/api/models/sentiment/promote",
                json={"version": 2, "reason": "two-replica test"},
                headers=AUTH,
            )
            assert promoted.status_code == 200, promoted.text
            deadline = time.monotonic() + 60
            while not all(load.answers[u] and load.answers[u][-1] == 2 for u in (a.url, b.url)):
                assert time.monotonic() < deadline, {u: v[-5:] for u, v in load.answers.items()}
                time.sleep(0.2)
            time.sleep(1)
        assert load.failures == []
        for u in (a.url, b.url):
            versions = load.answers[u]
            assert versions[0] == 1 and versions[-1] == 2, u
            first_new = versions.index(2)
            assert set(versions[first_new:]) == {2}, f"{u} went back to v1 after serving v2"

        # predictions from one replica, labels through the other at once (its log may not have them yet)
        served = {
            s.url: [
                p["prediction_id"]
                for p in s.http.post("/predict", json={"texts": [f"t{i}" for i in range(6)]}).json()[
                    "predictions"
                ]
            ]
            for s in (a, b)
        }
        before = registry.count_labels("sentiment")
        for labeler, server in ((b, a), (a, b)):
            items = [{"prediction_id": pid, "label": "sports"} for pid in served[server.url]]
            r = labeler.http.post("/feedback", json={"items": items}, headers=AUTH)
            assert r.status_code == 200 and r.json()["accepted"] == 6, r.text
        assert registry.count_labels("sentiment") == before + 12
        labels = registry.list_labels("sentiment", limit=100)
        assert sorted(
            lab.prediction_id for lab in labels if lab.prediction_id in served[a.url] + served[b.url]
        ) == sorted(served[a.url] + served[b.url])  # each exactly once
        unknown = a.http.post(
            "/feedback", json={"items": [{"prediction_id": "f" * 32, "label": "sports"}]}, headers=AUTH
        )
        assert unknown.status_code == 404  # an id never issued: at once, no wait
    finally:
        a.stop()
        b.stop()
        registry.close()


def test_two_schedulers_queue_one_run_for_one_drift_episode(
    pg_home: tuple[Path, str], tmp_path: Path
) -> None:
    home, url = pg_home
    server = replica(home, url, tmp_path, "serve")
    env = {
        **os.environ,
        "DRIFTLINE_HOME": str(home),
        "DRIFTLINE_DATABASE_URL": url,
        "DRIFTLINE_CHECK_INTERVAL_S": "1",
        "DRIFTLINE_LEASE_TTL_S": "4",
        "DRIFTLINE_WINDOW_SIZE": "160",
        "DRIFTLINE_MIN_WINDOW_ROWS": "50",
        "DRIFTLINE_DRIFT_PERSISTENCE": "2",
        "DRIFTLINE_MIN_LABELS_FLOOR": "100",
        "DRIFTLINE_COOLDOWN_S": "0",
        "DRIFTLINE_LAUNCHER": "none",  # queue only: the test counts the runs
    }
    registry = Registry.open(Settings(home=home, database_url=url))
    schedulers: list[subprocess.Popen] = []
    try:
        server.wait_ready()
        finance = market_rows(200, seed=2)
        for start in range(0, len(finance), 20):
            chunk = finance[start : start + 20]
            answer = server.http.post("/predict", json={"texts": [r["text"] for r in chunk]}).json()
            items = [
                {"prediction_id": p["prediction_id"], "label": r["label"]}
                for p, r in zip(answer["predictions"], chunk, strict=True)
            ]
            assert server.http.post("/feedback", json={"items": items}, headers=AUTH).status_code == 200
        driftline = str(Path(sys.executable).with_name("driftline"))
        for name in ("s1", "s2"):
            with open(tmp_path / f"{name}.log", "wb") as log:
                schedulers.append(
                    subprocess.Popen(
                        wrap([driftline, "scheduler"]),
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + 90
        while not registry.list_runs("sentiment"):
            assert time.monotonic() < deadline, (tmp_path / "s1.log").read_text()[-3000:]
            assert all(p.poll() is None for p in schedulers), (tmp_path / "s2.log").read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(6)  # more checks on both schedulers, the lease changing hands or not
        runs = registry.list_runs("sentiment")
        assert len(runs) == 1 and runs[0].trigger is e.RunTrigger.DRIFT, [(r.id, r.trigger) for r in runs]
        checks = registry.list_drift_checks("sentiment")
        assert sum(c.decision == "retrain" for c in checks) == 1, [
            (c.id, c.decision, c.reason) for c in checks
        ]
    finally:
        for proc in schedulers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in schedulers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
        server.stop()
        registry.close()
