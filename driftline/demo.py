"""``driftline demo``: the whole loop on embedded defaults, in a fresh workspace.

1. bootstrap v1 on VADER movie-review snippets;
2. start the service and the scheduler (drift checks every few seconds: an accelerated schedule);
3. replay amazon reviews -> tweets -> NYT editorial sentences through ``/predict`` over HTTP, with labels
   sent through ``/feedback`` some rows later;
4. the monitor sees the drift, queues runs; the gate promotes (or refuses) challengers; the service
   hot-swaps to each new champion;
5. print a summary, and write ``timeline.png``, ``summary.json`` and an ``index.html`` linking every
   drift and promotion report.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from driftline.demo_data import fetch_vader
from driftline.processes import start_processes
from driftline.replay import DriftlineClient, Replayer, ReplayLog, ReplayOptions, StreamRow
from driftline.summary import StreamSummary, score_promotions, summarize, write_index, write_timeline
from registry.settings import Settings

Say = Callable[[str], None]

SHORT_NAMES = {
    "movieReviewSnippets": "movies",
    "amazonReviewSnippets": "amazon",
    "tweets": "tweets",
    "nytEditorialSnippets": "nyt",
}


@dataclass(frozen=True)
class DemoConfig:
    bootstrap_domain: str = "movieReviewSnippets"
    stream_domains: tuple[str, ...] = ("amazonReviewSnippets", "tweets", "nytEditorialSnippets")
    bootstrap_rows: int = 3000  # training rows for v1
    bootstrap_heldout: float = 0.08  # share of the domain held out to evaluate v1 (about 850 rows)
    rows_per_domain: int = 900
    rate: float = 40.0  # rows per second sent to /predict
    batch_size: int = 8
    label_delay: int = 40
    window: int = 150  # rows per reported window
    seed: int = 7
    # the accelerated schedule and the trigger policy the scheduler runs with
    check_interval_s: float = 4.0
    monitor_window: int = 300
    min_window_rows: int = 120
    persistence: int = 2
    min_new_labels: int = 200
    cooldown_s: float = 0.0
    retrain: dict[str, Any] = field(
        default_factory=lambda: {"train": {"epochs": 2}, "assembly": {"min_new_labels": 200}}
    )

    def scheduler_env(self) -> dict[str, str]:
        return {
            "DRIFTLINE_CHECK_INTERVAL_S": str(self.check_interval_s),
            "DRIFTLINE_DISPATCH_INTERVAL_S": "1",
            "DRIFTLINE_WINDOW_SIZE": str(self.monitor_window),
            "DRIFTLINE_MIN_WINDOW_ROWS": str(self.min_window_rows),
            "DRIFTLINE_DRIFT_PERSISTENCE": str(self.persistence),
            "DRIFTLINE_MIN_NEW_LABELS": str(self.min_new_labels),
            "DRIFTLINE_COOLDOWN_S": str(self.cooldown_s),
            "DRIFTLINE_RETRAIN": json.dumps(self.retrain),
            "DRIFTLINE_POLL_INTERVAL_S": "1",
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stream_rows(data: pd.DataFrame, config: DemoConfig) -> list[StreamRow]:
    """``rows_per_domain`` seeded rows of each stream domain, domain after domain."""
    rows: list[StreamRow] = []
    for domain in config.stream_domains:
        part = data[data["domain"] == domain]
        part = part.sample(n=min(config.rows_per_domain, len(part)), random_state=config.seed)
        rows.extend(
            StreamRow(t, y, SHORT_NAMES.get(domain, domain))
            for t, y in zip(part["text"], part["label"], strict=True)
        )
    return rows


def fresh_home(root: Path) -> Path:
    home = root / "demo"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    return home


def bootstrap_v1(settings: Settings, data_path: Path, config: DemoConfig, say: Say) -> None:
    log_path = settings.home / "bootstrap.log"
    say(
        f"[1/4] bootstrap v1 on {SHORT_NAMES[config.bootstrap_domain]} ({config.bootstrap_rows} training rows); "
        f"log: {log_path}"
    )
    with open(log_path, "w") as log, contextlib.redirect_stderr(log):  # progress bars, Trainer logs
        result = _bootstrap(settings, data_path, config)
    m = result.metrics
    say(
        f"      v1 trained in {result.seconds:.0f} s: held-out accuracy {m['accuracy']:.3f}, "
        f"macro-F1 {m['macro_f1']:.3f} on {result.n_heldout} rows"
    )


def _bootstrap(settings: Settings, data_path: Path, config: DemoConfig) -> Any:
    from registry.artifacts import open_artifact_store
    from registry.store import Registry
    from retrain.bootstrap import BootstrapRequest, bootstrap
    from retrain.config import TrainConfig
    from retrain.data import ColumnSpec

    return bootstrap(
        BootstrapRequest(
            data=data_path,
            columns=ColumnSpec(text="text", label="label", domain="domain"),
            domains=(config.bootstrap_domain,),
            train=TrainConfig(
                max_train_examples=config.bootstrap_rows, test_size=config.bootstrap_heldout, seed=config.seed
            ),
            model_name=settings.model_name,
            actor="driftline demo",
        ),
        Registry.open(settings),
        open_artifact_store(settings.artifact_root, cache_dir=settings.cache_dir / "artifacts"),
        cache_dir=settings.cache_dir / "datasets",
        progress=False,
    )


def run_demo(root: Path, config: DemoConfig = DemoConfig(), say: Say = print) -> StreamSummary:
    started = time.monotonic()
    data_path = fetch_vader(root / "cache" / "demo")
    data = pd.read_csv(data_path)
    home = fresh_home(root)
    out = home / "report"
    out.mkdir()
    settings = Settings(home=home)
    say(f"workspace: {home}  (data: {data_path})")
    bootstrap_v1(settings, data_path, config, say)

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update({"DRIFTLINE_HOME": str(home.absolute()), **config.scheduler_env()})
    log_path = home / "processes.log"
    say(
        f"[2/4] start the service on :{port} and the scheduler (drift check every {config.check_interval_s:g} s); "
        f"logs: {log_path}"
    )
    with open(log_path, "w") as log_file:
        procs = start_processes(settings, host="127.0.0.1", port=port, env=env, output=log_file)
        client = DriftlineClient(
            f"http://127.0.0.1:{port}", model_name=settings.model_name, token=procs.token
        )
        try:
            client.wait_ready(180.0, alive=lambda: procs.service.poll() is None)
            rows = stream_rows(data, config)
            domains = " -> ".join(SHORT_NAMES.get(d, d) for d in config.stream_domains)
            say(
                f"[3/4] replay {len(rows)} rows ({domains}) at {config.rate:g} rows/s; labels {config.label_delay} rows late"
            )
            log = Replayer(
                client,
                ReplayOptions(
                    batch_size=config.batch_size,
                    label_delay=config.label_delay,
                    rate=config.rate,
                    seed=config.seed,
                ),
                progress=say,
            ).run(rows, on_batch=_window_progress(config.window, say))
        finally:
            client.close()
            procs.stop()
    say("[4/4] summary")
    summary = summarize(settings, log, window=config.window, seconds=time.monotonic() - started)
    score_promotions(settings, [r.text for r in rows], summary, log)
    write_timeline(summary, out / "timeline.png")
    write_index(summary, settings, out)
    (out / "summary.json").write_text(json.dumps({"config": asdict(config), **summary.to_dict()}, indent=2))
    for line in summary.lines():
        say(line)
    say(f"\nreport: {out / 'index.html'}\ntimeline: {out / 'timeline.png'}")
    return summary


def _window_progress(window: int, say: Say) -> Callable[[ReplayLog], None]:
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
