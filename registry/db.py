"""Engines, the one transaction scope, and the schema-version check."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from common.filemodes import create_private_file, sqlite_path
from registry.errors import (
    ConflictError,
    DatabaseError,
    DriftlineError,
    InvalidInputError,
    SchemaOutOfDateError,
)

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
UPGRADE_COMMAND = "driftline db upgrade"
# SQLSTATE numeric_value_out_of_range: PostgreSQL refuses a number its column (or LIMIT) cannot hold
NUMERIC_OUT_OF_RANGE = "22003"


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs use the psycopg 3 driver (the ``postgres`` extra)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``. SQLite gets WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE``.

    ``BEGIN IMMEDIATE`` takes SQLite's write lock when a transaction starts, so two processes that
    read-then-write (next version number, lease) queue behind each other instead of failing. A SQLite
    file that does not exist yet is created at 0600 (see ``common.filemodes``).
    """
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, echo=echo, pool_pre_ping=True, hide_parameters=True)

    database = sqlite_path(url)
    if database is not None:
        create_private_file(database)
    engine = create_engine(url, echo=echo, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below emit BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if parsed.database and parsed.database != ":memory:":
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: no fsync per commit (the prediction log commits twice a second); the
            # database stays consistent, a power cut can lose the last commits.
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def describe(exc: BaseException) -> str:
    """What a database error says, without what it was given: the statement's first words (``INSERT INTO
    predictions``) and the driver's first line. Bound parameters (user texts) never reach a message or a
    log; engines are also made with ``hide_parameters=True``."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    first = lines[0] if lines else type(orig).__name__
    if len(first) > 300:
        first = first[:300] + "..."
    statement = getattr(exc, "statement", None)
    where = " ".join(str(statement).split()[:3]) if statement else ""
    return f"{where}: {type(orig).__name__}: {first}" if where else f"{type(orig).__name__}: {first}"


@contextlib.contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on any failure; database errors come out as Driftline errors.

    :class:`DatabaseError` says whether the failure is ``transient`` (the database is unreachable, busy,
    locked or not as expected: the same write may succeed later) or not (it refused these values:
    retrying them fails the same way). A constraint violation is a :class:`ConflictError`. A number the
    database cannot hold (sqlite3 refuses ints beyond 64 bits with ``OverflowError`` before sending them,
    PostgreSQL answers SQLSTATE 22003 beyond its column's range) is the caller's: :class:`InvalidInputError`.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except DriftlineError:
        session.rollback()
        raise
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"database constraint violated: {describe(exc)}") from exc
    except OverflowError as exc:
        session.rollback()
        raise InvalidInputError(f"a number is out of range for the database: {describe(exc)}") from exc
    except (DataError, UnicodeError) as exc:
        # the database (or its driver, before sending) refuses these values: psycopg a NUL in text,
        # sqlite3 a lone surrogate, either a value too long for its column; the same values fail again
        session.rollback()
        if getattr(getattr(exc, "orig", None), "sqlstate", None) == NUMERIC_OUT_OF_RANGE:
            raise InvalidInputError(f"a number is out of range for the database: {describe(exc)}") from exc
        raise DatabaseError(f"database refused a value: {describe(exc)}", transient=False) from exc
    except OperationalError as exc:
        session.rollback()
        raise DatabaseError(f"database unavailable or busy: {describe(exc)}") from exc
    except SQLAlchemyError as exc:
        # not about the values: the database or its schema is not as expected (a missing table while a
        # migration runs, a lost connection); the same statement may succeed later
        session.rollback()
        raise DatabaseError(f"database error: {describe(exc)}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --- migrations -------------------------------------------------------------------------------


def alembic_config(url: str):  # -> alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = alembic_config("sqlite://")
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None, "registry/migrations has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


MIGRATION_LOCK = 0x44524946544C  # "DRIFTL": PostgreSQL advisory lock that serializes schema upgrades


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``. On PostgreSQL, upgrades started at once (replicas' init
    containers) take turns under a transaction-scoped advisory lock: the first migrates, the others find
    the schema at head and do nothing."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not inspect(conn).get_table_names()


def check_schema(engine: Engine, *, create_if_empty: bool = True) -> None:
    """Refuse to run on a database below the migration head.

    A database with no tables at all holds nothing to lose; it is brought to head when
    ``create_if_empty`` (the embedded default's first start). Anything else below head is refused with
    the command that upgrades it.
    """
    try:
        current = current_revision(engine)
        if current is None and create_if_empty and is_empty(engine):
            logger.info("initialising empty database %s", engine.url.render_as_string(hide_password=True))
            upgrade(engine)
            return
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot reach database {engine.url.render_as_string(hide_password=True)}: {exc.orig}"
        ) from exc
    head = head_revision()
    if current != head:
        where = "no Driftline schema" if current is None else f"schema revision {current}"
        raise SchemaOutOfDateError(
            f"database {engine.url.render_as_string(hide_password=True)} has {where}, below the "
            f"required revision {head}; run `{UPGRADE_COMMAND}` to upgrade it",
            current=current,
            head=head,
        )
