"""Monitor and scheduler settings (prefix ``DRIFTLINE_``): the one source of every drift check's
configuration (:meth:`MonitorSettings.monitor_config`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import RunSpec
from monitor.check import CheckConfig
from monitor.guard import GuardConfig
from monitor.job import MonitorConfig
from monitor.policy import PolicyConfig


class MonitorSettings(BaseSettings):
    # populate_by_name: a field with an alias (min_labels_floor) is still set by its name in Python.
    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_", extra="ignore", populate_by_name=True)

    check_interval_s: float = Field(300.0, gt=0)
    dispatch_interval_s: float = Field(5.0, gt=0)
    window_size: int = Field(500, ge=10)
    min_window_rows: int = Field(50, ge=2)
    drift_persistence: int = Field(3, ge=1)
    quality_margin: float = Field(CheckConfig.quality_margin, ge=0)
    drift_alone: bool = False
    realized_drop_skips_persistence: bool = Field(
        True,
        description="a significant realized accuracy drop (measured on labels) queues on its first check; "
        "false: it waits for drift_persistence checks like the label-free signals",
    )
    retrain_on_drift: bool = Field(True, description="false: checks record drift but never queue a run")
    min_labels_floor: int = Field(
        PolicyConfig.min_labels_floor,
        ge=1,
        validation_alias=AliasChoices("DRIFTLINE_MIN_LABELS_FLOOR", "DRIFTLINE_MIN_NEW_LABELS"),
        description="fewest new labels a drift-triggered run waits for, however large the drop (the queued "
        "run's own assembly.min_new_labels); DRIFTLINE_MIN_NEW_LABELS, the fixed count this replaces, is "
        "read as this floor",
    )
    max_labels_wait: int = Field(
        2000,
        ge=1,
        description="most new labels a first run on a champion waits for, however small the drop (a retry's "
        "retry_label_growth may ask for more)",
    )
    trigger_power: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="a run waits for the labels whose recent held-out share lets the gate pass, with this "
        "probability, a challenger that recovers the observed drop",
    )
    trigger_break_rate: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="assumed share of held-out rows the challenger gets wrong where the champion was right "
        "(the discordance of the power calculation)",
    )
    retry_label_growth: float = Field(
        2.0,
        ge=1.0,
        description="after a run on this champion that did not replace it, a retry waits until the labels "
        "since the champion have grown this many times over what that run had (and by min_labels_floor)",
    )
    label_growth_share: float = Field(
        PolicyConfig.label_growth_share,
        ge=0,
        description="without drift that hurts, queue an improvement run once the labels since the champion "
        "reach this share of its training rows (and min_labels_floor); 0: off",
    )
    degenerate_growth_share: float = Field(
        PolicyConfig.degenerate_growth_share,
        ge=0,
        description="the same share for a champion flagged degenerate at registration (sooner)",
    )
    cooldown_s: float = Field(1800.0, ge=0)
    lease_ttl_s: float = Field(0.0, ge=0, description="0: three check intervals")
    retrain: RunSpec = Field(
        default_factory=RunSpec,
        description='recorded on every run the monitor queues, e.g. {"train": {"epochs": 2}, "mode": "manual"} '
        "(the run contract, contracts.RunSpec: an unknown key is refused here)",
    )
    reap_after_s: float = Field(
        600.0, gt=0, description="a running run without a heartbeat this long is retried (or failed)"
    )
    prediction_retention_days: float = Field(
        0.0,
        ge=0,
        description="delete logged predictions older than this many days (0: keep them all); never one "
        "a label points to, nor the latest window_size of a version",
    )
    prune_interval_s: float = Field(
        3600.0, gt=0, description="how often the leader prunes the prediction log"
    )
    prune_batch_size: int = Field(5000, ge=1, description="predictions deleted per transaction when pruning")
    max_attempts: int = Field(
        3, ge=1, description="a run whose process died is queued again until it has started this often"
    )
    retry_backoff_s: float = Field(
        60.0, ge=0, description="wait before a retry; doubles with every attempt (60 s, 120 s, ...)"
    )
    guard: bool = Field(True, description="false: no post-promotion guard (promotions are never rolled back)")
    guard_min_labels: int = Field(
        50, ge=1, description="labeled rows a new champion serves before the guard's first look"
    )
    guard_window_labels: int = Field(
        300, ge=1, description="the latest labeled rows each of the guard's looks judges"
    )
    guard_watch_labels: int = Field(
        1000, ge=1, description="the guard's last look: it ends there for a promotion that did no harm"
    )
    guard_margin: float = Field(
        GuardConfig.margin,
        ge=0,
        description="an accuracy loss beyond this against the replaced version is harm, if significant",
    )
    guard_alpha: float = Field(
        GuardConfig.alpha,
        gt=0,
        lt=1,
        description="significance of the guard's test over all its looks of one promotion",
    )
    launcher: Literal["subprocess", "torchrun", "kubernetes", "none"] = Field(
        "subprocess",
        description="how the dispatcher starts queued runs: a child process, a 'torchrun' job of "
        "torchrun_nproc processes (DDP; rank 0 records the run), a 'kubernetes' Job per run from "
        "k8s_job_template, or 'none' (queue only: another dispatcher starts them)",
    )
    torchrun_nproc: int = Field(
        2,
        ge=1,
        description="training processes per run with launcher 'torchrun' (torchrun --nproc-per-node), "
        "e.g. the GPUs of the node",
    )
    k8s_job_template: Path | None = Field(
        None, description="launcher 'kubernetes': the batch/v1 Job manifest each run's Job is made from"
    )
    k8s_namespace: str | None = Field(
        None, description="launcher 'kubernetes': where run Jobs go (default: the scheduler pod's own)"
    )
    k8s_run_image: str | None = Field(
        None, description="launcher 'kubernetes': the image of run Jobs (default: the template's)"
    )
    k8s_node_selector: dict[str, str] = Field(
        default_factory=dict,
        description='launcher \'kubernetes\': node labels for run pods, JSON, e.g. {"pool": "gpu"}',
    )
    k8s_gpus: int = Field(
        0, ge=0, description="launcher 'kubernetes': nvidia.com/gpu limit of a run's container"
    )

    def monitor_config(self, *, window_size: int | None = None) -> MonitorConfig:
        """The one way a drift check's config is built, whoever runs the check (the scheduler's ticks and
        check requests, ``driftline check``, replay sessions through their scheduler): from these
        settings, with ``window_size`` (``driftline check --window``) over the setting's."""
        return MonitorConfig(
            window_size=self.window_size if window_size is None else window_size,
            run_config=self.retrain,
            check=CheckConfig(quality_margin=self.quality_margin, min_rows=self.min_window_rows),
            policy=PolicyConfig(
                persistence=self.drift_persistence,
                realized_drop_skips_persistence=self.realized_drop_skips_persistence,
                drift_alone=self.drift_alone,
                min_labels_floor=self.min_labels_floor,
                max_labels_wait=max(self.min_labels_floor, self.max_labels_wait),
                gate_power=self.trigger_power,
                break_rate=self.trigger_break_rate,
                retry_label_growth=self.retry_label_growth,
                label_growth_share=self.label_growth_share,
                degenerate_growth_share=self.degenerate_growth_share,
                cooldown=timedelta(seconds=self.cooldown_s),
                retrain_on_drift=self.retrain_on_drift,
            ),
        )

    def guard_config(self) -> GuardConfig | None:
        if not self.guard:
            return None
        return GuardConfig(
            min_labels=self.guard_min_labels,
            window_labels=max(self.guard_min_labels, self.guard_window_labels),
            watch_labels=max(self.guard_min_labels, self.guard_watch_labels),
            margin=self.guard_margin,
            alpha=self.guard_alpha,
        )

    @property
    def lease_ttl(self) -> timedelta:
        return timedelta(seconds=self.lease_ttl_s or 3 * self.check_interval_s)
