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

import math
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class PolicyConfig:
    persistence: int = 3  # consecutive drifted checks before acting
    quality_margin: float = 0.03  # estimated or realized accuracy drop that counts as "hurts"
    drift_alone: bool = False  # retrain on persistent drift even without a quality drop
    min_new_labels: int = 200
    # After a run on this champion that did not replace it (refused by the gate, failed, skipped), the
    # next one waits until the labels since the champion are this many times what that run had (and at
    # least min_new_labels more): the gate's evidence grows geometrically, so a drift episode costs a
    # few runs, not one per check.
    retry_label_growth: float = 2.0
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
    last_attempt_labels: int | None = None  # labels the last run on this champion had (None: no run yet)


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str


def _pts(x: float) -> str:
    return f"{-x * 100:+.1f} pts"


def labels_needed(state: PolicyInput, config: PolicyConfig) -> int:
    """New labels a run needs now: ``min_new_labels``, or after an attempt on this champion that did not
    replace it, ``retry_label_growth`` times what it had, and at least ``min_new_labels`` more."""
    tried = state.last_attempt_labels
    if tried is None:
        return config.min_new_labels
    return max(tried + config.min_new_labels, math.ceil(tried * config.retry_label_growth))


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
    needed = labels_needed(state, config)
    if state.new_labels < needed:
        if state.last_attempt_labels is None:
            return Decision(False, f"{summary}: fewer than {needed} new labels")
        return Decision(
            False,
            f"{summary}: fewer than {needed} new labels (the last run on this champion had "
            f"{state.last_attempt_labels}; a retry waits for {config.retry_label_growth:g}x that, "
            f"and {config.min_new_labels} more at least)",
        )
    if state.active_run:
        return Decision(False, f"{summary}: a run is already queued or running")
    if state.since_last_run is not None and state.since_last_run < config.cooldown:
        left = config.cooldown - state.since_last_run
        return Decision(False, f"{summary}: cooling down ({int(left.total_seconds())} s left)")
    if not config.retrain_on_drift:
        return Decision(False, f"{summary}: retraining on drift is off")
    return Decision(True, f"{summary}: retrain queued")
