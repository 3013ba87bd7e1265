"""Shared fixtures: offline environment, migrated databases (SQLite always, PostgreSQL when
``DRIFTLINE_TEST_DATABASE_URL`` is set), artifact stores."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.offline import go_offline

go_offline(force=True)  # the switches every Driftline command sets, whatever this shell says

PG_ENV = "DRIFTLINE_TEST_DATABASE_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own DRIFTLINE_HOME; no test touches ./.driftline."""
    from registry.settings import get_settings
    from service.settings import get_serve_settings

    for key in list(os.environ):
        if key.startswith("DRIFTLINE_") and key != PG_ENV:
            monkeypatch.delenv(key)
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path / "home"))
    # Training jobs train one recipe in tests (fast, and what most tests are about); the tests of the
    # recipe search turn it on themselves.
    monkeypatch.setenv("DRIFTLINE_SEARCH", "false")
    get_settings.cache_clear()
    get_serve_settings.cache_clear()
    yield
    get_settings.cache_clear()
    get_serve_settings.cache_clear()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; tests get copies."""
    from registry.db import make_engine, upgrade

    path = tmp_path_factory.mktemp("db-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped at the end."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set")
    from sqlalchemy import text

    from registry.db import make_engine

    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    name = f"driftline_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means no usable server: skip
        pytest.skip(f"PostgreSQL at {PG_ENV} is not usable: {exc}")
    base = admin.url.set(database=name).render_as_string(hide_password=False)
    yield base
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_migrated(pg_server_url: str) -> str:
    from registry.db import make_engine, upgrade

    engine = make_engine(pg_server_url)
    upgrade(engine)
    engine.dispose()
    return pg_server_url


def _truncate_all(url: str) -> None:
    from sqlalchemy import text

    from registry.db import make_engine
    from registry.orm import Base

    engine = make_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A database at the migration head, empty of rows, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "driftline.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_migrated")
    _truncate_all(url)
    return url


@pytest.fixture
def registry(db_url: str):  # type: ignore[no-untyped-def]
    from registry.db import make_engine
    from registry.store import Registry

    store = Registry(make_engine(db_url))
    yield store
    store.close()


@pytest.fixture
def artifacts(tmp_path: Path):  # type: ignore[no-untyped-def]
    from registry.artifacts import LocalArtifactStore

    return LocalArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "home" / "driftline.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def served_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a 1-layer champion (v1) and two more versions: v2 favours 'sports', v3 is damaged."""
    from tests.models import make_home, register_variant

    home = tmp_path_factory.mktemp("served") / "home"
    v1 = make_home(home)
    register_variant(home, v1, favour="sports")
    register_variant(home, v1, favour="weather", broken=True)
    return home


@pytest.fixture
def served_home(served_template: Path, tmp_path: Path) -> Path:
    """A private copy of ``served_template`` set as this test's DRIFTLINE_HOME."""
    from tests.models import copy_home

    home = tmp_path / "home"
    if home.exists():
        shutil.rmtree(home)
    return copy_home(served_template, home)


def copy_registry(source_url: str, dest_url: str, model_name: str = "sentiment") -> None:
    """Register ``source_url``'s versions of ``model_name`` anew in ``dest_url``, with the same champion.

    The versions keep their artifacts (same content address), so a home's artifact folder serves
    both databases; runs, predictions and labels are not copied.
    """
    from dataclasses import fields

    from registry import entities as e
    from registry.db import make_engine
    from registry.store import Registry

    source, dest = Registry(make_engine(source_url)), Registry(make_engine(dest_url))
    wanted = {f.name for f in fields(e.NewModelVersion)} - {"artifact", "data_snapshot", "training_run_id"}
    for v in source.list_versions(model_name):
        spec = e.NewModelVersion(
            artifact=v.artifact,
            data_snapshot=e.ArtifactRef(v.data_snapshot_uri, v.data_snapshot_sha256)
            if v.data_snapshot_uri and v.data_snapshot_sha256
            else None,
            **{name: getattr(v, name) for name in wanted},
        )
        dest.register_version(model_name, spec, actor="test", reason="copied")
    champion = source.get_version_by_alias(model_name, e.CHAMPION)
    dest.set_alias(model_name, e.CHAMPION, champion.version, actor="test", reason="copied")
    source.close()
    dest.close()


@pytest.fixture(params=BACKENDS)
def served_home_db(
    request: pytest.FixtureRequest, served_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """``served_home`` on each backend: on PostgreSQL its versions and champion are registered in the
    session's (emptied) database and ``DRIFTLINE_DATABASE_URL`` points there; artifacts stay local."""
    if request.param == "sqlite":
        return served_home
    from registry.settings import get_settings

    url = request.getfixturevalue("pg_migrated")
    _truncate_all(url)
    copy_registry(f"sqlite:///{served_home / 'driftline.db'}", url)
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", url)
    get_settings.cache_clear()
    return served_home
