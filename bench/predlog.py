"""The prediction log on PostgreSQL at scale: how fast it is written, and how fast a drift check's window
query stays on a table of months.

1. **Write throughput**: ``Registry.add_predictions`` in the service's batches (500 rows, each with the
   float16 pooled embedding the monitor reads), rows/s, against the rate ``/predict`` served in the
   serving benchmark (``bench/results/serve.json``, texts/s with 16 clients).
2. **Window query** (``Registry.window``: the latest 500 rows one version served) on a table of 1 and 5
   million rows spread over 3 versions and 90 days, with and without the index of migration 0005
   (``ix_predictions_model_version_created``), median of repeated runs, and the plan PostgreSQL picks
   (``EXPLAIN (ANALYZE, BUFFERS)``).

The table is filled with ``INSERT ... SELECT generate_series`` (the rows need not be real texts for the
query's cost). Runs in a scratch database it creates on the server and drops at the end.

    .venv/bin/python -m bench.predlog [--server postgresql://postgres@127.0.0.1:5432/test]

writes bench/results/predlog.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.common import RESULTS, parse_bench_args, write_json

DEFAULT_SERVER = os.environ.get("DRIFTLINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
INDEX = "ix_predictions_model_version_created"
WINDOW = 500
EMBEDDING_DIM = 384  # MiniLM's pooled embedding, stored as float16


@contextmanager
def scratch_database(server: str, *, migrate: bool = True) -> Iterator[str]:
    """A new database on ``server``'s PostgreSQL (migrated to head unless ``migrate`` is false), dropped
    afterwards."""
    from sqlalchemy import create_engine

    from registry.db import make_engine, normalize_url, upgrade

    url = make_url(normalize_url(server))
    name = f"driftline_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    target = url.set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            engine = make_engine(target)
            upgrade(engine)
            engine.dispose()
        yield target
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure_writes(registry: Any, rows: int, batch: int = 500) -> dict[str, Any]:
    from registry.entities import NewPrediction

    rng = np.random.default_rng(0)
    embedding = rng.normal(size=EMBEDDING_DIM).astype(np.float16).tobytes()
    start = datetime.now(UTC)
    sent = 0
    started = time.perf_counter()
    while sent < rows:
        n = min(batch, rows - sent)
        registry.add_predictions(
            [
                NewPrediction(
                    id=uuid.uuid4().hex,
                    created_at=start + timedelta(milliseconds=sent + i),
                    text=f"a logged text of ordinary length, number {sent + i}, with a few more words in it",
                    text_hash=f"{sent + i:064x}",
                    label="positive",
                    scores={"negative": 0.1, "neutral": 0.2, "positive": 0.7},
                    model_name="write-bench",
                    model_version=1,
                    latency_ms=12.5,
                    embedding=embedding,
                )
                for i in range(n)
            ]
        )
        sent += n
    seconds = time.perf_counter() - started
    return {"rows": rows, "batch": batch, "seconds": seconds, "rows_per_s": rows / seconds}


def fill(engine: Any, total: int, have: int) -> None:
    """Grow ``predictions`` to ``total`` rows: 3 versions of model 'sentiment' over 90 days, no embeddings."""
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO predictions (id, created_at, text, text_hash, label, scores, embedding, model_name,
                                         model_version, latency_ms, truncated)
                SELECT md5(g::text), TIMESTAMPTZ '2026-09-01 00:00+00' + (g * INTERVAL '90 days') / CAST(:total AS bigint),
                       'logged text number ' || g, md5((g * 7)::text), 'positive',
                       '{"negative": 0.1, "positive": 0.9}', NULL, 'sentiment', 1 + (g * 3) / (CAST(:total AS bigint) + 1),
                       10.0, false
                FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS g
                """
            ),
            {"total": total, "start": have + 1, "stop": total},
        )
        conn.execute(text("ANALYZE predictions"))


def time_window(registry: Any, version: int, repeats: int) -> list[float]:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        rows = registry.window("sentiment", version, limit=WINDOW)
        runs.append(time.perf_counter() - started)
        assert len(rows) == WINDOW, len(rows)
    return runs


def explain(engine: Any, version: int) -> list[str]:
    with engine.connect() as conn:
        return [
            row[0]
            for row in conn.execute(
                text(
                    "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM predictions WHERE model_name = 'sentiment' "
                    "AND model_version = :v ORDER BY created_at DESC, id DESC LIMIT :n"
                ),
                {"v": version, "n": WINDOW},
            )
        ]


def execution_ms(plan: list[str]) -> float | None:
    """The ``Execution Time`` PostgreSQL reports at the end of an analyzed plan."""
    for line in plan:
        if line.strip().startswith("Execution Time:"):
            return float(line.split(":")[1].split()[0])
    return None


