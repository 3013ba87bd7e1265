"""Overload benchmark: at 4x its capacity, is /predict shed instead of queued without end?

    .venv/bin/python -m bench.overload                # about 2.5 min: bench/results/overload.json
    .venv/bin/python -m bench.overload --seconds 10   # shorter phases
    .venv/bin/python -m bench.overload --quick        # smoke run (1-layer model, 5 s phases)

One service started as bench/serve.py starts it (``bentoml serve`` on a fresh home whose champion is
MiniLM-L6 with a 3-class head, all 6 layers unless ``--layers``; the prediction log on;
``DRIFTLINE_MAX_QUEUE_WAIT_MS`` as ``--max-wait-ms``, its default unless given):
  1. capacity: /predict with 16 closed-loop clients, one text per request, as bench/serve.py (b);
  2. overload, once per client timeout of ``--timeouts`` (1 s, then 30 s: clients that give up, then
     patient ones): requests arrive at ``--factor`` (4) x that rate, open loop (Poisson), each on a
     connection of its own (a free kept-alive one, else a new one: no client-side queue); a client gives
     up at its timeout from the request's scheduled arrival by closing its connection, as a client with a
     timeout does. Reported: p50 / p99 latency of the answered (200) requests from their scheduled
     arrival, the share answered 503 (and whether each said when to retry), the share given up;
  3. with each, the service's counters (/metrics) from before the phase until it is idle again: texts
     the model computed, requests shed, requests withdrawn before their batch because their client had
     left (not computed), and rows logged. Texts computed but not answered in time went to clients that
     had left while their batch ran: "computed for nobody".
Targets: p99 of the answered <= 2 s; nothing but 200 and 503 (each 503 says when to retry) besides
clients giving up; requests whose client left before their batch are not computed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import go_offline, machine, parse_bench_args, write_json
from bench.loadgen import LoadResult, closed_loop, exchange, http_request, quiet_gc
from bench.serve import Server, free_port, load_texts, make_home

HOST = "127.0.0.1"
CLIENTS = 16  # closed-loop clients of the capacity measurement, as bench/serve.py (b)
TARGET_P99_MS = 2000.0
IDLE_S = 2.0  # a kept-alive connection idle longer than this is not reused
COUNTERS = {
    "texts_computed": "driftline_texts_computed_total",
    "shed": "driftline_requests_shed_total",
    "abandoned": "driftline_requests_abandoned_total",
    "logged": "driftline_prediction_log_written_total",
}
QUICK = {"seconds": 5.0, "layers": 1}


@dataclass
class Overload:
    """What the clients of the overload phase saw."""

    offered: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # "200", "503", ..., "timeout", "error: ..."
    answered_ms: list[float] = field(default_factory=list)
    shed_ms: list[float] = field(default_factory=list)
    shed_with_retry: int = 0
    seconds: float = 0.0
    timeout_s: float = 0.0

    @staticmethod
    def percentile(values: list[float], q: float) -> float:
        return LoadResult(latencies_ms=values).percentile(q)

    def share(self, key: str) -> float:
        return self.statuses[key] / self.offered if self.offered else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            "offered_rate": self.offered / self.seconds if self.seconds else 0.0,
            "statuses": dict(self.statuses),
            "answered_p50_ms": self.percentile(self.answered_ms, 50),
            "answered_p99_ms": self.percentile(self.answered_ms, 99),
            "shed_p99_ms": self.percentile(self.shed_ms, 99),
            "share_answered": self.share("200"),
            "share_503": self.share("503"),
            "share_abandoned": self.share("timeout"),
            "shed_with_retry_after": self.shed_with_retry,
        }


class Connections:
    """Kept-alive connections, as many as the requests in flight: a request never waits for one. One idle
    for over :data:`IDLE_S` is closed rather than reused: the server may have closed it meanwhile
    (uvicorn's keep-alive timeout is 5 s), which would read as an error of the service."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.free:
            reader, writer, used = self.free.pop()
            if time.monotonic() - used < IDLE_S:
                return reader, writer
            writer.close()
        return await asyncio.open_connection(HOST, self.port)

    async def request(self, request: bytes, deadline: float) -> tuple[int, bytes] | None:
        """(status, body), or ``None`` when no answer came by ``deadline`` (the connection is then
        closed: the service sees its client go)."""
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await self._connection()
                try:
                    status, _, body = await exchange(reader, writer, request)
                except BaseException:
                    writer.close()
                    raise
        except TimeoutError:
            return None
        self.free.append((reader, writer, time.monotonic()))
        return status, body

    def close(self) -> None:
        for _, writer, _ in self.free:
            writer.close()


async def overload(port: int, texts: list[str], *, rate: float, seconds: float, timeout: float) -> Overload:
    """Poisson arrivals at ``rate`` for ``seconds``; each request gives up ``timeout`` s after its arrival."""
    bodies = [json.dumps({"texts": [t]}).encode() for t in texts]
    rng = random.Random(0)
    result = Overload(timeout_s=timeout)
    connections = Connections(port)
    loop = asyncio.get_running_loop()

    async def one(i: int, scheduled: float) -> None:
        request = http_request(HOST, port, "/predict", bodies[i % len(bodies)])
        deadline = loop.time() + (scheduled + timeout - time.perf_counter())  # on the loop's clock
        try:
            answer = await connections.request(request, deadline)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            result.statuses[f"error: {type(exc).__name__}"] += 1
            return
        elapsed_ms = (time.perf_counter() - scheduled) * 1000
        if answer is None:
            result.statuses["timeout"] += 1
            return
        status, body = answer
        result.statuses[str(status)] += 1
        if status == 200:
            result.answered_ms.append(elapsed_ms)
        elif status == 503:
            result.shed_ms.append(elapsed_ms)
            if json.loads(body).get("details", {}).get("retry_after_s", 0) >= 1:
                result.shed_with_retry += 1

    tasks = []
    start = time.perf_counter()
    t = start
    while True:
        t += rng.expovariate(rate)
        if t - start > seconds:
            break
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(len(tasks), t)))
    await asyncio.gather(*tasks)
    result.offered = len(tasks)
    result.seconds = seconds
    connections.close()
    return result


