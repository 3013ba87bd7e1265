"""``driftline demo``: the whole loop on embedded defaults, in a fresh workspace.

1. bootstrap v1 on VADER movie-review snippets;
2. start the service and the scheduler (drift checks every few seconds: an accelerated schedule);
3. replay amazon reviews -> tweets -> NYT editorial sentences through ``/predict`` over HTTP, with labels
   sent through ``/feedback`` some rows later;
4. the monitor sees the drift, queues runs; the gate promotes (or refuses) challengers; the service
   hot-swaps to each new champion;
5. print a summary, and write ``timeline.png``, ``metrics.json`` and an ``index.html`` linking every
   drift and promotion report.

It is one replay session (``driftline/session.py``) on a stream built from the VADER sentences, with the
scheduler on its own (fast) clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from driftline.demo_data import fetch_vader
from driftline.replay_types import StreamRow
from driftline.session import Say, SessionConfig, Stream, run_session
from driftline.summary import StreamSummary

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
    bootstrap_rows: int = 3300  # v1's rows: 90 % to train, 10 % held out
    rows_per_domain: int = 900
    rate: float = 40.0  # rows per second sent to /predict
    check_interval_s: float = 4.0  # the accelerated schedule
    window: int = 150  # rows per reported window
    label_delay: int = 40
    seed: int = 7
    # The tour shows the loop in minutes: each job trains its one recipe unless asked (``--search``: v1
    # and each run search theirs, several times the training time; see docs/retraining.md)
    search: bool = False

    def session(self, data: Path, out: Path) -> SessionConfig:
        return SessionConfig(
            data=data,
            text_col="text",
            label_col="label",
            domain_col="domain",
            out=out,
            bootstrap_heldout=0.1,
            window=self.window,
            label_delay=self.label_delay,
            seed=self.seed,
            realtime=True,
            rate=self.rate,
            check_interval_s=self.check_interval_s,
            run_train={"epochs": 2},
            min_new_labels=200,
            monitor={"window_size": 300, "min_window_rows": 120},
            search=self.search,
        )


def demo_stream(data: pd.DataFrame, config: DemoConfig) -> Stream:
    """v1's rows from the bootstrap domain, then ``rows_per_domain`` seeded rows of each stream domain,
    domain after domain."""
    boot = data[data["domain"] == config.bootstrap_domain]
    boot = boot.sample(n=min(config.bootstrap_rows, len(boot)), random_state=config.seed)
    rows: list[StreamRow] = []
    for domain in config.stream_domains:
        part = data[data["domain"] == domain]
        part = part.sample(n=min(config.rows_per_domain, len(part)), random_state=config.seed)
        name = SHORT_NAMES.get(domain, domain)
        rows.extend(StreamRow(t, y, name) for t, y in zip(part["text"], part["label"], strict=True))
    bootstrap = boot[["text", "label"]].assign(domain=SHORT_NAMES.get(config.bootstrap_domain))
    return Stream(
        bootstrap=bootstrap.reset_index(drop=True), rows=rows, labels=tuple(sorted(data["label"].unique()))
    )


def run_demo(root: Path, config: DemoConfig = DemoConfig(), say: Say = print) -> StreamSummary:
    data_path = fetch_vader(root / "cache" / "demo")
    stream = demo_stream(pd.read_csv(data_path), config)
    domains = " -> ".join(SHORT_NAMES.get(d, d) for d in config.stream_domains)
    say(
        f"demo: v1 on {SHORT_NAMES.get(config.bootstrap_domain)}, then {domains} ({config.rows_per_domain} rows "
        f"each) at {config.rate:g} rows/s; data: {data_path}"
    )
    return run_session(config.session(data_path, root / "demo"), say, stream=stream)
