"""Migrations are the schema's history: they agree with the ORM, downgrade for real, and the app
refuses to run below head."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import inspect

from driftline.cli import main
from registry.db import check_schema, current_revision, downgrade, head_revision, make_engine, upgrade
from registry.errors import SchemaOutOfDateError
from registry.orm import Base


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
