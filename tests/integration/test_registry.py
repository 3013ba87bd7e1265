"""Registry store on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from registry import entities as e
from registry.errors import InvalidInputError, NotFoundError
from registry.store import Registry


def spec(n: int = 0, **overrides: object) -> e.NewModelVersion:
    values: dict = {
        "base_model": "minilm-l6",
        "artifact": e.ArtifactRef(uri=f"mem://a/{n}", sha256=f"{n:064x}"),
        "labels": ("negative", "neutral", "positive"),
        "metrics": {"accuracy": 0.5 + n / 100},
        "config": {"seed": n},
    }
    values.update(overrides)
    return e.NewModelVersion(**values)


def test_register_versions_number_from_one(registry: Registry) -> None:
    v1 = registry.register_version("sentiment", spec(1))
    v2 = registry.register_version("sentiment", spec(2, parent_version=1))
    other = registry.register_version("topics", spec(3))
    assert (v1.version, v2.version, other.version) == (1, 2, 1)
    assert v2.parent_version == 1
    got = registry.get_version("sentiment", 2)
    assert got == v2
    assert got.labels == ("negative", "neutral", "positive")
    assert got.metrics == {"accuracy": 0.52}
    assert got.created_at.tzinfo is not None
    assert [v.version for v in registry.list_versions("sentiment")] == [1, 2]
    assert [m.name for m in registry.list_models()] == ["sentiment", "topics"]


def test_errors_name_the_key(registry: Registry) -> None:
    registry.register_version("sentiment", spec(1))
    with pytest.raises(NotFoundError, match="model 'sentiment' has no version 7"):
        registry.get_version("sentiment", 7)
    with pytest.raises(NotFoundError, match="model 'nope' does not exist"):
        registry.get_version("nope", 1)
    with pytest.raises(NotFoundError, match="model 'sentiment' has no alias 'champion'"):
        registry.get_version_by_alias("sentiment", "champion")
    with pytest.raises(NotFoundError, match="model 'sentiment' has no version 9"):
        registry.set_alias("sentiment", "champion", 9, actor="t", reason="r")
    with pytest.raises(InvalidInputError, match="label set"):
        registry.register_version("sentiment", spec(2, labels=("a", "a")))
    assert registry.list_alias_events() == []


def test_alias_moves_write_audit_rows_in_order(registry: Registry) -> None:
    registry.register_version(
        "sentiment", spec(1), set_aliases=[e.CHAMPION], actor="bootstrap", reason="first"
    )
    registry.register_version(
        "sentiment", spec(2), set_aliases=[e.CHALLENGER], actor="run 1", reason="candidate"
    )
    registry.set_alias(
        "sentiment", e.CHAMPION, 2, actor="gate", reason="macro-F1 +0.04", report_uri="file:///r.html"
    )
    registry.set_alias("sentiment", e.CHAMPION, 1, actor="alice", reason="rollback")

    assert registry.get_alias("sentiment", e.CHAMPION).version == 1  # type: ignore[union-attr]
    assert registry.get_version_by_alias("sentiment", e.CHALLENGER).version == 2
    events = registry.list_alias_events("sentiment")
    assert [(ev.alias, ev.from_version, ev.to_version, ev.actor) for ev in events] == [
        ("champion", 2, 1, "alice"),
        ("champion", 1, 2, "gate"),
        ("challenger", None, 2, "run 1"),
        ("champion", None, 1, "bootstrap"),
    ]
    assert events[1].report_uri == "file:///r.html"
    assert [ev.to_version for ev in registry.list_alias_events("sentiment", e.CHALLENGER)] == [2]


def test_failed_alias_move_writes_no_event(registry: Registry) -> None:
    registry.register_version("sentiment", spec(1), set_aliases=[e.CHAMPION], actor="t", reason="r")
    with pytest.raises(NotFoundError):
        registry.set_alias("sentiment", e.CHAMPION, 5, actor="t", reason="r")
    assert len(registry.list_alias_events()) == 1
    assert registry.get_alias("sentiment", e.CHAMPION).version == 1  # type: ignore[union-attr]


def test_run_lifecycle(registry: Registry) -> None:
    run = registry.create_run(
        "sentiment", trigger=e.RunTrigger.BOOTSTRAP, status=e.RunStatus.RUNNING, config={"a": 1}
    )
    assert run.status is e.RunStatus.RUNNING and run.started_at is not None and run.attempts == 1
    version = registry.register_version("sentiment", spec(1, training_run_id=run.id))
    done = registry.finish_run(run.id, e.RunStatus.SUCCEEDED, data_snapshot_sha256="ab" * 32)
    assert done.candidate_version == version.version
    assert done.finished_at is not None and done.data_snapshot_sha256 == "ab" * 32
    with pytest.raises(InvalidInputError, match="not a final status"):
        registry.finish_run(run.id, e.RunStatus.RUNNING)
    with pytest.raises(NotFoundError, match="retrain run 99 does not exist"):
        registry.get_run(99)


def _register_many(url: str, n: int, barrier, out) -> None:  # type: ignore[no-untyped-def]
    from registry.db import make_engine

    store = Registry(make_engine(url))
    barrier.wait()
    out.put([store.register_version("sentiment", spec(i)).version for i in range(n)])
    store.close()


def test_concurrent_registration_from_two_processes(registry: Registry, db_url: str) -> None:
    registry.ensure_model("sentiment")
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_register_many, args=(db_url, 12, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    got = sorted(results[0] + results[1])
    assert got == list(range(1, 25))
    assert [v.version for v in registry.list_versions("sentiment")] == list(range(1, 25))


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_lease_expiry_and_takeover(registry: Registry) -> None:
    clock = FakeClock()
    store = Registry(registry.engine, clock=clock)
    ttl = timedelta(seconds=30)
    first = store.acquire_lease("scheduler", "a", ttl)
    assert first is not None and first.holder == "a"
    assert store.acquire_lease("scheduler", "b", ttl) is None  # held
    clock.now += timedelta(seconds=20)
    assert store.renew_lease("scheduler", "a", ttl) is not None  # now expires at +50 s
    clock.now += timedelta(seconds=25)
    assert store.acquire_lease("scheduler", "b", ttl) is None  # still held after renewal
    assert store.renew_lease("scheduler", "b", ttl) is None  # b cannot renew what it does not hold
    clock.now += timedelta(seconds=10)  # +55 s: a's lease has expired
    assert store.renew_lease("scheduler", "a", ttl) is None
    taken = store.acquire_lease("scheduler", "b", ttl)
    assert taken is not None and taken.holder == "b" and taken.acquired_at == clock.now
    assert store.release_lease("scheduler", "a") is False
    assert store.release_lease("scheduler", "b") is True
    assert store.get_lease("scheduler") is None
    assert store.acquire_lease("scheduler", "a", ttl) is not None


def drift_check_record() -> e.NewDriftCheck:
    """A drifted check of v1 that decided to retrain."""
    now = datetime.now(UTC)
    return e.NewDriftCheck(
        model_name="sentiment",
        model_version=1,
        window_start=now,
        window_end=now,
        reference="ref",
        n_reference=10,
        n_current=10,
        scores={},
        drifted=True,
        decision="retrain",
        reason="drift",
    )


def test_two_monitors_deciding_at_once_queue_one_run(registry: Registry) -> None:
    import threading

    from registry.errors import ConflictError

    registry.ensure_model("sentiment")
    check = drift_check_record()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def monitor() -> None:
        barrier.wait()
        try:
            _, run = registry.add_drift_check(check, queue_run={"reason": "drift"})
            outcomes.append("queued" if run is not None else "none")
        except ConflictError:
            outcomes.append("refused")

    threads = [threading.Thread(target=monitor) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["queued", "refused", "refused", "refused"]
    runs = registry.list_runs("sentiment")
    assert len(runs) == 1 and runs[0].trigger is e.RunTrigger.DRIFT and runs[0].status is e.RunStatus.QUEUED
    assert len(registry.list_drift_checks("sentiment")) == 1  # refused writes left nothing behind


def test_a_check_of_a_replaced_champion_queues_nothing(registry: Registry) -> None:
    """A promotion that lands while a check of the old champion runs: the check's retrain decision is stale."""
    from registry.errors import ConflictError

    registry.register_version("sentiment", spec(1), set_aliases=[e.CHAMPION])
    registry.register_version("sentiment", spec(2), set_aliases=[e.CHAMPION])
    check = drift_check_record()
    with pytest.raises(ConflictError, match="champion moved to v2 while v1 was being checked"):
        registry.add_drift_check(check, queue_run={"reason": "drift"})
    assert registry.list_drift_checks("sentiment") == [] and registry.list_runs("sentiment") == []
    _, run = registry.add_drift_check(replace(check, model_version=2), queue_run={"reason": "drift"})
    assert run is not None


