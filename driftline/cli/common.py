"""What every command shares: the ``driftline`` group (settings read afresh, private files, the offline
switches, logging, a warning for a misspelt setting), Driftline errors as one line and an exit code, and
opening the registry and the artifact store."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

import click

from common.filemodes import restrict_umask
from common.offline import go_offline
from driftline.settings import warn_unknown_settings
from registry.errors import DriftlineError, ErrorCode
from registry.settings import Settings, get_settings

if TYPE_CHECKING:
    from registry.artifacts import ArtifactStore
    from registry.store import Registry

logger = logging.getLogger("driftline")

EXIT_INVALID = 2
EXIT_FAILED = 1


def setup(verbose: bool) -> None:
    get_settings.cache_clear()  # settings are read once per command, from the environment it runs in
    restrict_umask()  # files 0600, folders 0700: see common/filemodes.py
    go_offline()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "fsspec", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warn_unknown_settings()


def quiet_training_logs() -> None:
    """The replay and the demo print their own progress: training and registry logs only when they warn."""
    for noisy in ("retrain", "registry", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Driftline errors become one line on stderr and a non-zero exit; nothing else is swallowed."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DriftlineError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(
                EXIT_INVALID
                if exc.code in (ErrorCode.INVALID_INPUT, ErrorCode.ALREADY_EXISTS)
                else EXIT_FAILED
            )

    return wrapper


def open_registry(settings: Settings) -> Registry:
    from registry.store import Registry

    return Registry.open(settings)


def open_artifacts(settings: Settings) -> ArtifactStore:
    from registry.artifacts import artifact_store

    return artifact_store(settings)


def actor() -> str:
    """Who the audit log records for a command: ``cli:<user>``."""
    return f"cli:{os.environ.get('USER', 'unknown')}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Driftline: a served text classifier that retrains itself when its data drifts."""
    setup(verbose)
