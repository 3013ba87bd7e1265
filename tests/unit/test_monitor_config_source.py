"""One source for a drift check's configuration: ``driftline check`` and the scheduler (which also runs
the control API's check requests, and replay sessions' checks) build it from the same settings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from driftline.cli import main
from driftline.cli.runs import check_config
from monitor.job import MonitorConfig
from monitor.settings import MonitorSettings


def cli_config(*args: str) -> MonitorConfig:
    """The config ``driftline check ARGS`` runs its check with."""
    command = main.commands["check"]
    with command.make_context("check", list(args)) as ctx:
        return check_config(ctx.params["window_size"])


def test_driftline_check_reads_the_monitor_settings_as_the_scheduler_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_COOLDOWN_S", "0")
    monkeypatch.setenv("DRIFTLINE_DRIFT_PERSISTENCE", "5")
    monkeypatch.setenv("DRIFTLINE_WINDOW_SIZE", "300")
    monkeypatch.setenv("DRIFTLINE_RETRAIN", '{"gate": {"min_improvement": 0.03}, "mode": "manual"}')
    scheduler = MonitorSettings().monitor_config()  # what the scheduler's ticks and check requests use
    cli = cli_config()
    assert cli == scheduler
    assert cli.policy.cooldown == timedelta(0) and cli.policy.persistence == 5 and cli.window_size == 300
    assert cli.run_config.mode == "manual" and cli.policy.gate.min_improvement == 0.03
    assert cli_config("--window", "120").window_size == 120  # the option, when given, over the setting

