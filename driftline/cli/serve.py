"""The long-running processes: ``up`` (the service, and the scheduler with it) and ``scheduler``."""

from __future__ import annotations

import signal
import sys

import click

from common.filemodes import secure_home
from driftline.cli.common import handle_errors, main, open_artifacts, open_registry
from driftline.processes import DEFAULT_PORT
from registry.settings import get_settings


@main.command()
@handle_errors
def scheduler() -> None:
    """Run the scheduler process: drift checks on an interval, reaping of dead runs (one leader at a time)."""
    from monitor.settings import MonitorSettings
    from orchestration.scheduler import MonitorScheduler

    settings = get_settings()
    secure_home(settings)
    runner = MonitorScheduler(
        open_registry(settings), open_artifacts(settings), settings.model_name, MonitorSettings()
    )
    # SIGTERM (`driftline up` stopping it, or its parent-death signal) stops it as Ctrl-C does: the
    # leader lease is released, and the next scheduler need not wait for it to expire
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        runner.start(blocking=True)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        runner.stop()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--no-scheduler", is_flag=True, help="Serve only; run `driftline scheduler` elsewhere.")
@handle_errors
def up(host: str, port: int, no_scheduler: bool) -> None:
    """Serve the registry's champion and run the scheduler, on embedded defaults (SQLite + local artifacts
    under ./.driftline).

    Bootstraps nothing: it serves what the registry holds, and picks up a champion created later.
    """
    from driftline.processes import run_up

    sys.exit(run_up(get_settings(), host=host, port=port, scheduler=not no_scheduler))
