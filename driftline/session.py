"""One replay session, start to end: check the file, bootstrap version 1 on its first rows in a fresh
workspace, start the service and the scheduler, replay the rest over HTTP, stop everything, and score
what was served. ``driftline replay`` and ``driftline demo`` are both one session.

Deterministic by default: the replay asks for a drift check every ``check_every`` rows through the
control API and waits for it, and for any run it queues (and the promotion and hot swap that follow),
before it sends more rows; results then do not depend on the machine's speed. ``realtime`` lets the
scheduler check on its own clock instead, while rows are sent at ``rate`` per second.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from common.settings_env import PREFIX, to_env
from driftline.client import DriftlineClient, ServiceError
from driftline.preflight import Preflight, ServiceLimits, preflight
from driftline.processes import ConsoleHint, start_processes
from driftline.replay import Replayer, ReplayOptions, ended_early_reason
from driftline.replay_types import ReplayLog, StreamRow
from driftline.summary import StreamSummary, score_promotions, summarize, write_index
from driftline.timeline import write_timeline
from monitor.policy import PolicyConfig
from monitor.settings import MonitorSettings
from registry.errors import InvalidInputError
from registry.settings import Settings
from service.settings import ServeSettings

Say = Callable[[str], None]
POLICIES = ("drift", "never", "every-window")
LABEL_STRATEGIES = ("random", "queue")  # who picks the rows a label budget pays for
MIN_BOOTSTRAP_ROWS = 20


@dataclass(frozen=True)
class SessionConfig:
    data: Path
    text_col: str
    label_col: str
    out: Path
    time_col: str | None = None
    domain_col: str | None = None
    bootstrap_rows: int | None = 1000
    bootstrap_until: str | None = None
    window: int = 500
    label_delay: int = 100
    label_fraction: float = 1.0
    label_budget: float | None = None  # share of rows labeled, chosen by label_strategy
    label_strategy: str = "random"  # random | queue (driftline.replay)
    check_every: int = 250
    policy: str = "drift"
    limit: int | None = None
    seed: int = 0
    realtime: bool = False
    rate: float = 40.0  # rows per second, realtime only
    check_interval_s: float = 4.0  # realtime only
    batch_size: int = 8
    bootstrap_heldout: float = 0.2  # of the bootstrap rows: v1's evaluation and its reference profile
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig values for v1 and for every run
    run_train: dict[str, Any] = field(default_factory=dict)  # ... and over them, for the runs only
    # The fewest labels a run waits for: the trigger policy's floor (a large drop needs no more) and the
    # run's own minimum.
    min_new_labels: int = PolicyConfig.min_labels_floor
    # v1 and every run search their recipe (retrain.search) or not; None: as DRIFTLINE_SEARCH says
    search: bool | None = None
    # MonitorSettings values by field name, over the session's (``scheduler_env``): {"window_size": 300}
    monitor: dict[str, Any] = field(default_factory=dict)
    # A workspace that already holds version 1 of this stream (``prepare_v1``): copied instead of
    # training v1 again, so sessions that compare policies start from the very same model.
    v1_workspace: Path | None = None

    def labeled_share(self) -> float:
        return self.label_budget if self.label_budget is not None else self.label_fraction

    def __post_init__(self) -> None:
        checks = [
            ("--policy", self.policy in POLICIES, f"must be one of {POLICIES}"),
            ("--window", self.window >= 10, "must be >= 10"),
            ("--label-delay", self.label_delay >= 0, "must be >= 0"),
            ("--label-fraction", 0.0 < self.label_fraction <= 1.0, "must be in (0, 1]"),
            (
                "--label-budget",
                self.label_budget is None or 0.0 < self.label_budget <= 1.0,
                "must be in (0, 1]",
            ),
            (
                "--label-strategy",
                self.label_strategy in LABEL_STRATEGIES,
                f"must be one of {LABEL_STRATEGIES}",
            ),
            (
                "--label-budget",
                self.label_budget is None or self.label_fraction == 1.0,
                "replaces --label-fraction: give one of them",
            ),
            ("--check-every", self.check_every >= 10, "must be >= 10"),
            ("--limit", self.limit is None or self.limit >= 1, "must be >= 1"),
            (
                "--bootstrap-rows",
                self.bootstrap_rows is None or self.bootstrap_rows >= MIN_BOOTSTRAP_ROWS,
                f"must be >= {MIN_BOOTSTRAP_ROWS}",
            ),
        ]
        for flag, ok, rule in checks:
            if not ok:
                raise InvalidInputError(f"{flag} {rule}")
        if self.bootstrap_until is not None and self.time_col is None:
            raise InvalidInputError("--bootstrap-until needs --time-col")
        try:
            self.scheduler_env()  # a misspelt or refused monitor setting fails here, before anything starts
        except ValueError as exc:
            raise InvalidInputError(f"monitor settings: {exc}") from None

    def searches(self) -> bool:
        """Whether v1 and the runs search their recipe: ``search``, else this process's DRIFTLINE_SEARCH
        (the session's processes get their settings from the session, not from this environment)."""
        from registry.settings import get_settings

        return get_settings().search if self.search is None else self.search

    def run_config(self) -> dict[str, Any]:
        """What every run of this session records, whoever queues it (the monitor, or the replay for
        ``every-window``): the run contract's record of the training values (v1's max_length is kept
        unless ``run_train`` sets one) and the labels a run needs. A refused value raises here."""
        from contracts import RunSpec

        train = {k: v for k, v in self.train.items() if k != "max_length"}
        values: dict[str, Any] = {
            "train": {**train, **self.run_train},
            "assembly": {"min_new_labels": self.min_new_labels},
        }
        values["search"] = {"enabled": self.searches()}
        try:
            return RunSpec.model_validate(values).to_record()
        except ValueError as exc:
            raise InvalidInputError(f"run config: {exc}") from None

    def scheduler_env(self) -> dict[str, str]:
        """The monitor's settings for this session (the trigger policy, the window, the clock; ``monitor``
        over them) and the service's model poll, as the environment of its processes."""
        monitor = {
            "check_interval_s": self.check_interval_s if self.realtime else 86_400,
            "dispatch_interval_s": 0.5,
            "window_size": self.window,
            "min_window_rows": max(10, min(self.window, self.check_every) // 2),
            "drift_persistence": 2,
            "min_labels_floor": self.min_new_labels,
            "cooldown_s": 0,
            "retrain_on_drift": self.policy == "drift",
            "retrain": self.run_config(),
        }
        return {
            **to_env(MonitorSettings, **{**monitor, **self.monitor}),
            **to_env(ServeSettings, poll_interval_s=1),
        }


@dataclass
class Stream:
    bootstrap: pd.DataFrame
    rows: list[StreamRow]
    labels: tuple[str, ...]  # the whole file's label set (strings; integer labels as str(int)): v1's classes


def load_stream(config: SessionConfig, cache_dir: Path) -> Stream:
    """The checked file, in time order (file order without a time column), cut into v1's rows and the
    stream. Every problem is one line naming the file, the column and the rows."""
    from retrain.data import ColumnSpec, load_labeled_file

    columns = ColumnSpec(
        text=config.text_col, label=config.label_col, time=config.time_col, domain=config.domain_col
    )
    data = load_labeled_file(config.data, columns, cache_dir=cache_dir)
    frame = data.frame.reset_index(drop=True)
    if config.time_col is not None:
        frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    if config.bootstrap_until is not None:
        until = pd.Timestamp(config.bootstrap_until)
        until = until.tz_localize("UTC") if until.tzinfo is None else until.tz_convert("UTC")
        n_boot = int((frame["time"] < until).sum())
    else:
        n_boot = int(config.bootstrap_rows or 0)
    if n_boot < MIN_BOOTSTRAP_ROWS or len(frame) - n_boot < 1:
        raise InvalidInputError(
            f"{config.data}: {len(frame)} usable rows; the bootstrap takes {n_boot} and needs at least "
            f"{MIN_BOOTSTRAP_ROWS}, and at least 1 row must be left to replay"
        )
    boot, rest = frame.iloc[:n_boot], frame.iloc[n_boot:]
    if boot["label"].nunique() < 2:
        raise InvalidInputError(
            f"{config.data}: column '{config.label_col}' has one class in the {n_boot} bootstrap rows; "
            "version 1 needs at least 2"
        )
    if config.limit is not None:
        rest = rest.iloc[: config.limit]
    rows = [
        StreamRow(str(t), str(y), None if d is None or pd.isna(d) else str(d))
        for t, y, d in zip(rest["text"], rest["label"], rest["domain"], strict=True)
    ]
    return Stream(bootstrap=boot, rows=rows, labels=data.labels)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_workspace(out: Path) -> Path:
    home = out / "workspace"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    return home


def bootstrap_v1(settings: Settings, stream: Stream, config: SessionConfig, say: Say) -> None:
    from contracts.search import BOOTSTRAP_TRIALS, SearchConfig
    from contracts.train import TrainConfig
    from registry.artifacts import artifact_store
    from registry.store import Registry
    from retrain.bootstrap import BootstrapRequest, bootstrap
    from retrain.data import ColumnSpec

    path = settings.home / "bootstrap.parquet"
    timed = "time" in stream.bootstrap and stream.bootstrap["time"].notna().all()
    stream.bootstrap[["text", "label", "domain"] + (["time"] if timed else [])].to_parquet(path, index=False)
    log_path = settings.home / "bootstrap.log"
    say(f"[1/4] bootstrap v1 on {len(stream.bootstrap)} rows; log: {log_path}")
    # max_length from the data unless the session says (as `driftline bootstrap` does); runs keep v1's
    train = TrainConfig.from_dict(
        {"test_size": config.bootstrap_heldout, "seed": config.seed, "max_length": "auto", **config.train}
    )
    assert settings.cache_dir is not None  # Settings fills it from home
    with open(log_path, "w") as log, contextlib.redirect_stderr(log):  # progress bars, Trainer logs
        result = bootstrap(
            BootstrapRequest(
                data=path,
                columns=ColumnSpec(
                    text="text", label="label", domain="domain", time="time" if timed else None
                ),
                train=train,
                model_name=settings.model_name,
                # the whole file's classes, not only the bootstrap rows': a class that first appears late
                # in the stream is one v1 knows, so /feedback takes its labels
                labels=stream.labels,
                actor="driftline replay",
                search=SearchConfig(
                    enabled=config.searches(),
                    max_trials=BOOTSTRAP_TRIALS,
                ),
            ),
            Registry.open(settings),
            artifact_store(settings),
            cache_dir=settings.cache_dir / "datasets",
            progress=False,
        )
    m = result.metrics
    say(
        f"      v1 trained in {result.seconds:.0f} s: held-out accuracy {m['accuracy']:.3f}, "
        f"macro-F1 {m['macro_f1']:.3f} on {result.n_heldout} rows"
    )


V1_FILES = ("driftline.db", "artifacts")


def session_settings(home: Path) -> Settings:
    """Embedded defaults in ``home``, whatever this shell's DRIFTLINE_* say: the children get exactly these."""
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'driftline.db'}",
        artifact_root=str(home / "artifacts"),
        cache_dir=home / "cache",
        model_name="sentiment",
        api_token=None,
    )


