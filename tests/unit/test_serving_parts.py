"""The serving building blocks with fakes: validation, micro-batcher, prediction log, hot-swap watcher."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

from registry.errors import ChecksumMismatchError, DatabaseError
from service.batching import Abandoned, MicroBatcher, Overloaded
from service.predlog import PredictionLog
from service.runtime import ModelHolder
from service.swap import ChampionWatcher
from service.validation import check_feedback, check_texts, input_problem
from tests.fakes import prediction_id, prediction_rows

# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "field", "limit", "words"),
    [
        ([], "texts", None, "at least 1 text"),
        (["a"] * 9, "texts", 8, "holds 9 texts; the limit is 8"),
        (["ok", "  "], "texts[1]", None, "is empty"),
        (["ok", 3], "texts[1]", None, "must be a string, got int"),
        (["x" * 101], "texts[0]", 100, "has 101 characters; the limit is 100"),
    ],
)
def test_text_checks_name_field_and_limit(texts: list, field: str, limit: int | None, words: str) -> None:
    problem = check_texts(texts, max_texts=8, max_chars=100)
    assert problem is not None
    body = problem.body()
    assert body["details"]["field"] == field
    assert body["details"].get("limit") == limit
    assert words in body["message"] and body["message"].startswith(field)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b'{"texts": ["a"', "body", "Invalid JSON"),
        (b"[]", "body", "Input should be an object"),
        (b"", "texts", "Field required"),  # empty is {}, as BentoML reads it
        (b'{"texts": "one"}', "texts", "valid array"),
        (b'{"texts": ["ok", 5]}', "texts[1]", "valid string"),
    ],
)
def test_input_problem_names_the_field(body: bytes, field: str, words: str) -> None:
    from pydantic import BaseModel

    class Input(BaseModel):
        texts: list[str]

    problem = input_problem(Input, body)
    assert problem is not None and problem.field == field and words in problem.message
    assert problem.body()["error"] == "INVALID_INPUT" and problem.body()["message"].startswith(field)
    assert input_problem(Input, b'{"texts": ["fine"]}') is None


def test_good_texts_pass() -> None:
    assert check_texts(["a", "b c"], max_texts=8, max_chars=100) is None


def test_feedback_checks() -> None:
    item = SimpleNamespace
    assert check_feedback([], max_items=5, max_chars=10).field == "items"  # type: ignore[union-attr]
    both = check_feedback([item(prediction_id="p", text="t", label="a")], max_items=5, max_chars=10)
    assert both is not None and both.field == "items[0]"
    long = check_feedback([item(prediction_id=None, text="x" * 11, label="a")], max_items=5, max_chars=10)
    assert long is not None and long.field == "items[0].text" and long.limit == 10
    assert check_feedback([item(prediction_id="p", text=None, label="a")], max_items=5, max_chars=10) is None


# --- micro-batcher -------------------------------------------------------------------------------


def test_batcher_groups_concurrent_requests_and_keeps_order() -> None:
    seen: list[list[str]] = []
    gate = threading.Event()

    def run(texts: list[str]) -> list[str]:
        if not seen:
            gate.wait(2)  # hold the first batch so the others pile up behind it
        seen.append(list(texts))
        return [t.upper() for t in texts]

    async def main() -> list[tuple[list[str], int]]:
        batcher: MicroBatcher[list[str]] = MicroBatcher(run, max_batch_size=5, max_latency_ms=0)
        first = asyncio.create_task(batcher.submit(["a"]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit([f"b{i}", f"c{i}"])) for i in range(3)]
        await asyncio.sleep(0.05)
        gate.set()
        results = [await first] + [await r for r in rest]
        batcher.close()
        return results

    results = asyncio.run(main())
    assert seen[0] == ["a"]
    assert seen[1] == ["b0", "c0", "b1", "c1"]  # 4 texts: the third request (2 more) would exceed 5
    assert seen[2] == ["b2", "c2"]
    for (out, start), expected in zip(
        results, [["A"], ["B0", "C0"], ["B1", "C1"], ["B2", "C2"]], strict=True
    ):
        assert out[start : start + len(expected)] == expected


def test_batcher_error_reaches_every_request_of_the_batch_only() -> None:
    def run(texts: list[str]) -> list[str]:
        if "bad" in texts:
            raise RuntimeError("model exploded")
        return texts

    async def main() -> tuple[list, list[str]]:
        batcher: MicroBatcher[list[str]] = MicroBatcher(run, max_batch_size=4, max_latency_ms=20)
        outcome = await asyncio.gather(batcher.submit(["bad"]), batcher.submit(["x"]), return_exceptions=True)
        later, start = await batcher.submit(["fine"])
        batcher.close()
        return outcome, later[start:]

    outcome, later = asyncio.run(main())
    assert all(isinstance(o, RuntimeError) for o in outcome)  # batched together: both fail
    assert later == ["fine"]  # the batcher keeps working


def test_oversized_request_runs_alone() -> None:
    sizes: list[int] = []

    def run(texts: list[str]) -> list[str]:
        sizes.append(len(texts))
        return texts

    async def main() -> None:
        batcher: MicroBatcher[list[str]] = MicroBatcher(run, max_batch_size=2, max_latency_ms=5)
        await asyncio.gather(batcher.submit(["a", "b", "c"]), batcher.submit(["d"]))
        batcher.close()

    asyncio.run(main())
    assert sorted(sizes) == [1, 3]


def test_batcher_skips_requests_whose_client_left_or_whose_task_was_cancelled() -> None:
    seen: list[list[str]] = []
    gate = threading.Event()

    def run(texts: list[str]) -> list[str]:
        if not seen:
            gate.wait(2)  # hold the first batch: the others queue behind it
        seen.append(list(texts))
        return texts

    async def main() -> tuple[object, object, list[str], MicroBatcher[list[str]]]:
        batcher: MicroBatcher[list[str]] = MicroBatcher(run, max_batch_size=8, max_latency_ms=0)
        first = asyncio.create_task(batcher.submit(["first"]))
        await asyncio.sleep(0.05)
        left = asyncio.Event()
        leaver = asyncio.create_task(batcher.submit(["left"], gone=left.wait))
        cancelled = asyncio.create_task(batcher.submit(["cancelled"]))
        stays = asyncio.create_task(batcher.submit(["stays"], gone=asyncio.Event().wait))
        await asyncio.sleep(0.05)
        left.set()  # the client of "left" goes away while its request waits
        cancelled.cancel()
        outcomes = await asyncio.gather(leaver, cancelled, return_exceptions=True)
        gate.set()
        out, start = await stays
        await first
        batcher.close()
        return outcomes[0], outcomes[1], out[start:], batcher

    leaver, cancelled, stays, batcher = asyncio.run(main())
    assert isinstance(leaver, Abandoned)
    assert isinstance(cancelled, asyncio.CancelledError)
    assert stays == ["stays"]
    assert seen == [["first"], ["stays"]]  # the texts of the two gone requests never reached the model
    assert batcher.abandoned == 2 and batcher.texts_computed == 2


def test_batcher_sheds_when_the_expected_wait_is_over_the_limit() -> None:
    def run(texts: list[str]) -> list[str]:
        time.sleep(0.2 * len(texts))  # 0.2 s per text
        return texts

    async def main() -> tuple[Overloaded, float, list[str], MicroBatcher[list[str]]]:
        batcher: MicroBatcher[list[str]] = MicroBatcher(
            run, max_batch_size=1, max_latency_ms=0, max_wait_ms=250
        )
        assert batcher.expected_wait_s() == 0.0  # nothing measured yet: nothing refused
        await batcher.submit(["measured"])
        running = asyncio.create_task(batcher.submit(["a"]))
        await asyncio.sleep(0.02)  # "a" runs: a new request would wait what is left of it, < 0.2 s
        queued = asyncio.create_task(batcher.submit(["b"]))
        await asyncio.sleep(0)
        estimate = batcher.expected_wait_s()  # the rest of "a" and all of "b": ~0.38 s
        with pytest.raises(Overloaded) as refused:
            await batcher.submit(["c"])
        with pytest.raises(Overloaded):
            batcher.admit()  # the same check, before a request is read
        answered = [out[start] for out, start in await asyncio.gather(running, queued)]
        batcher.close()
        return refused.value, estimate, answered, batcher

    refused, estimate, answered, batcher = asyncio.run(main())
    assert 0.25 < estimate < 0.4
    assert refused.limit_s == 0.25 and refused.expected_wait_s > 0.25
    assert refused.retry_after_s == 1  # whole seconds, at least 1
    assert "the limit is 250 ms" in str(refused)
    assert answered == ["a", "b"] and batcher.shed == 2 and batcher.texts_computed == 3


def test_batcher_refuses_nobody_while_nothing_is_queued() -> None:
    """Light load: a request joins the next batch however long the running one still takes; the queue
    behind a full batch ahead is what gets refused."""

    def run(texts: list[str]) -> list[str]:
        time.sleep(0.05 * len(texts))
        return texts

    async def main() -> MicroBatcher[list[str]]:
        batcher: MicroBatcher[list[str]] = MicroBatcher(
            run, max_batch_size=4, max_latency_ms=0, max_wait_ms=50
        )
        await batcher.submit(["measured"])
        big = asyncio.create_task(batcher.submit(["a", "b", "c", "d"]))  # a 0.2 s batch
        await asyncio.sleep(0.02)
        assert batcher.expected_wait_s() > 0.05
        batcher.admit()  # nothing queued: admitted, it waits for the rest of the big batch only
        small = asyncio.create_task(batcher.submit(["e"]))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            batcher.admit()  # one queued, and the big batch will still run for over 50 ms
        await asyncio.gather(big, small)
        batcher.close()
        return batcher

    batcher = asyncio.run(main())
    assert batcher.shed == 1 and batcher.texts_computed == 6


def test_batcher_without_a_limit_queues_everything() -> None:
    def run(texts: list[str]) -> list[str]:
        time.sleep(0.02)
        return texts

    async def main() -> list[str]:
        batcher: MicroBatcher[list[str]] = MicroBatcher(run, max_batch_size=1, max_latency_ms=0)
        results = await asyncio.gather(
            *(batcher.submit([str(i)], gone=asyncio.Event().wait) for i in range(10))
        )
        batcher.close()
        assert batcher.shed == 0 and batcher.abandoned == 0
        return [out[start] for out, start in results]

    assert asyncio.run(main()) == [str(i) for i in range(10)]


# --- prediction log ------------------------------------------------------------------------------


class FlakyStore:
    """Stands in for the database: fails while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False
        self.written: list[str] = []
        self.lock = threading.Lock()

    def write(self, batch) -> int:  # type: ignore[no-untyped-def]
        if self.down:
            raise DatabaseError("database unavailable")
        with self.lock:
            self.written.extend(r.id for r in batch)
        return len(batch)


