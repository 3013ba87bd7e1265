"""A home made before files were private (0755, a 0644 database) is closed when Driftline starts on it; a
new SQLite file is created at 0600 whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.filemodes import secure_home
from registry.db import make_engine
from registry.settings import Settings


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 022 for the test (files 0644), the process's own afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_open_home_and_database_are_made_private(tmp_path: Path, open_umask: None) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for name in ("driftline.db", "driftline.db-wal", "driftline.db-shm"):
        (home / name).write_bytes(b"")
    assert mode(home) == 0o755 and mode(home / "driftline.db") == 0o644

    secure_home(Settings(home=home))

    assert mode(home) == 0o700
    assert {mode(home / n) for n in ("driftline.db", "driftline.db-wal", "driftline.db-shm")} == {0o600}
    (home / "new").write_text("x")  # the process's umask is now 077
    assert mode(home / "new") == 0o600


def test_a_new_sqlite_file_is_private_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "fresh" / "driftline.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    engine.dispose()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