def prepare_v1(config: SessionConfig, say: Say = print, *, stream: Stream | None = None) -> Path:
    """Check the file and train version 1 in ``config.out/workspace``; returns that workspace, for
    ``SessionConfig.v1_workspace`` of the sessions that follow."""
    if stream is None:
        with tempfile.TemporaryDirectory(prefix="driftline-replay-") as cache:
            stream = load_stream(config, Path(cache))
    home = fresh_workspace(config.out).absolute()
    bootstrap_v1(session_settings(home), stream, config, say)
    return home


def copy_v1(source: Path, home: Path, say: Say) -> None:
    """Version 1 from a prepared workspace: its records and its artifacts (loads find them by sha256
    under this workspace's artifact root; v1's recorded URI still names the copy it came from)."""
    missing = [name for name in V1_FILES if not (source / name).exists()]
    if missing:
        raise InvalidInputError(f"{source}: not a prepared workspace (missing {', '.join(missing)})")
    # SQLite's backup API, not a file copy: a WAL database keeps recent commits beside the file.
    with (
        contextlib.closing(sqlite3.connect(source / "driftline.db")) as src,
        contextlib.closing(sqlite3.connect(home / "driftline.db")) as dst,
    ):
        src.backup(dst)
    shutil.copytree(source / "artifacts", home / "artifacts")
    say(f"[1/4] version 1 copied from {source}")