def test_log_writes_in_batches_and_flushes() -> None:
    store = FlakyStore()
    log = PredictionLog(store.write, capacity=1000, batch_size=50, flush_interval_s=5.0)
    log.offer(prediction_rows(120))
    assert log.flush(5.0)
    assert store.written == [prediction_id(i) for i in range(120)]
    assert log.close(2.0)


def test_log_survives_database_outage_and_counts_overflow() -> None:
    store = FlakyStore()
    store.down = True
    log = PredictionLog(store.write, capacity=100, batch_size=10, flush_interval_s=0.05, max_backoff_s=0.1)
    started = time.perf_counter()
    accepted = log.offer(prediction_rows(80)) + log.offer(prediction_rows(50, start=80))
    assert time.perf_counter() - started < 0.5  # offering never blocks on the database
    assert accepted == 100 and log.dropped == 30
    time.sleep(0.3)
    assert log.write_errors >= 1 and store.written == []
    store.down = False  # the database comes back: everything that was kept gets written, in order
    assert log.flush(5.0)
    assert store.written == [prediction_id(i) for i in range(100)]
    assert log.close(2.0) and log.depth == 0


def test_log_depth_counts_the_rows_being_written() -> None:
    """What a crash loses is what is in memory: rows waiting and rows in a write not yet committed."""
    writing, release = threading.Event(), threading.Event()

    def slow_write(batch) -> None:  # type: ignore[no-untyped-def]
        writing.set()
        release.wait(5)

    log = PredictionLog(slow_write, capacity=1000, batch_size=10, flush_interval_s=0.05)
    log.offer(prediction_rows(10))
    assert writing.wait(5)
    log.offer(prediction_rows(5, start=10))
    assert log.depth == 15  # 10 in the write under way, 5 waiting
    release.set()
    assert log.flush(5.0) and log.depth == 0 and log.written == 15
    log.close(1.0)


