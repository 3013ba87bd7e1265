"""Soak benchmark: does Driftline stay correct and flat under steady mixed load?

    .venv/bin/python -m bench.soak                # 10 minutes at half capacity: bench/results/soak.json, .md
    .venv/bin/python -m bench.soak --minutes 2    # shorter
    .venv/bin/python -m bench.soak --rate 40      # a given rate (requests/s), no capacity measurement
    .venv/bin/python -m bench.soak --quick        # smoke run (1-layer model, 1 minute in 20 s rows)

One service started as bench/serve.py starts it (``bentoml serve`` on a fresh home whose champion is
MiniLM-L6 with a 3-class head, all 6 layers unless ``--layers``; the prediction log on) with
``DRIFTLINE_API_TOKEN`` set, no scheduler:
  1. capacity: /predict with 16 closed-loop clients for ``--capacity-seconds``, as bench/serve.py (b),
     unless ``--rate`` is given; the soak runs at half of it;
  2. soak: requests arrive at that rate (open loop, Poisson, as bench/serve.py (d)) for ``--minutes``:
     most are /predict (one demo sentence), ``--feedback-share`` are /feedback with a label for one
     answered prediction id (``Authorization: Bearer``), ``--read-share`` read the control API
     (``/api/models`` and ``/api/runs`` in turn). Each row of the table (a minute, ``--bucket-seconds``)
     counts the requests that arrived in it: errors (any non-2xx by status, ``none`` for no answer within
     ``--timeout`` s), p50 / p99 latency of the answered ones from their scheduled arrival (queueing
     counts), and the RSS of the service's process tree (the ``bentoml serve`` arbiter and its workers)
     at the row's end, through psutil (a dependency of BentoML, so always there beside the service);
  3. the service is stopped (its prediction buffer flushed) and every answered prediction id is looked up
     in the predictions table: logged == served.
Targets: 0 errors; RSS at the end <= 1.10 x RSS at the end of the first row (warm-up); logged == served.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.common import describe_machine, go_offline, machine, parse_bench_args, write_json
from bench.loadgen import LoadResult, closed_loop, exchange, http_request, quiet_gc
from bench.serve import Server, free_port, load_texts, make_home

HOST = "127.0.0.1"
TOKEN = "soak-token"
MODEL = "sentiment"
CLIENTS = 16  # closed-loop clients of the capacity measurement, as bench/serve.py (b)
CONNECTIONS = 64  # the open loop's connection pool, as bench/loadgen.open_loop
READS = ("/api/models", f"/api/runs?model_name={MODEL}&limit=20")
TARGET_RSS_GROWTH = 0.10
QUICK = {"minutes": 1.0, "bucket_seconds": 20.0, "layers": 1, "capacity_seconds": 5.0}


@dataclass
class Row:
    """The requests that arrived in one row's interval."""

    kinds: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: float | None = None

    @property
    def requests(self) -> int:
        return sum(self.kinds.values())

    def percentile(self, q: float) -> float:
        return LoadResult(latencies_ms=self.latencies_ms).percentile(q)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_kind": dict(self.kinds),
            "errors": dict(self.errors),
            "p50_ms": self.percentile(50),
            "p99_ms": self.percentile(99),
            "rss_mb": self.rss_mb,
        }