def session_env(config: SessionConfig, settings: Settings) -> dict[str, str]:
    """The environment of the session's service and scheduler: this one without its DRIFTLINE_* values,
    then exactly the session's (its workspace, the monitor's settings and ``config.monitor``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    workspace = settings.model_dump(include={"home", "database_url", "artifact_root", "cache_dir"})
    return {**env, **to_env(Settings, **workspace), **config.scheduler_env()}


def check_limits(stream: Stream, config: SessionConfig, env: dict[str, str]) -> Preflight:
    """Count the rows over the limits of the service this session starts (read from its environment)."""
    from contracts.train import TrainConfig

    max_length = TrainConfig.from_dict({"max_length": "auto", **config.train}).max_length
    return preflight(
        stream.rows,
        ServiceLimits.from_env(env),
        batch_size=config.batch_size,
        max_length=max_length if isinstance(max_length, int) else None,
    )


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a supervisor, ``kill``) ends a session as Ctrl-C does: its processes stopped, what was
    replayed kept."""
    if threading.current_thread() is threading.main_thread():

        def raise_interrupt(_signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, raise_interrupt)


def run_session(config: SessionConfig, say: Say = print, *, stream: Stream | None = None) -> StreamSummary:
    started = time.monotonic()
    _interrupt_on_sigterm()
    if stream is None:  # checked before anything is created or started
        with tempfile.TemporaryDirectory(prefix="driftline-replay-") as cache:
            stream = load_stream(config, Path(cache))
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    home = fresh_workspace(out).absolute()
    settings = session_settings(home)
    say(f"workspace: {home}")
    env = session_env(config, settings)
    report = check_limits(stream, config, env)  # said before anything is trained or started
    for line in report.lines():
        say(line)
    if config.v1_workspace is not None:
        copy_v1(Path(config.v1_workspace), home, say)
    else:
        bootstrap_v1(settings, stream, config, say)
    options = replay_options(config, max_body_bytes=report.limits.max_body_bytes)
    log = serve_and_replay(config, settings, env, stream, options, say)
    say("[4/4] summary")
    summary = summarize(settings, log, window=config.window, seconds=time.monotonic() - started)
    summary.stream_rows = len(stream.rows)
    summary.preflight = report.to_dict()
    score_promotions(settings, [r.text for r in stream.rows], summary, log)
    write_outputs(summary, settings, config, out)
    for line in summary.lines():
        say(line)
    say(f"\nmetrics: {out / 'metrics.json'}\nreport: {out / 'index.html'}\ntimeline: {out / 'timeline.png'}")
    # the service has stopped: how to open the console on this workspace again
    for line in ConsoleHint.of(settings, decisions=bool(summary.decisions)).lines():
        say(line)
    return summary