def served(pid: int, model_name: str) -> e.NewPrediction:
    """A logged prediction of ``model_name`` v1, id ``pid`` in hex."""
    return e.NewPrediction(
        id=f"{pid:032x}",
        created_at=datetime.now(UTC),
        text=f"text {pid}",
        text_hash=f"{pid:064x}",
        label="positive",
        scores={"positive": 0.9, "negative": 0.1},
        model_name=model_name,
        model_version=1,
        latency_ms=1.0,
    )


def test_labels_are_counted_per_model(registry: Registry) -> None:
    """A prediction's label is its model's, a text's label the model it names; neither counts for another."""
    registry.add_predictions([served(1, "sentiment"), served(2, "topics")])
    stored = registry.add_labels(
        [
            e.NewLabel(label="positive", prediction_id=f"{1:032x}"),
            e.NewLabel(label="positive", prediction_id=f"{2:032x}", model_name="sentiment"),
            e.NewLabel(label="negative", text="a text seen elsewhere", model_name="sentiment"),
        ]
    )
    # the prediction's model wins over the one the item names
    assert [label.model_name for label in stored] == ["sentiment", "topics", "sentiment"]
    assert registry.count_labels("sentiment") == 2 and registry.count_labels("topics") == 1
    assert [label.id for label in registry.list_labels("sentiment")] == [stored[0].id, stored[2].id]
    later = datetime.now(UTC) + timedelta(hours=1)
    assert registry.count_labels("sentiment", since=later) == 0
    assert registry.list_labels("topics", since=later) == []
    with pytest.raises(InvalidInputError, match="item 0: a label for a text needs the model_name") as caught:
        registry.add_labels([e.NewLabel(label="negative", text="whose?")])
    assert caught.value.details.get("field") == "model_name"
    assert registry.count_labels("sentiment") == 2


def test_a_label_no_migration_could_attribute_counts_for_every_model(registry: Registry) -> None:
    from sqlalchemy import update

    from registry.orm import LabelRow

    (legacy,) = registry.add_labels([e.NewLabel(label="negative", text="old", model_name="sentiment")])
    with registry.engine.begin() as conn:  # as 0008 leaves a text label in a database of several models
        conn.execute(update(LabelRow).where(LabelRow.id == legacy.id).values(model_name=None))
    assert registry.count_labels("sentiment") == registry.count_labels("topics") == 1
    assert [label.model_name for label in registry.list_labels("topics")] == [None]
