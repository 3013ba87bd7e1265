"""What the benchmarks share: the offline environment, the demo data, repeated timing and a description
of the machine, so every result file says where and how its figures were taken."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import offline

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def go_offline() -> None:
    """Nothing is fetched at run time, whatever this shell says; set before transformers is imported."""
    offline.go_offline(force=True)


def demo_frame(seed: int) -> Any:
    """The VADER demo sentences (text, label, domain), shuffled with ``seed``; the CSV is cached under
    ``.driftline/cache/demo`` after the first fetch."""
    import pandas as pd

    from driftline.demo_data import fetch_vader

    frame = pd.read_csv(fetch_vader(ROOT / ".driftline" / "cache" / "demo"))
    frame = frame[frame["text"].map(lambda t: isinstance(t, str) and bool(t.strip()) and len(t) <= 2000)]
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)[["text", "label", "domain"]]


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs of one measurement."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def best(self) -> float:
        return min(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"median_s": self.median, "best_s": self.best, "runs_s": list(self.runs)}


def repeat(
    fns: dict[str, Callable[[], object]],
    times: int,
    prime: dict[str, Callable[[], object]] | None = None,
) -> dict[str, Timing]:
    """Run each of ``fns`` ``times`` times, interleaved (a, b, c, a, b, c, ...), keeping each duration:
    a burst of load from elsewhere on a shared machine then hits one run of each, not all runs of one.
    No warm-up: the caller decides. ``prime[name]``, where given, runs untimed just before each timed
    run of ``name`` (e.g. one small batch after a large one, whose freed memory the small one would
    otherwise pay to fault in again)."""
    prime = prime or {}
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(times):
        for name, fn in fns.items():
            if name in prime:
                prime[name]()
            started = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - started)
    return {name: Timing(tuple(r)) for name, r in runs.items()}


def machine(packages: Sequence[str] = ()) -> dict[str, Any]:
    """Cores this process may use, torch's thread count, platform and the versions that matter."""
    import torch

    versions = {}
    for name in ("torch", "numpy", "pandas", *packages):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
    }


def describe_machine(info: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return (
        f"machine: {info['cpus']} cores, torch threads {info['torch_threads']}, {info['platform']}, "
        f"Python {info['python']}\n         {versions}"
    )


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str))


def default_out(name: str, *, quick: bool) -> Path:
    """``bench/results/<name>.json``; a quick (smoke) run writes ``<name>-quick.json`` so it never
    replaces the real results."""
    return RESULTS / (f"{name}-quick.json" if quick else f"{name}.json")


def parse_bench_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, name: str, quick: dict[str, Any]
) -> argparse.Namespace:
    """Add ``--quick`` and ``--out`` and parse. ``--quick`` replaces the sizes with ``quick`` (a smoke
    run in well under a minute) and writes ``<name>-quick.json`` unless ``--out`` says otherwise."""
    parser.add_argument("--quick", action="store_true", help=f"tiny smoke run: {quick}")
    parser.add_argument("--out", type=Path, default=None, help="result file (default bench/results/)")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in quick.items():
            setattr(args, key, value)
    args.out = args.out or default_out(name, quick=args.quick)
    return args
