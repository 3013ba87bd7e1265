"""The trigger policy: a pure function from what the checks saw to "queue a retrain" or not, with the
reason in words.

Usage::

    decision = decide(PolicyInput(drift_streak=3, drifted_signals=("embedding_drift",),
                                  estimated_drop=0.074, realized_drop=None, new_labels=412,
                                  active_run=False, since_last_run=timedelta(hours=2)),
                      PolicyConfig())
    decision.retrain, decision.reason
    # True, "drift on embedding_drift for 3 checks, estimated accuracy -7.4 pts, 412 new labels: retrain queued"
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class PolicyConfig:
    persistence: int = 3  # consecutive drifted checks before acting
    quality_margin: float = 0.03  # estimated or realized accuracy drop that counts as "hurts"
    drift_alone: bool = False  # retrain on persistent drift even without a quality drop
    min_new_labels: int = 200
    cooldown: timedelta = timedelta(minutes=30)
    retrain_on_drift: bool = True  # False: record what drift was seen, never queue (a baseline to compare)


@dataclass(frozen=True)
class PolicyInput:
    drift_streak: int  # consecutive checks, ending with this one, in which some signal drifted
    drifted_signals: tuple[str, ...]  # the signals that drifted in this check
    estimated_drop: float | None  # label-free expected-accuracy drop (reference - current)
    realized_drop: float | None  # accuracy drop on the window's labeled predictions, if enough labels
    new_labels: int  # labels since the champion's training-data cutoff
    active_run: bool  # a run is queued or running
    since_last_run: timedelta | None  # time since the last run ended (None: never)


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str


def _pts(x: float) -> str:
    return f"{-x * 100:+.1f} pts"


def decide(state: PolicyInput, config: PolicyConfig) -> Decision:
    if not state.drifted_signals:
        return Decision(False, "no drift")
    parts = [
        f"drift on {', '.join(state.drifted_signals)} for {state.drift_streak} "
        f"check{'s' if state.drift_streak != 1 else ''}"
    ]
    if state.estimated_drop is not None:
        parts.append(f"estimated accuracy {_pts(state.estimated_drop)}")
    if state.realized_drop is not None:
        parts.append(f"realized accuracy {_pts(state.realized_drop)}")
    parts.append(f"{state.new_labels} new labels")
    summary = ", ".join(parts)

    if state.drift_streak < config.persistence:
        return Decision(False, f"{summary}: waiting for {config.persistence} consecutive checks")
    drops = [d for d in (state.estimated_drop, state.realized_drop) if d is not None]
    hurts = any(d > config.quality_margin for d in drops)
    if not hurts and not config.drift_alone:
        return Decision(
            False, f"{summary}: quality has not dropped by more than {config.quality_margin * 100:.1f} pts"
        )
    if state.new_labels < config.min_new_labels:
        return Decision(False, f"{summary}: fewer than {config.min_new_labels} new labels")
    if state.active_run:
        return Decision(False, f"{summary}: a run is already queued or running")
    if state.since_last_run is not None and state.since_last_run < config.cooldown:
        left = config.cooldown - state.since_last_run
        return Decision(False, f"{summary}: cooling down ({int(left.total_seconds())} s left)")
    if not config.retrain_on_drift:
        return Decision(False, f"{summary}: retraining on drift is off")
    return Decision(True, f"{summary}: retrain queued")
