"""A replay's stream: time order, the bootstrap cut by rows or by time, integer labels, flag checks; v1
declares the whole file's label set; a session that a 5xx ends early still writes its metrics."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pandas as pd
import pytest

from driftline.client import DriftlineClient
from driftline.replay_types import StreamRow
from driftline.session import (
    SessionConfig,
    Stream,
    bootstrap_v1,
    copy_v1,
    load_stream,
    replay_options,
    run_session,
    session_env,
    session_settings,
)
from monitor.settings import MonitorSettings
from registry.errors import InvalidInputError
from registry.settings import Settings
from registry.store import Registry
from service.settings import ServeSettings


def config(tmp_path: Path, data: Path, **overrides: object) -> SessionConfig:
    values: dict = {"data": data, "text_col": "body", "label_col": "y", "out": tmp_path / "out"}
    values.update(overrides)
    return SessionConfig(**values)


def test_rows_follow_the_time_column_and_the_bootstrap_is_cut_by_time(tmp_path: Path) -> None:
    n = 60
    frame = pd.DataFrame(
        {
            "body": [f"text number {i}" for i in range(n)],
            "y": [i % 3 for i in range(n)],  # integer labels
            "when": pd.date_range("2026-01-01", periods=n, freq="h")[::-1].astype(str),  # newest first
            "src": ["a"] * n,
        }
    )
    data = tmp_path / "s.jsonl"
    frame.to_json(data, orient="records", lines=True)
    stream = load_stream(
        config(tmp_path, data, time_col="when", domain_col="src", bootstrap_until="2026-01-02T00:00:00"),
        tmp_path / "cache",
    )
    assert len(stream.bootstrap) == 24  # the first day's hours
    assert stream.rows[0].text == f"text number {n - 25}"  # the oldest row after the cut comes first
    assert stream.rows[-1].text == "text number 0"
    assert {r.label for r in stream.rows} == {"0", "1", "2"} and stream.rows[0].domain == "a"


def test_limit_and_row_count_cut(tmp_path: Path) -> None:
    data = tmp_path / "s.csv"
    pd.DataFrame({"body": [f"t {i}" for i in range(100)], "y": ["p", "n"] * 50}).to_csv(data, index=False)
    stream = load_stream(config(tmp_path, data, bootstrap_rows=30, limit=10), tmp_path / "cache")
    assert len(stream.bootstrap) == 30 and [r.text for r in stream.rows] == [f"t {i}" for i in range(30, 40)]
    assert all(r.domain is None for r in stream.rows)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"policy": "sometimes"}, "--policy"),
        ({"label_fraction": 0.0}, "--label-fraction"),
        ({"bootstrap_until": "2026-01-01"}, "--bootstrap-until needs --time-col"),
        ({"bootstrap_rows": 5}, "--bootstrap-rows"),
        ({"monitor": {"window_siz": 300}}, "no setting 'window_siz' .*did you mean 'window_size'"),
        ({"monitor": {"DRIFTLINE_WINDOW_SIZE": "300"}}, "no setting 'DRIFTLINE_WINDOW_SIZE'"),
        ({"monitor": {"window_size": 3}}, "monitor settings: MonitorSettings.window_size: .*got 3"),
    ],
)
def test_flags_are_checked(tmp_path: Path, overrides: dict, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        config(tmp_path, tmp_path / "x.csv", **overrides)


def test_the_processes_read_the_sessions_settings_and_none_of_this_shells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(tmp_path, tmp_path / "x.csv", min_new_labels=40, monitor={"window_size": 300})
    monkeypatch.setenv("DRIFTLINE_GUARD", "false")  # this shell's: the session's processes never see it
    env = session_env(cfg, session_settings(tmp_path / "home"))
    assert not {"DRIFTLINE_GUARD", "DRIFTLINE_MIN_NEW_LABELS"} & set(env)
    for name in [name for name in os.environ if name.startswith("DRIFTLINE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monitor, serve, settings = MonitorSettings(), ServeSettings(), Settings()
    assert (monitor.window_size, monitor.min_window_rows, monitor.min_labels_floor) == (300, 125, 40)
    assert (monitor.guard, monitor.retrain_on_drift, monitor.retrain.to_record()) == (True, True, cfg.run_config())
    assert (monitor.check_interval_s, monitor.cooldown_s, serve.poll_interval_s) == (86_400, 0, 1)
    assert settings.home == tmp_path / "home" and settings.cache_dir == tmp_path / "home" / "cache"


@pytest.mark.parametrize(
    ("overrides", "check_every", "run_every", "rate"),
    [
        ({}, 250, None, None),  # the replay asks for a check every check_every rows
        ({"policy": "every-window"}, None, 500, None),  # ... or queues a run per window itself
        ({"realtime": True, "rate": 9.0}, None, None, 9.0),  # the scheduler checks on its own clock
    ],
)
def test_who_asks_for_checks_and_runs(
    tmp_path: Path, overrides: dict, check_every: int | None, run_every: int | None, rate: float | None
) -> None:
    cfg = config(tmp_path, tmp_path / "x.csv", **overrides)
    options = replay_options(cfg, max_body_bytes=99)
    assert (options.check_every, options.run_every, options.rate) == (check_every, run_every, rate)
    assert options.run_config == cfg.run_config() and options.max_body_bytes == 99


def test_a_prepared_v1_must_hold_records_and_artifacts(tmp_path: Path) -> None:
    source = tmp_path / "not-a-workspace"
    source.mkdir()
    (source / "driftline.db").write_bytes(b"")
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(InvalidInputError, match="not a prepared workspace \\(missing artifacts\\)"):
        copy_v1(source, home, say=lambda _: None)
    assert list(home.iterdir()) == []  # nothing copied


def test_v1_is_bootstrapped_with_the_whole_files_label_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A class that first appears late in the stream is one of v1's classes, so /feedback takes its labels;
    integer labels are their string form in the stream and in the bootstrap alike."""
    import retrain.bootstrap

    data = tmp_path / "s.csv"
    labels = [i % 2 for i in range(40)] + [2] * 5  # class 2 only after the bootstrap rows
    pd.DataFrame({"body": [f"t {i}" for i in range(45)], "y": labels}).to_csv(data, index=False)
    cfg = config(tmp_path, data, bootstrap_rows=30)
    stream = load_stream(cfg, tmp_path / "cache")
    assert stream.labels == ("0", "1", "2") and set(stream.bootstrap["label"]) == {"0", "1"}
    assert [r.label for r in stream.rows[-5:]] == ["2"] * 5

    seen: list[Any] = []

    def fake_bootstrap(request: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(request)
        metrics = {"accuracy": 1.0, "macro_f1": 1.0}
        return SimpleNamespace(metrics=metrics, seconds=0.0, n_heldout=6)

    monkeypatch.setattr(retrain.bootstrap, "bootstrap", fake_bootstrap)
    home = tmp_path / "home"
    home.mkdir()
    bootstrap_v1(session_settings(home), stream, cfg, say=lambda _: None)
    (request,) = seen
    assert request.labels == ("0", "1", "2")
    written = pd.read_parquet(request.data)
    assert set(written["label"]) == {"0", "1"} and written["label"].map(type).eq(str).all()


def fake_v1(settings: Settings, *args: Any, **kwargs: Any) -> None:
    """The registered model and nothing else: the summary reads the (empty) records."""
    registry = Registry.open(settings)
    registry.ensure_model(settings.model_name)
    registry.close()


class FakeProcesses:
    token = None
    scheduler = None
    service = SimpleNamespace(poll=lambda: None)

    def stop(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_a_5xx_mid_stream_still_writes_metrics_for_what_was_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import driftline.session as session

    requests = {"predict": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            return httpx.Response(200)
        if request.url.path == "/api/runs":
            return httpx.Response(200, json=[])
        if request.url.path == "/feedback":
            n = len(json.loads(request.content)["items"])
            return httpx.Response(200, json={"accepted": n, "label_ids": list(range(n))})
        requests["predict"] += 1
        if requests["predict"] == 4:
            return httpx.Response(503, json={"error": "UNAVAILABLE", "message": "database is down"})
        texts = json.loads(request.content)["texts"]
        preds = [{"prediction_id": uuid.uuid4().hex, "label": "p"} for _ in texts]
        return httpx.Response(200, json={"model": "sentiment", "model_version": 1, "predictions": preds})

    def client(base_url: str, **kwargs: Any) -> DriftlineClient:
        made = DriftlineClient(base_url, **kwargs)
        made.http = httpx.Client(base_url=base_url, transport=httpx.MockTransport(handle))
        return made

    monkeypatch.setattr(session, "_interrupt_on_sigterm", lambda: None)
    monkeypatch.setattr(session, "bootstrap_v1", fake_v1)
    monkeypatch.setattr(session, "start_processes", lambda *args, **kwargs: FakeProcesses())
    monkeypatch.setattr(session, "DriftlineClient", client)
    rows = [StreamRow(f"t {i}", "p" if i % 2 else "n") for i in range(40)]
    stream = Stream(bootstrap=pd.DataFrame(), rows=rows, labels=("n", "p"))
    cfg = config(tmp_path, tmp_path / "unused.csv", check_every=1000, label_delay=2, window=10)
    said: list[str] = []
    summary = run_session(cfg, say=said.append, stream=stream)

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["rows"] == 24 == summary.rows  # 3 batches of 8
    assert (
        metrics["ended_early"].startswith("POST /predict answered 503")
        and "database is down" in (metrics["ended_early"])
    )
    assert metrics["rows_refused"] == 0 and metrics["stream_rows"] == 40
    assert metrics["preflight"]["over_chars"] == 0
    assert any(
        line.startswith("ended early after 24 of 40 rows: POST /predict answered 503")
        for line in summary.lines()
    )
    # the last lines say how to open the console on the workspace (the session's service has stopped)
    home = tmp_path / "out" / "workspace"
    driftline = Path(sys.executable).with_name("driftline")
    assert said[-3:] == [
        "console: this session's service has stopped; to review its records, run",
        f"  DRIFTLINE_HOME={shlex.quote(str(home))} {shlex.quote(str(driftline))} up --no-scheduler",
        "  then open http://127.0.0.1:3000/ui/ and sign in with the token it prints (DRIFTLINE_API_TOKEN if set)",
    ]
    assert "http://127.0.0.1:3000/ui/" in (tmp_path / "out" / "index.html").read_text()


def test_every_run_of_a_session_records_the_same_run_config(tmp_path: Path) -> None:
    """The monitor's runs and the replay's every-window runs train alike; runs keep v1's max_length."""
    cfg = config(
        tmp_path,
        tmp_path / "x.csv",
        train={"epochs": 2, "max_length": "auto"},
        run_train={"learning_rate": 5e-5},
        min_new_labels=100,
    )
    expected = {
        "train": {"epochs": 2, "learning_rate": 5e-5},
        "assembly": {"min_new_labels": 100},
        "search": {"enabled": False},  # this process's DRIFTLINE_SEARCH (tests set it false), written down
    }
    assert cfg.run_config() == expected
    searching = dataclasses.replace(cfg, search=True).run_config()
    assert searching["search"] == {"enabled": True} and searching["train"] == expected["train"]
    assert json.loads(cfg.scheduler_env()["DRIFTLINE_RETRAIN"]) == expected

    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(201, json={"id": 7})

    client = DriftlineClient("http://x", model_name="m", token=None)
    client.http = httpx.Client(base_url="http://x", transport=httpx.MockTransport(handler))
    assert client.queue_run("policy every-window: row 300", cfg.run_config()) == 7
    assert sent == [{"model_name": "m", "reason": "policy every-window: row 300", **expected}]