def test_log_close_flushes_what_is_waiting() -> None:
    store = FlakyStore()
    log = PredictionLog(store.write, capacity=1000, batch_size=1000, flush_interval_s=60.0)
    log.offer(prediction_rows(7))
    assert log.close(5.0)
    assert len(store.written) == 7


# --- hot-swap watcher ------------------------------------------------------------------------------


class FakeModel:
    def __init__(self, version: SimpleNamespace) -> None:
        self.version = version

    def warm_up(self) -> float:
        return 0.0


def version(n: int, sha: str = "s") -> SimpleNamespace:
    return SimpleNamespace(version=n, artifact_sha256=f"{sha}{n}", model_name="m")


def test_watcher_swaps_on_alias_move_and_refuses_broken_versions() -> None:
    holder = ModelHolder()
    champion = {"v": version(1)}
    broken = {3}
    loads: list[int] = []

    def load(v):  # type: ignore[no-untyped-def]
        loads.append(v.version)
        if v.version in broken:
            raise ChecksumMismatchError("file 'model.safetensors' has sha256 0000, expected 1111")
        return FakeModel(v)

    watcher = ChampionWatcher(holder, lambda: champion["v"], load, interval_s=60)
    assert watcher.check_once() and holder.current.version.version == 1  # type: ignore[union-attr]
    assert not watcher.check_once()  # unchanged: nothing loaded
    champion["v"] = version(2)
    assert watcher.check_once() and holder.current.version.version == 2  # type: ignore[union-attr]
    champion["v"] = version(3)
    assert not watcher.check_once()
    assert holder.current.version.version == 2  # type: ignore[union-attr]  # old model keeps serving
    assert "sha256" in (watcher.last_error or "")
    assert not watcher.check_once()  # the broken version is not retried
    assert loads == [1, 2, 3]
    assert holder.swaps == 1