def replay_options(config: SessionConfig, *, max_body_bytes: int | None) -> ReplayOptions:
    """How the replay sends the stream: who asks for checks (the replay every ``check_every`` rows, the
    scheduler's clock in realtime, nobody for ``every-window``, which queues a run per window itself)."""
    return ReplayOptions(
        batch_size=config.batch_size,
        label_delay=config.label_delay,
        label_fraction=config.label_fraction,
        label_budget=config.label_budget,
        label_strategy=config.label_strategy,
        rate=config.rate if config.realtime else None,
        check_every=None if config.realtime or config.policy == "every-window" else config.check_every,
        run_every=config.window if config.policy == "every-window" else None,
        run_config=config.run_config(),
        seed=config.seed,
        max_body_bytes=max_body_bytes,
    )


def serve_and_replay(
    config: SessionConfig,
    settings: Settings,
    env: dict[str, str],
    stream: Stream,
    options: ReplayOptions,
    say: Say,
) -> ReplayLog:
    """Start the service and the scheduler in ``env``, replay the stream to them, and stop them; the log
    of what was replayed, up to an interruption (Ctrl-C, a 5xx, a lost connection)."""
    port = free_port()
    log_path = settings.home / "processes.log"
    clock = (
        f"drift checks every {config.check_interval_s:g} s"
        if config.realtime
        else f"a check every {config.check_every} rows"
    )
    say(f"[2/4] start the service on :{port} and the scheduler ({clock}); logs: {log_path}")
    log = ReplayLog()
    with open(log_path, "w") as process_log:
        procs = start_processes(settings, host="127.0.0.1", port=port, env=env, output=process_log)
        client = DriftlineClient(
            f"http://127.0.0.1:{port}", model_name=settings.model_name, token=procs.token
        )
        try:
            client.wait_ready(180.0, alive=lambda: procs.service.poll() is None)
            say(
                f"[3/4] replay {len(stream.rows)} rows (policy {config.policy}); labels {config.label_delay} rows "
                f"late for {config.labeled_share():.0%} of rows"
                + (f", chosen by {config.label_strategy}" if config.label_budget is not None else "")
            )
            replayer = Replayer(client, options, progress=say)
            log = replayer.log
            replayer.run(stream.rows, on_batch=window_progress(config.window, say))
            if procs.scheduler is not None and not log.interrupted:
                procs.stop(procs=[procs.scheduler])  # no new checks; a run it started finishes on its own
                replayer.finish_runs(row=len(log.served))
        # Ctrl-C reaches the children too; the replay itself keeps its log on a 5xx or a lost connection,
        # these are the same outside it (waiting for the service, stopping the scheduler)
        except (KeyboardInterrupt, httpx.TransportError, ServiceError) as exc:
            log.interrupted = True
            log.ended_early = log.ended_early or ended_early_reason(exc)
            say(f"interrupted ({type(exc).__name__}): keeping what was replayed so far")
        finally:
            client.close()
            procs.stop()
    return log


def write_outputs(summary: StreamSummary, settings: Settings, config: SessionConfig, out: Path) -> None:
    write_timeline(summary, out / "timeline.png")
    write_index(summary, settings, out)
    values = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    (out / "metrics.json").write_text(
        json.dumps({"config": values, **summary.to_dict()}, indent=2, default=str)
    )


def window_progress(window: int, say: Say) -> Callable[[ReplayLog], None]:
    """A line per window of served rows: its domain(s), versions and accuracy."""
    state = {"next": window}

    def report(log: ReplayLog) -> None:
        while len(log.served) >= state["next"]:
            rows = log.served[state["next"] - window : state["next"]]
            correct = sum(r.label == r.predicted for r in rows)
            domains = "/".join(dict.fromkeys(str(r.domain) for r in rows))
            versions = "/".join(f"v{v}" for v in dict.fromkeys(r.version for r in rows))
            say(
                f"  rows {state['next'] - window:>5}-{state['next']:<5} {domains:<14} served by {versions:<6} "
                f"accuracy {correct / len(rows):.2f}"
            )
            state["next"] += window

    return report