def counters(port: int) -> dict[str, float]:
    text = httpx.get(f"http://{HOST}:{port}/metrics", timeout=10).text
    found = {}
    for key, name in COUNTERS.items():
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        found[key] = float(match.group(1)) if match else 0.0
    return found


def wait_idle(port: int, *, quiet_s: float = 2.0, limit_s: float = 120.0) -> tuple[dict[str, float], float]:
    """The counters once texts_computed has not moved for ``quiet_s`` (they are exported every second),
    and the seconds that took: how long the service kept computing after its clients were gone."""
    started = time.monotonic()
    last, changed = counters(port), started
    while time.monotonic() - started < limit_s:
        time.sleep(0.5)
        now = counters(port)
        if now["texts_computed"] != last["texts_computed"]:
            changed = time.monotonic()
        last = now
        if time.monotonic() - changed >= quiet_s:
            break
    return last, max(0.0, changed - started)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="time of each phase")
    parser.add_argument("--factor", type=float, default=4.0, help="overload rate / capacity")
    parser.add_argument(
        "--timeouts",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[1.0, 30.0],
        help="client timeouts (s), one overload phase each (default 1,30: impatient, then patient clients)",
    )
    parser.add_argument("--max-wait-ms", type=float, default=None, help="DRIFTLINE_MAX_QUEUE_WAIT_MS")
    parser.add_argument("--layers", type=int, default=None, help="encoder layers of the model (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    return parse_bench_args(parser, argv, name="overload", quick=QUICK)


def phase_report(
    seen: Overload, before: dict[str, float], after: dict[str, float], drain_s: float
) -> dict[str, Any]:
    service = {key: after[key] - before[key] for key in COUNTERS}
    service["computed_for_nobody"] = service["texts_computed"] - seen.statuses.get("200", 0)
    clients = seen.to_dict()
    return {
        "timeout_s": seen.timeout_s,
        "clients": clients,
        "service": service,
        "drain_s": drain_s,
        "met": {
            "p99": clients["answered_p99_ms"] <= TARGET_P99_MS,
            "statuses": set(clients["statuses"]) <= {"200", "503", "timeout"}
            and clients["shed_with_retry_after"] == clients["statuses"].get("503", 0),
        },
    }


def table(report: dict[str, Any]) -> str:
    def others(o: dict[str, Any]) -> str:
        rest = {k: v for k, v in o["statuses"].items() if k not in ("200", "503", "timeout")}
        return ", ".join(f"{k}: {v}" for k, v in rest.items()) or "none"

    rows: list[tuple[str, Any]] = [
        ("client timeout (s)", lambda ph: f"{ph['timeout_s']:g}"),
        (
            f"offered at {report['factor']:g}x capacity (req/s)",
            lambda ph: f"{ph['clients']['offered_rate']:.1f}",
        ),
        ("requests offered", lambda ph: f"{ph['clients']['offered']}"),
        ("answered 200: share", lambda ph: f"{ph['clients']['share_answered']:.1%}"),
        (
            "answered 200: p50 / p99 (ms)",
            lambda ph: f"{ph['clients']['answered_p50_ms']:.0f} / {ph['clients']['answered_p99_ms']:.0f}",
        ),
        ("503: share", lambda ph: f"{ph['clients']['share_503']:.1%}"),
        (
            "503: saying when to retry / p99 (ms)",
            lambda ph: f"{ph['clients']['shed_with_retry_after']} / {ph['clients']['shed_p99_ms']:.0f}",
        ),
        ("given up by the client: share", lambda ph: f"{ph['clients']['share_abandoned']:.1%}"),
        ("other statuses", lambda ph: others(ph["clients"])),
        ("service: texts computed", lambda ph: f"{ph['service']['texts_computed']:.0f}"),
        (
            "service: shed / withdrawn before their batch",
            lambda ph: f"{ph['service']['shed']:.0f} / {ph['service']['abandoned']:.0f}",
        ),
        ("service: computed for nobody (texts)", lambda ph: f"{ph['service']['computed_for_nobody']:.0f}"),
        (
            "service: rows logged / answered 200",
            lambda ph: f"{ph['service']['logged']:.0f} / {ph['clients']['statuses'].get('200', 0)}",
        ),
        ("service: computing after the load (s)", lambda ph: f"{ph['drain_s']:.1f}"),
        (
            f"target p99 answered <= {TARGET_P99_MS:.0f} ms",
            lambda ph: "met" if ph["met"]["p99"] else "NOT met",
        ),
        ("target only 200 / 503 / given up", lambda ph: "met" if ph["met"]["statuses"] else "NOT met"),
    ]
    width = max(len(name) for name, _ in rows) + 2
    cap = report["capacity"]
    lines = [
        f"capacity: {cap['req_per_s']:.1f} req/s ({CLIENTS} closed-loop clients, one text each; "
        f"p50 / p99 {cap['p50_ms']:.0f} / {cap['p99_ms']:.0f} ms); "
        f"DRIFTLINE_MAX_QUEUE_WAIT_MS: {report['max_queue_wait_ms']}",
        "",
    ]
    lines += [
        f"{name:<{width}}" + "".join(f"{cell(ph):>20}" for ph in report["phases"]) for name, cell in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    go_offline()
    command = " ".join(["python -m bench.overload", *(argv if argv is not None else sys.argv[1:])])
    texts = load_texts(4000, args.seed)
    env = {"DRIFTLINE_MAX_QUEUE_WAIT_MS": str(args.max_wait_ms)} if args.max_wait_ms is not None else {}
    phases = []
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp:
        home = Path(tmp) / "home"
        make_home(home, args.seed, args.layers)
        port = free_port()
        server = Server(home, port, log_predictions=True, env=env)
        try:
            print(f"(1) capacity: {CLIENTS} closed-loop clients, {args.seconds:g} s ...", flush=True)
            with quiet_gc():
                capacity = asyncio.run(closed_loop(HOST, port, texts, clients=CLIENTS, seconds=args.seconds))
            rate = capacity.rps * args.factor
            for n, timeout in enumerate(args.timeouts, start=2):
                before, _ = wait_idle(port)
                print(
                    f"({n}) overload: {rate:.0f} req/s for {args.seconds:g} s, client timeout {timeout:g} s ...",
                    flush=True,
                )
                with quiet_gc():
                    seen = asyncio.run(
                        overload(port, texts, rate=rate, seconds=args.seconds, timeout=timeout)
                    )
                after, drain_s = wait_idle(port)
                phases.append(phase_report(seen, before, after, drain_s))
        finally:
            server.stop()
    report = {
        "machine": machine(),
        "command": command,
        "model": f"MiniLM-L6 ({args.layers or 6} layers), 3 classes, one text per request",
        "max_queue_wait_ms": args.max_wait_ms if args.max_wait_ms is not None else "default (500)",
        "seconds_per_phase": args.seconds,
        "factor": args.factor,
        "capacity": {
            "req_per_s": capacity.rps,
            "p50_ms": capacity.percentile(50),
            "p99_ms": capacity.percentile(99),
            "statuses": {str(k): v for k, v in capacity.statuses.items()},
        },
        "phases": phases,
        "quick": args.quick,
    }
    write_json(args.out, report)
    print()
    print(table(report))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