@dataclass
class SoakLog:
    rows: list[Row]
    served_ids: list[str] = field(default_factory=list)
    labeled_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` and all its descendants, in MB."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:  # a worker that ended between the listing and the read
            continue
    return total / 1e6


class Pool:
    """Keep-alive connections to the service; one that failed is replaced by a fresh one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def fill(self, n: int) -> None:
        for _ in range(n):
            self.free.put_nowait(await asyncio.open_connection(HOST, self.port))

    async def request(self, request: bytes, timeout: float) -> tuple[int, bytes] | None:
        """(status, body), or ``None`` when no answer came (a reset, a close, ``timeout``)."""
        reader, writer = await self.free.get()
        try:
            status, _, body = await asyncio.wait_for(exchange(reader, writer, request), timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            self.free.put_nowait(await asyncio.open_connection(HOST, self.port))
            return None
        self.free.put_nowait((reader, writer))
        return status, body

    async def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait()[1].close()


async def soak(
    port: int,
    texts: list[str],
    labels: Sequence[str],
    *,
    rate: float,
    seconds: float,
    bucket_s: float,
    feedback_share: float,
    read_share: float,
    timeout: float,
    service_pid: int,
    seed: int,
) -> SoakLog:
    """Open-loop mixed load at ``rate`` requests/s for ``seconds``; rows of ``bucket_s`` seconds."""
    rng = random.Random(seed)
    log = SoakLog(rows=[Row() for _ in range(max(1, round(seconds / bucket_s)))])
    unlabeled: list[str] = []  # answered prediction ids that no feedback has named yet
    auth = {"Authorization": f"Bearer {TOKEN}"}
    pool = Pool(port)
    await pool.fill(CONNECTIONS)

    async def one(kind: str, request: bytes, scheduled: float, row: Row) -> None:
        answer = await pool.request(request, timeout)
        row.kinds[kind] += 1
        if answer is None:
            row.errors["none"] += 1
            return
        status, body = answer
        if not 200 <= status < 300:
            row.errors[str(status)] += 1
            return
        row.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        if kind == "predict":
            prediction_id = json.loads(body)["predictions"][0]["prediction_id"]
            log.served_ids.append(prediction_id)
            unlabeled.append(prediction_id)

    def next_request(i: int) -> tuple[str, bytes]:
        draw = rng.random()
        if draw < read_share:
            return "read", http_request(HOST, port, READS[i % len(READS)], b"", method="GET")
        if draw < read_share + feedback_share and unlabeled:
            prediction_id = unlabeled.pop(rng.randrange(len(unlabeled)))
            log.labeled_ids.append(prediction_id)
            body = json.dumps({"items": [{"prediction_id": prediction_id, "label": rng.choice(labels)}]})
            return "feedback", http_request(HOST, port, "/feedback", body.encode(), headers=auth)
        body = json.dumps({"texts": [texts[i % len(texts)]]}).encode()
        return "predict", http_request(HOST, port, "/predict", body)

    start = time.perf_counter()

    async def sample_rss() -> None:
        for index, row in enumerate(log.rows):
            await asyncio.sleep(max(0.0, start + (index + 1) * bucket_s - time.perf_counter()))
            row.rss_mb = await asyncio.to_thread(tree_rss_mb, service_pid)

    sampler = asyncio.create_task(sample_rss())
    tasks = []
    t, i = start, 0
    while True:
        t += rng.expovariate(rate)
        if t - start >= len(log.rows) * bucket_s:
            break
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        kind, request = next_request(i)
        row = log.rows[int((t - start) // bucket_s)]
        tasks.append(asyncio.create_task(one(kind, request, t, row)))
        i += 1
    await asyncio.gather(*tasks)
    await sampler
    log.seconds = time.perf_counter() - start
    await pool.close()
    return log


def count_logged(home: Path, ids: Sequence[str], chunk: int = 500) -> tuple[int, int]:
    """(how many of ``ids`` are rows of the predictions table, all rows of it)."""
    from registry.settings import Settings
    from registry.store import Registry

    registry = Registry.open(Settings(home=home))
    found = sum(len(registry.get_predictions(ids[i : i + chunk])) for i in range(0, len(ids), chunk))
    total = registry.count_predictions()
    registry.close()
    return found, total


def champion_labels(home: Path) -> tuple[str, ...]:
    from registry.entities import CHAMPION
    from registry.settings import Settings
    from registry.store import Registry

    registry = Registry.open(Settings(home=home))
    labels = registry.get_version_by_alias(MODEL, CHAMPION).labels
    registry.close()
    return tuple(labels)


def errors_text(errors: dict[str, int]) -> str:
    return " ".join(f"{status}:{n}" for status, n in sorted(errors.items())) or "0"


def table(report: dict[str, Any]) -> str:
    label = "minute" if report["bucket_seconds"] == 60 else f"{report['bucket_seconds']:g} s"
    lines = [
        describe_machine(report["machine"]),
        f"model: {report['model']}; capacity {report['capacity_req_per_s'] or 'not measured'} req/s; "
        f"offered {report['rate']:.1f} req/s for {report['minutes']:g} min "
        f"({report['feedback_share']:.0%} feedback, {report['read_share']:.0%} control-API reads)",
        "",
        f"{label:>7}{'requests':>10}{'predict':>9}{'feedback':>10}{'reads':>7}  {'errors':<14}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'RSS MB':>9}",
        "-" * 82,
    ]
    for n, row in enumerate(report["rows"], 1):
        kinds = row["by_kind"]
        rss = f"{row['rss_mb']:.0f}" if row["rss_mb"] is not None else "-"
        lines.append(
            f"{n:>7}{row['requests']:>10}{kinds.get('predict', 0):>9}{kinds.get('feedback', 0):>10}"
            f"{kinds.get('read', 0):>7}  {errors_text(row['errors']):<14}"
            f"{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}{rss:>9}"
        )
    lines.append("-" * 82)
    t, met = report["totals"], report["met"]
    growth = report["rss_growth_after_first_row"]
    growth_text = f"{growth:+.1%}" if growth is not None else "needs 2 rows"
    logged_text = f"{t['logged']} / {t['served']}"
    lines += [
        f"{'total':>7}{t['requests']:>10}   served {t['served']}, labeled {t['labeled']}, "
        f"errors {errors_text(t['errors'])}",
        "",
        f"{'target':<44}{'value':>18}",
        f"{'errors = 0':<44}{sum(t['errors'].values()):>18}  {verdict(met['errors'])}",
        f"{'RSS growth after the first row <= 10 %':<44}{growth_text:>18}  {verdict(met['rss'])}",
        f"{'logged == served (rows found / ids answered)':<44}{logged_text:>18}  "
        f"{verdict(met['logged_is_served'])}",
    ]
    return "\n".join(lines)


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "NOT met")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="soak duration")
    parser.add_argument("--rate", type=float, default=None, help="requests/s (default: half the capacity)")
    parser.add_argument("--capacity-seconds", type=float, default=20.0, help="capacity measurement time")
    parser.add_argument("--feedback-share", type=float, default=0.10, help="share of /feedback requests")
    parser.add_argument("--read-share", type=float, default=0.05, help="share of control-API reads")
    parser.add_argument("--bucket-seconds", type=float, default=60.0, help="seconds per row of the table")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a request is unanswered")
    parser.add_argument("--layers", type=int, default=None, help="encoder layers of the model (default: 6)")
    parser.add_argument("--seed", type=int, default=0)
    args = parse_bench_args(parser, argv, name="soak", quick=QUICK)
    if args.minutes * 60 < args.bucket_seconds:
        parser.error(
            f"--minutes {args.minutes:g} is shorter than one row (--bucket-seconds {args.bucket_seconds:g})"
        )
    if not 0 <= args.feedback_share + args.read_share < 1:
        parser.error("--feedback-share + --read-share must be in [0, 1): the rest are predictions")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be > 0")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    go_offline()
    command = " ".join(["python -m bench.soak", *(argv if argv is not None else sys.argv[1:])])
    texts = load_texts(4000, args.seed)
    with tempfile.TemporaryDirectory(prefix="driftline-soak-") as tmp:
        home = Path(tmp) / "home"
        make_home(home, args.seed, args.layers)
        labels = champion_labels(home)
        port = free_port()
        server = Server(home, port, log_predictions=True, env={"DRIFTLINE_API_TOKEN": TOKEN})
        try:
            capacity = None
            if args.rate is None:
                print(f"capacity: /predict, {CLIENTS} clients, {args.capacity_seconds:g} s ...", flush=True)
                with quiet_gc():
                    measured = asyncio.run(
                        closed_loop(HOST, port, texts, clients=CLIENTS, seconds=args.capacity_seconds)
                    )
                capacity = measured.rps
            rate = args.rate or capacity / 2  # type: ignore[operator]
            print(f"soak: {rate:.1f} req/s for {args.minutes:g} min ...", flush=True)
            gc.collect()
            gc.freeze()  # the model this process built stays out of every collection
            log = asyncio.run(
                soak(
                    port,
                    texts,
                    labels,
                    rate=rate,
                    seconds=args.minutes * 60,
                    bucket_s=args.bucket_seconds,
                    feedback_share=args.feedback_share,
                    read_share=args.read_share,
                    timeout=args.timeout,
                    service_pid=server.proc.pid,
                    seed=args.seed,
                )
            )
        finally:
            server.stop()  # flushes the prediction buffer
        logged, table_rows = count_logged(home, log.served_ids)

    rows = [r.to_dict() for r in log.rows]
    errors = sum((r.errors for r in log.rows), Counter())
    first, last = log.rows[0].rss_mb, log.rows[-1].rss_mb
    growth = last / first - 1 if len(log.rows) > 1 and first and last else None
    met = {
        "errors": not errors,
        "rss": None if growth is None else growth <= TARGET_RSS_GROWTH,
        "logged_is_served": logged == len(log.served_ids),
    }
    layers = args.layers or 6
    report = {
        "command": command,
        "quick": args.quick,
        "machine": machine(["transformers", "bentoml", "psutil"]),
        "model": f"MiniLM-L6 ({layers} layer{'s' if layers > 1 else ''}), 3 classes",
        "capacity_req_per_s": round(capacity, 1) if capacity else None,
        "rate": rate,
        "minutes": args.minutes,
        "bucket_seconds": args.bucket_seconds,
        "feedback_share": args.feedback_share,
        "read_share": args.read_share,
        "rows": rows,
        "totals": {
            "requests": sum(r["requests"] for r in rows),
            "served": len(log.served_ids),
            "labeled": len(log.labeled_ids),
            "logged": logged,
            "prediction_table_rows": table_rows,  # the capacity measurement's too
            "errors": dict(errors),
            "seconds": log.seconds,
        },
        "rss_growth_after_first_row": growth,
        "targets": {"errors": 0, "rss_growth": TARGET_RSS_GROWTH, "logged_is_served": True},
        "met": met,
    }
    write_json(args.out, report)
    text = table(report)
    args.out.with_suffix(".md").write_text(f"`{command}`\n\n```\n{text}\n```\n")
    print()
    print(text)
    print(f"\nwrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
