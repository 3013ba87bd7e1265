"""The label queue's speed: a hand-out of 1,000 items over 100,000 logged predictions (target: under 1 s).

A scratch registry (SQLite in a temporary folder, or ``--database-url``, whose tables must be empty) gets
``--rows`` predictions of one champion, every one with a float16 embedding (the worst case: the service
logs one for ``DRIFTLINE_EMBEDDING_SAMPLE_RATE`` of them), texts of a few hundred characters, and three
labels; a tenth of them labeled. Then ``--repeats`` hand-outs of ``--limit`` items follow one another
(each leases its items, so the next ranks what is left), each timed from the call to its return: the
candidates' query, calibration, ranking with diversity over the embeddings it fetches, and the leases
written.

    .venv/bin/python -m bench.labelqueue            # 100k rows, 1,000 items, 3 hand-outs: about 1 min
    .venv/bin/python -m bench.labelqueue --quick    # 5k rows, 100 items

writes bench/results/labelqueue.json and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.common import machine, parse_bench_args, write_json

QUICK = {"rows": 5000, "limit": 100}
TARGET_S = 1.0


def fill(registry, rows: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    from registry import entities as e

    rng = np.random.default_rng(seed)
    labels = ("negative", "neutral", "positive")
    registry.register_version(
        "sentiment",
        e.NewModelVersion(
            base_model="bench",
            artifact=e.ArtifactRef(uri="mem://bench", sha256="0" * 64),
            labels=labels,
            metrics={},
            config={},
            calibration={"temperature": 1.3},
        ),
        set_aliases=[e.CHAMPION],
        actor="bench",
        reason="label queue benchmark",
    )
    start = datetime.now(UTC) - timedelta(days=1)
    batch = 2000
    for first in range(0, rows, batch):
        n = min(batch, rows - first)
        logits = rng.normal(size=(n, 3)) * 2
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        embeddings = rng.normal(size=(n, 384)).astype(np.float16)
        registry.add_predictions(
            [
                e.NewPrediction(
                    id=f"{first + i:032x}",
                    created_at=start + timedelta(seconds=first + i),
                    text=f"logged message {first + i}: " + "some words of a customer message " * 8,
                    text_hash=f"{first + i:064x}",
                    label=labels[int(probs[i].argmax())],
                    scores=dict(zip(labels, probs[i].round(6).tolist(), strict=True)),
                    model_name="sentiment",
                    model_version=1,
                    latency_ms=5.0,
                    embedding=embeddings[i].tobytes(),
                )
                for i in range(n)
            ]
        )
    labeled = rng.choice(rows, size=rows // 10, replace=False)
    registry.add_labels(
        [e.NewLabel(label=labels[int(i) % 3], prediction_id=f"{int(i):032x}") for i in labeled],
        allowed_labels=labels,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database-url", default=None, help="an empty database at the migration head")
    args = parse_bench_args(parser, argv, name="labelqueue", quick=QUICK)

    from labeling.handout import hand_out
    from registry.db import make_engine, upgrade
    from registry.entities import CHAMPION
    from registry.store import Registry

    with tempfile.TemporaryDirectory(prefix="driftline-bench-queue-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'driftline.db'}"
        engine = make_engine(url)
        upgrade(engine)
        registry = Registry(engine)
        started = time.perf_counter()
        fill(registry, args.rows, args.seed)
        fill_s = time.perf_counter() - started
        champion = registry.get_version_by_alias("sentiment", CHAMPION)
        runs = []
        for n in range(args.repeats):
            started = time.perf_counter()
            handout = hand_out(registry, champion, args.limit, handed_to="bench", seed=args.seed + n)
            seconds = time.perf_counter() - started
            runs.append(
                {
                    "seconds": seconds,
                    "candidates": handout.candidates,
                    "items": len(handout.items),
                    "random": sum(i.strategy == "random" for i in handout.items),
                }
            )
        registry.close()
    median = statistics.median(r["seconds"] for r in runs)
    report = {
        "machine": machine(["sqlalchemy", "numpy"]),
        "database": "sqlite" if args.database_url is None else url.split("://")[0],
        "rows": args.rows,
        "labeled": args.rows // 10,
        "limit": args.limit,
        "fill_seconds": fill_s,
        "runs": runs,
        "median_seconds": median,
        "target_seconds": TARGET_S,
        "met": median < TARGET_S,
        "quick": args.quick,
    }
    write_json(args.out, report)
    print(
        f"label queue: {args.limit} items over {args.rows:,} logged predictions ({args.rows // 10:,} labeled), "
        f"{report['database']}"
    )
    print(f"{'hand-out':<10}{'candidates':>12}{'items':>8}{'random':>8}{'seconds':>10}")
    for n, r in enumerate(runs, start=1):
        print(f"{n:<10}{r['candidates']:>12,}{r['items']:>8}{r['random']:>8}{r['seconds']:>10.3f}")
    print(f"median {median:.3f} s, target < {TARGET_S:.0f} s: {'met' if report['met'] else 'NOT met'}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