def served_rate() -> float | None:
    path = RESULTS / "serve.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    return report.get("b_predict_logging_on", {}).get("req_per_s")  # one text per request


def run(server: str, sizes: Sequence[int], write_rows: int, repeats: int) -> dict[str, Any]:
    from registry.db import make_engine
    from registry.store import Registry

    report: dict[str, Any] = {
        "server": make_url(server).render_as_string(hide_password=True),
        "window": WINDOW,
    }
    with scratch_database(server) as url:
        engine = make_engine(url)
        registry = Registry(engine)
        with engine.connect() as conn:
            report["postgres"] = conn.execute(text("SHOW server_version")).scalar()
        writes = measure_writes(registry, write_rows)
        rate = served_rate()
        writes["served_texts_per_s"] = rate
        writes["headroom"] = writes["rows_per_s"] / rate if rate else None
        report["writes"] = writes
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM predictions"))
        report["window_query"] = []
        have = 0
        for size in sorted(sizes):
            started = time.perf_counter()
            fill(engine, size, have)
            have = size
            filled_s = time.perf_counter() - started
            entry: dict[str, Any] = {"rows": size, "fill_s": filled_s}
            newest = time_window(registry, 3, repeats)  # the champion: the latest rows
            entry["indexed_ms"] = 1000 * statistics.median(newest)
            entry["indexed_old_version_ms"] = 1000 * statistics.median(time_window(registry, 1, repeats))
            entry["plan_indexed_old_version"] = explain(engine, 1)
            entry["sql_indexed_old_version_ms"] = execution_ms(entry["plan_indexed_old_version"])
            entry["plan_indexed"] = explain(engine, 3)
            entry["sql_indexed_ms"] = execution_ms(entry["plan_indexed"])
            with engine.begin() as conn:
                conn.execute(text(f"DROP INDEX {INDEX}"))
            try:
                entry["without_index_ms"] = 1000 * statistics.median(time_window(registry, 3, repeats))
                entry["plan_without_index"] = explain(engine, 3)
                entry["sql_without_index_ms"] = execution_ms(entry["plan_without_index"])
                entry["without_index_old_version_ms"] = 1000 * statistics.median(
                    time_window(registry, 1, repeats)
                )
                entry["plan_without_index_old_version"] = explain(engine, 1)
                entry["sql_without_index_old_version_ms"] = execution_ms(
                    entry["plan_without_index_old_version"]
                )
            finally:
                with engine.begin() as conn:
                    conn.execute(
                        text(
                            f"CREATE INDEX {INDEX} ON predictions (model_name, model_version, created_at, id)"
                        )
                    )
            entry["speedup"] = entry["without_index_ms"] / entry["indexed_ms"]
            entry["speedup_old_version"] = (
                entry["without_index_old_version_ms"] / entry["indexed_old_version_ms"]
            )
            report["window_query"].append(entry)
        registry.close()
    return report


def print_table(report: dict[str, Any]) -> None:
    w = report["writes"]
    print(f"PostgreSQL {report['postgres']}; window = latest {report['window']} rows of one version")
    rate = f"{w['served_texts_per_s']:.0f}" if w["served_texts_per_s"] else "-"
    headroom = f"{w['headroom']:.0f}x" if w["headroom"] else "-"
    print("| measure | result |")
    print("|---|---|")
    print(f"| log writes (batches of {w['batch']}, with embeddings) | {w['rows_per_s']:,.0f} rows/s |")
    print(f"| /predict served (bench.serve, 16 clients, 1 text each) | {rate} texts/s |")
    print(f"| write headroom over the served rate | {headroom} |")
    print()
    print("| rows | version | Registry.window, indexed | SQL | without the index | SQL | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for e in report["window_query"]:
        for name, key in (("newest (the champion)", ""), ("oldest", "_old_version")):
            print(
                f"| {e['rows']:,} | {name} | {e['indexed' + key + '_ms']:.1f} ms | "
                f"{e['sql_indexed' + key + '_ms']:.2f} ms | {e['without_index' + key + '_ms']:.1f} ms | "
                f"{e['sql_without_index' + key + '_ms']:.1f} ms | {e['speedup' + key]:.1f}x |"
            )
    last = report["window_query"][-1]
    print(f"\nplan at {last['rows']:,} rows, oldest version, without the index:")
    print("\n".join("  " + line for line in last["plan_without_index_old_version"][:8]))
    print(f"plan at {last['rows']:,} rows, oldest version, indexed:")
    print("\n".join("  " + line for line in last["plan_indexed_old_version"][:6]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server", default=DEFAULT_SERVER, help="a PostgreSQL URL whose server may create a database"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--write-rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parse_bench_args(
        parser, argv, name="predlog", quick={"sizes": [20_000], "write_rows": 2_000, "repeats": 2}
    )
    report = run(args.server, args.sizes, args.write_rows, args.repeats)
    print_table(report)
    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
