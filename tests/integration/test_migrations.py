"""Migrations are the schema's history: they agree with the ORM, downgrade for real, and the app
refuses to run below head."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import inspect

from driftline.cli import main
from registry import entities as e
from registry.db import check_schema, current_revision, downgrade, head_revision, make_engine, upgrade
from registry.errors import SchemaOutOfDateError
from registry.orm import Base
from registry.store import Registry


def test_migrations_match_models(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == [], f"ORM and migrations differ; add a migration: {diff}"


def test_downgrade_to_base_and_back(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert {t.name for t in Base.metadata.sorted_tables} <= set(inspect(engine).get_table_names())


def _labels_at_0007(engine: sa.Engine, models: tuple[str, ...]) -> None:
    """At revision 0007: one prediction of each of ``models`` with a label, a label of a text, and a
    label whose prediction was pruned (``prediction_id`` NULL)."""
    registry = Registry(engine)
    registry.add_predictions(
        [
            e.NewPrediction(
                id=f"{n:032x}",
                created_at=datetime.now(UTC),
                text=f"served by {name}",
                text_hash=f"{n:064x}",
                label="positive",
                scores={"positive": 1.0},
                model_name=name,
                model_version=1,
                latency_ms=1.0,
            )
            for n, name in enumerate(models, start=1)
        ]
    )
    for name in models:
        registry.ensure_model(name)
    labels = sa.table(
        "labels",
        *(sa.column(c) for c in ("prediction_id", "text", "text_hash", "label", "source")),
        sa.column("metadata", sa.JSON),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    rows = [(f"{n:032x}", f"served by {name}") for n, name in enumerate(models, start=1)]
    rows += [(None, "a text"), (None, "pruned")]
    with engine.begin() as conn:
        conn.execute(
            labels.insert(),
            [
                {
                    "prediction_id": pid,
                    "text": text,
                    "text_hash": "h",
                    "label": "positive",
                    "source": "test",
                    "metadata": {},
                    "created_at": datetime.now(UTC),
                }
                for pid, text in rows
            ],
        )


@pytest.mark.parametrize("models", [("sentiment",), ("sentiment", "topics")], ids=["one model", "two"])
def test_labels_take_their_model_and_give_it_back_on_downgrade(db_url: str, models: tuple[str, ...]) -> None:
    """0008 gives each label its prediction's model, or the only model there is; its downgrade drops the
    column and keeps the labels."""
    engine = make_engine(db_url)
    try:
        downgrade(engine, "0007")
        _labels_at_0007(engine, models)
        upgrade(engine)
        with engine.connect() as conn:
            found = dict(conn.execute(sa.text("SELECT text, model_name FROM labels")).all())
        only = models[0] if len(models) == 1 else None
        assert found == {**{f"served by {m}": m for m in models}, "a text": only, "pruned": only}
        downgrade(engine, "0007")
        assert "model_name" not in {c["name"] for c in inspect(engine).get_columns("labels")}
        assert "ix_labels_model_created" not in {i["name"] for i in inspect(engine).get_indexes("labels")}
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM labels")).scalar() == len(models) + 2
    finally:
        upgrade(engine)  # the next test finds the schema at head
        engine.dispose()


def test_refuses_database_below_head(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    downgrade(engine, "base")
    with pytest.raises(
        SchemaOutOfDateError, match=r"below the required revision .*run `driftline db upgrade`"
    ):
        check_schema(engine)


def test_empty_database_is_created_at_head(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    check_schema(engine)
    assert current_revision(engine) == head_revision()


def test_cli_refuses_old_schema_then_upgrades(sqlite_url: str) -> None:
    downgrade(make_engine(sqlite_url), "base")
    runner = CliRunner()
    refused = runner.invoke(main, ["models"], env={"DRIFTLINE_DATABASE_URL": sqlite_url})
    assert refused.exit_code == 1
    assert "run `driftline db upgrade`" in refused.stderr
    upgraded = runner.invoke(main, ["db", "upgrade"], env={"DRIFTLINE_DATABASE_URL": sqlite_url})
    assert upgraded.exit_code == 0, upgraded.output
    assert head_revision() in upgraded.stdout
    listed = runner.invoke(main, ["models"], env={"DRIFTLINE_DATABASE_URL": sqlite_url})
    assert listed.exit_code == 0 and "no models yet" in listed.stdout


@pytest.mark.postgres
def test_upgrades_started_at_once_take_turns(pg_server_url: str) -> None:
    """Replicas' init containers run `driftline db upgrade` together: on a fresh PostgreSQL database all
    of them succeed (one migrates, the others find it at head), none fails on a duplicate table."""
    import threading
    import time

    from bench.predlog import scratch_database

    errors: list[BaseException] = []

    def migrate(url: str) -> None:
        engine = make_engine(url)
        try:
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
        finally:
            engine.dispose()

    with scratch_database(pg_server_url, migrate=False) as url:
        threads = [threading.Thread(target=migrate, args=(url,), daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in threads), "the upgrades did not finish: they wait on each other"
        assert errors == []
        engine = make_engine(url)
        assert current_revision(engine) == head_revision()
        engine.dispose()