def test_watcher_keeps_serving_when_registry_is_unreachable() -> None:
    holder = ModelHolder()
    holder.swap(FakeModel(version(1)))  # type: ignore[arg-type]

    def resolve():  # type: ignore[no-untyped-def]
        raise DatabaseError("connection refused")

    watcher = ChampionWatcher(holder, resolve, lambda v: FakeModel(v), interval_s=60)  # type: ignore[arg-type,return-value]
    assert not watcher.check_once()
    assert holder.current.version.version == 1  # type: ignore[union-attr]
    assert "connection refused" in (watcher.last_error or "")


# --- length groups -------------------------------------------------------------------------------


def test_length_groups_split_only_where_the_padding_saved_pays_for_the_pass() -> None:
    import numpy as np

    from service.runtime import length_groups

    similar = [30, 31, 29, 32, 30, 28, 31, 30]
    assert [g.tolist() for g in length_groups(similar, overhead_tokens=256)] == [list(range(8))]
    mixed = [500, 10, 12, 480, 11, 505, 9, 490, 10, 500, 12, 495]
    groups = length_groups(mixed, overhead_tokens=256, min_group=4)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(mixed)))  # every text once
    assert [sorted(mixed[i] for i in g) for g in groups] == [
        sorted(v for v in mixed if v < 100),
        sorted(v for v in mixed if v >= 100),
    ]
    computed = sum(len(g) * max(mixed[i] for i in g) for g in groups)
    assert computed + 256 * len(groups) < len(mixed) * max(mixed)  # what the split is for
    # a pass that costs more than all the padding it could save: no split
    assert len(length_groups(mixed, overhead_tokens=10_000)) == 1
    # too few texts for two groups of min_group: no split
    assert len(length_groups([500, 10, 500, 10, 500, 10, 500], min_group=4)) == 1
    assert all(len(g) >= 2 for g in length_groups([1, 1, 900, 900, 1, 900], min_group=2, overhead_tokens=1))
