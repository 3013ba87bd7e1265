"""Monitor and scheduler settings (prefix ``DRIFTLINE_``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.check import CheckConfig
from monitor.job import MonitorConfig
from monitor.policy import PolicyConfig


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_", extra="ignore")

    check_interval_s: float = Field(300.0, gt=0)
    dispatch_interval_s: float = Field(5.0, gt=0)
    window_size: int = Field(500, ge=10)
    min_window_rows: int = Field(50, ge=2)
    drift_persistence: int = Field(3, ge=1)
    quality_margin: float = Field(0.03, ge=0)
    drift_alone: bool = False
    retrain_on_drift: bool = Field(True, description="false: checks record drift but never queue a run")
    min_new_labels: int = Field(200, ge=0)
    retry_label_growth: float = Field(
        2.0,
        ge=1.0,
        description="after a run on this champion that did not replace it, a retry waits until the labels "
        "since the champion have grown this many times over what that run had (and by min_new_labels)",
    )
    cooldown_s: float = Field(1800.0, ge=0)
    lease_ttl_s: float = Field(0.0, ge=0, description="0: three check intervals")
    retrain: dict = Field(  # type: ignore[type-arg]
        default_factory=dict,
        description='recorded on every run the monitor queues, e.g. {"train": {"epochs": 2}, "mode": "manual"}',
    )
    reap_after_s: float = Field(
        600.0, gt=0, description="a running run without a heartbeat this long is retried (or failed)"
    )
    max_attempts: int = Field(
        3, ge=1, description="a run whose process died is queued again until it has started this often"
    )
    retry_backoff_s: float = Field(
        60.0, ge=0, description="wait before a retry; doubles with every attempt (60 s, 120 s, ...)"
    )
    launcher: Literal["subprocess", "none"] = Field(
        "subprocess",
        description="how the dispatcher starts queued runs: a child process, or 'none' (queue only: "
        "another dispatcher, e.g. a Kubernetes Job controller, starts them)",
    )

    def monitor_config(self) -> MonitorConfig:
        return MonitorConfig(
            window_size=self.window_size,
            run_config=dict(self.retrain),
            check=CheckConfig(quality_margin=self.quality_margin, min_rows=self.min_window_rows),
            policy=PolicyConfig(
                persistence=self.drift_persistence,
                quality_margin=self.quality_margin,
                drift_alone=self.drift_alone,
                min_new_labels=self.min_new_labels,
                retry_label_growth=self.retry_label_growth,
                cooldown=timedelta(seconds=self.cooldown_s),
                retrain_on_drift=self.retrain_on_drift,
            ),
        )

    @property
    def lease_ttl(self) -> timedelta:
        return timedelta(seconds=self.lease_ttl_s or 3 * self.check_interval_s)
