"""A small, cheap HTTP/1.1 load generator on raw asyncio streams (keep-alive, no client library).

The machine has 2 cores and the server needs both: a heavy client would eat the capacity it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q / 100.0 * len(data)))]


@contextlib.contextmanager
def quiet_gc():
    """No garbage-collector pauses in the client while it measures: the benchmark process holds a large
    heap (torch, the model it timed in-process), and a full collection there stalls the client for
    hundreds of milliseconds, which would be charged to the server's latency."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def http_request(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, bytes]:
    """Send ``request``, read the answer: (status, X-Driftline-Model-Version, body)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    version = b""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"x-driftline-model-version":
            version = value.strip()
    return status, version, await reader.readexactly(length) if length else b""


def _bodies(texts: list[str], per_request: int) -> list[bytes]:
    return [
        json.dumps({"texts": texts[i : i + per_request]}).encode() for i in range(0, len(texts), per_request)
    ]


async def closed_loop(
    host: str,
    port: int,
    texts: list[str],
    *,
    clients: int,
    seconds: float,
    warmup: float = 2.0,
    path: str = "/predict",
) -> LoadResult:
    """``clients`` connections, each sending its next request as soon as the last one is answered."""
    bodies = _bodies(texts, 1)
    result = LoadResult()
    start_measure = time.perf_counter() + warmup
    stop_at = start_measure + seconds

    async def client(n: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = n
        try:
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                status, version, _ = await exchange(
                    reader, writer, http_request(host, port, path, bodies[i % len(bodies)])
                )
                done = time.perf_counter()
                i += clients
                if sent < start_measure:
                    continue
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.ok += 1
                    result.latencies_ms.append((done - sent) * 1000)
                    key = version.decode()
                    result.versions[key] = result.versions.get(key, 0) + 1
                else:
                    result.failed += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    result.seconds = seconds
    return result


async def open_loop(
    host: str,
    port: int,
    texts: list[str],
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
    path: str = "/predict",
    seed: int = 0,
) -> LoadResult:
    """Requests arrive at ``rate`` per second (Poisson), whatever the server's pace; latency is measured
    from each request's scheduled arrival, so queueing counts."""
    bodies = _bodies(texts, 1)
    rng = random.Random(seed)
    result = LoadResult()
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, port))
    start = time.perf_counter()
    tasks = []

    async def one(i: int, scheduled: float) -> None:
        reader, writer = await pool.get()
        try:
            request = http_request(host, port, path, bodies[i % len(bodies)])
            status, _, _ = await exchange(reader, writer, request)
        finally:
            pool.put_nowait((reader, writer))
        done = time.perf_counter()
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == 200:
            result.ok += 1
            result.latencies_ms.append((done - scheduled) * 1000)
        else:
            result.failed += 1

    t = start
    i = 0
    while True:
        t += rng.expovariate(rate)
        if t - start > seconds:
            break
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, t)))
        i += 1
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - start
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    return result


async def sequential(host: str, port: int, texts: list[str], *, count: int) -> LoadResult:
    """One client, one text per request, one request at a time: the single-request latency."""
    return await closed_loop(host, port, texts[:count], clients=1, seconds=max(2.0, count / 50), warmup=1.0)
