"""Private files: what Driftline writes under its home is readable by its user only (files 0600,
folders 0700). The database and the artifact store hold every served text.

The mechanism, and why this one:

- **The umask, set at each entry point** (:func:`restrict_umask`): the ``driftline`` command line (and so
  ``driftline up``, the scheduler and the retraining runs it starts, which inherit it), the service
  process (``service.app``, which ``bentoml serve`` also starts without the command line) and the children
  of ``driftline.processes.start_processes``. Files are written by many hands (SQLite, fsspec,
  safetensors, tokenizers, the report renderers, BentoML's Prometheus files); a umask covers them all
  without patching each writer, and it is inherited across ``fork``/``exec``.
- **An explicit chmod of the home and of the SQLite file** (:func:`secure_home`), because a umask only
  shapes what is created from then on: a home made before (or by another tool under umask 022) keeps its
  0755. A home at 0700 already closes everything inside it to other users, whatever the modes inside, so
  the tree is not walked (an artifact store can hold many files). The SQLite file is created at 0600
  by ``registry.db.make_engine`` whatever the umask, and SQLite gives its ``-wal`` and ``-shm`` files
  the database file's mode.

Not covered: a database or artifact store elsewhere than under the home (PostgreSQL, ``s3://``) has the
permissions its server or bucket gives it; files copied in with their modes kept (``cp -p``) keep them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def restrict_umask() -> None:
    """From now on this process (and what it starts) creates files 0600 and folders 0700."""
    os.umask(PRIVATE_UMASK)


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL; ``None`` for another database or an in-memory one."""
    from sqlalchemy.engine import make_url  # not at import: the command line starts without SQLAlchemy

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser()


def create_private_file(path: Path) -> None:
    """Create an empty ``path`` at 0600 whatever the umask (its missing folders at 0700); an existing file
    is left as it is. A folder where this user may not create files is left to whoever opens the file next
    (SQLite then says "unable to open database file", as without this)."""
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE))
    except FileExistsError:
        pass
    except OSError as exc:
        logger.debug("could not create %s at mode %o: %s", path, PRIVATE_FILE, exc)


def make_private(path: Path, mode: int) -> None:
    """chmod ``path`` to ``mode`` if it exists; a path this user may not change is a warning, not an error
    (a home on a read-only or foreign mount still serves)."""
    try:
        if path.exists() and (path.stat().st_mode & 0o777) != mode:
            path.chmod(mode)
    except OSError as exc:
        logger.warning("could not make %s private (mode %o): %s", path, mode, exc)


class Workspace(Protocol):
    """What :func:`secure_home` reads of the settings (``registry.settings.Settings`` has both)."""

    @property
    def home(self) -> Path: ...

    @property
    def database_url(self) -> str: ...


def secure_home(settings: Workspace) -> None:
    """Restrict the umask, create the home at 0700 (or chmod an existing one to 0700) and chmod the SQLite
    database under it, with its -wal/-shm files, to 0600."""
    restrict_umask()
    settings.home.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    make_private(settings.home, PRIVATE_DIR)
    database = sqlite_path(settings.database_url)
    if database is not None:
        for path in (database, *(database.with_name(database.name + s) for s in SQLITE_SIDE_FILES)):
            make_private(path, PRIVATE_FILE)
