"""The trigger policy: a pure function from what the checks saw to "queue a retrain" or not, with the
reason in words.

A run is queued once drift has persisted, quality dropped, and enough labels arrived since the
champion's training for the run's recent held-out share to make the promotion gate decisive on a gain
as large as the drop (:func:`labels_for_decisive_gate`): a large drop queues sooner, a small one waits
for more labels (never fewer than a floor, never more than a cap).

Usage (a doctest, run by ``tests/unit/test_doctests.py``):

>>> decision = decide(
...     PolicyInput(drift_streak=3, drifted_signals=("embedding_drift",), estimated_drop=0.074,
...                 realized_drop=None, new_labels=700, active_run=False, since_last_run=timedelta(hours=2)),
...     PolicyConfig(),
... )
>>> decision.retrain
True
>>> print(decision.reason)
drift on embedding_drift for 3 checks, estimated accuracy -7.4 pts, 700 new labels; a decisive gate on a
7.4-pt drop (estimated) needs 635 (80 % power, 20 % held out): retrain queued
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import timedelta

from scipy.stats import norm

from common.templating import pts
from contracts import AssemblyConfig, GateConfig
from monitor.signals import QUALITY_MARGIN, REALIZED_DROP
from registry.entities import RunTrigger


@dataclass(frozen=True)
class PolicyConfig:
    persistence: int = 3  # consecutive drifted checks before acting
    # Persistence guards against the label-free signals' false alarms. A realized accuracy drop that is
    # significant (its own test, p < 0.01, and over the margin) is measured harm on labeled rows, not an
    # alarm to confirm: it acts at once, and each check of waiting would cost served accuracy.
    realized_drop_skips_persistence: bool = True
    # Estimated or realized accuracy drop that counts as "hurts": the drift check's margin (in the job,
    # MonitorConfig sets it from CheckConfig.quality_margin).
    quality_margin: float = QUALITY_MARGIN
    drift_alone: bool = False  # retrain on persistent drift even without a quality drop
    # Labels a run needs: enough that the gate, on the run's recent held-out share of them, passes with
    # ``gate_power`` a challenger that recovers the observed drop (labels_for_decisive_gate); at least
    # ``min_labels_floor`` (a run has to train on something), at most ``max_labels_wait`` (a small drop
    # does not wait forever). The one default of the floor: MonitorSettings (DRIFTLINE_MIN_LABELS_FLOOR)
    # and driftline's replay sessions read it here.
    min_labels_floor: int = 100
    max_labels_wait: int = 2000
    gate_power: float = 0.8
    # Assumed share of the held-out rows the challenger gets wrong where the champion was right (the
    # discordance of the paired comparison; see labels_for_decisive_gate).
    break_rate: float = 0.01
    # The figures of the runs this policy queues, from the run contract: the label count is sized with
    # the assembly's holdout_fraction, the gate's confidence (its one-sided level is (1 - confidence) / 2)
    # and its min_improvement. MonitorConfig sets them to its run spec's.
    assembly: AssemblyConfig = field(default_factory=AssemblyConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    # After a run on this champion that did not replace it (refused by the gate, failed, skipped), the
    # next one waits until the labels since the champion are this many times what that run had (and at
    # least min_labels_floor more), whatever the power calculation says: the gate's evidence grows
    # geometrically, so a drift episode costs a few runs, not one per check.
    retry_label_growth: float = 2.0
    cooldown: timedelta = timedelta(minutes=30)
    retrain_on_drift: bool = True  # False: record what drift was seen, never queue (a baseline to compare)
    # Without drift that hurts, an improvement run is queued once the labels since the champion reach
    # this share of its training rows (and min_labels_floor): a model that was never good gets better
    # with labels whatever the data does. 1.0: when a run would double the champion's training set, the
    # step on a learning curve that is worth a gate's time. Sooner (degenerate_growth_share) for a
    # champion flagged degenerate at registration (retrain.quality). 0: off.
    label_growth_share: float = 1.0
    degenerate_growth_share: float = 0.25


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
    realized_labels: int | None = None  # labeled predictions in the window behind realized_drop
    champion_train_rows: int | None = None  # rows the champion was trained on (None: unknown)
    champion_degenerate: bool = False  # flagged degenerate when it was registered


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    labels_needed: int | None = None  # new labels the run needed (None: the check stopped before asking)
    trigger: RunTrigger = RunTrigger.DRIFT  # the rule that asked for the run


@dataclass(frozen=True)
class LabelPlan:
    """How many new labels a run needs, and why."""

    drop: float  # the gain the gate is sized for: the observed drop, at least the quality margin
    source: str  # where that drop comes from, in words
    heldout_rows: float  # recent held-out rows the power calculation asks for (inf: no number suffices)
    by_power: float  # labels whose held-out share is that many rows (inf: no number suffices)
    labels: int  # labels needed, floor and cap applied
    bound: str | None  # "floor" or "cap" when one of them set ``labels``


def heldout_rows_for_decisive_gate(
    gain: float, *, alpha: float, power: float, min_improvement: float, break_rate: float
) -> float:
    """Paired held-out rows on which the gate passes a challenger whose true gain is ``gain`` with
    probability ``power``: ``inf`` when no number does (a gain at or below ``min_improvement``)."""
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError(f"alpha {alpha} and power {power} must lie in (0, 1)")
    if break_rate < 0.0:
        raise ValueError(f"break_rate {break_rate} must be >= 0")
    if gain <= max(min_improvement, 0.0):
        return math.inf
    discordant = min(1.0, gain + 2.0 * break_rate)  # p10 + p01, with p10 - p01 = gain
    variance = max(0.0, discordant - gain * gain)  # of the per-row difference, under the alternative
    z_alpha, z_beta = float(norm.isf(alpha)), float(norm.isf(1.0 - power))
    root = max((z_alpha + z_beta) / gain, z_beta / (gain - min_improvement), 0.0)
    return variance * root * root


def labels_for_decisive_gate(
    drop: float,
    *,
    holdout_fraction: float,
    alpha: float,
    power: float,
    min_improvement: float,
    break_rate: float,
    floor: int,
    cap: int,
) -> int:
    """New labels a run needs so that the gate, on its recent held-out share of them, detects a gain
    of ``drop`` with probability ``power`` at the one-sided level ``alpha``; within ``[floor, cap]``.

    The gate passes when, on the recent held-out rows, the challenger's macro-F1 gain D is at least
    ``min_improvement`` and the lower bound of its paired bootstrap CI is above 0 (a 95 % CI: one-sided
    ``alpha`` = 0.025). The calculation is the paired-difference (McNemar-type) sample size, under
    these assumptions:

    - The challenger recovers the drop: its expected gain is ``drop``. Optimistic when it recovers only
      part of it; the policy's retry rule then asks for geometrically more labels.
    - The macro-F1 gain behaves like the accuracy gain: per row, the difference of the two models'
      correctness, with p10 = share the challenger gets right and the champion wrong, p01 = the
      reverse. The discordance assumption: p01 = ``break_rate`` (rows fine-tuning breaks), so
      p10 = ``drop`` + ``break_rate``, the discordant share psi = ``drop`` + 2 ``break_rate`` (at most 1)
      and the per-row variance sigma^2 = psi - drop^2. With skewed classes macro-F1 is noisier than
      this. The default 0.01 reproduces the one refused attempt measured in the README's learning
      benchmark (51 rows, +6.2 pts, CI -0.9 to +14.4: a per-row SD of 0.28).
    - Normal approximation of the bootstrap: D ~ N(drop, sigma^2 / n) and the CI's lower bound is
      D - z_alpha sigma / sqrt(n) (sigma estimated from the rows, as the bootstrap does; McNemar's score
      form would use sqrt(psi) for the alpha term, a few rows more). Passing needs
      D > max(z_alpha sigma / sqrt(n), min_improvement); that has probability >= ``power`` when
      n >= sigma^2 max((z_alpha + z_beta) / drop, z_beta / (drop - min_improvement))^2, z = scipy's
      normal quantiles. No n suffices for a drop at or below ``min_improvement``: the cap. On rows drawn
      as assumed, the real gate passes 83-90 % of challengers where 80 % was asked (few rows, skewed
      differences): the approximation errs towards waiting a little longer.
    - The run holds out each class's latest ``holdout_fraction`` of the new labels: about that share of
      them, so labels = ceil(rows / ``holdout_fraction``). Labels are counted before the run drops
      duplicates and unknown labels, which makes its held-out rows somewhat fewer.

    With the defaults (80 % power, 20 % held out, break_rate 0.01, 1-pt minimum): a 30-pt drop needs
    105 labels, 20 pts 180, 10 pts 435, 7.4 pts 635, 5 pts 1060.
    """
    if not 0.0 < holdout_fraction <= 1.0:
        raise ValueError(f"holdout_fraction {holdout_fraction} must lie in (0, 1]")
    if floor > cap:
        raise ValueError(f"floor {floor} is above cap {cap}")
    rows = heldout_rows_for_decisive_gate(
        drop, alpha=alpha, power=power, min_improvement=min_improvement, break_rate=break_rate
    )
    if math.isinf(rows):
        return cap
    return min(cap, max(floor, math.ceil(math.ceil(rows) / holdout_fraction)))


def label_plan(state: PolicyInput, config: PolicyConfig) -> LabelPlan:
    """The power-based label count for this check: sized on the realized drop when the window had
    enough labels for one, else on the estimated drop; at least the quality margin."""
    observed, which = (
        (state.realized_drop, "realized")
        if state.realized_drop is not None
        else (state.estimated_drop, "estimated")
    )
    if observed is not None and observed >= config.quality_margin:
        drop = observed
        source = (
            f"realized on {state.realized_labels} labeled rows"
            if which == "realized" and state.realized_labels is not None
            else which
        )
    else:
        drop = config.quality_margin
        measured = f"{which} drop {observed * 100:.1f} pts" if observed is not None else "no drop measured"
        source = f"the quality margin; {measured}"
    alpha = (1.0 - config.gate.confidence) / 2.0
    cap = max(config.max_labels_wait, config.min_labels_floor)  # a raised floor lifts the cap with it
    rows = heldout_rows_for_decisive_gate(
        drop,
        alpha=alpha,
        power=config.gate_power,
        min_improvement=config.gate.min_improvement,
        break_rate=config.break_rate,
    )
    holdout = config.assembly.holdout_fraction
    by_power = math.inf if math.isinf(rows) else float(math.ceil(math.ceil(rows) / holdout))
    labels = labels_for_decisive_gate(
        drop,
        holdout_fraction=config.assembly.holdout_fraction,
        alpha=alpha,
        power=config.gate_power,
        min_improvement=config.gate.min_improvement,
        break_rate=config.break_rate,
        floor=config.min_labels_floor,
        cap=cap,
    )
    bound = None
    if by_power > cap:
        bound = "cap"
    elif by_power < config.min_labels_floor:
        bound = "floor"
    return LabelPlan(drop, source, rows, by_power, labels, bound)


def retry_labels(state: PolicyInput, config: PolicyConfig) -> int | None:
    """After an attempt on this champion that did not replace it: ``retry_label_growth`` times the labels
    it had, and at least ``min_labels_floor`` more (None: no such attempt)."""
    tried = state.last_attempt_labels
    if tried is None:
        return None
    return max(tried + config.min_labels_floor, math.ceil(tried * config.retry_label_growth))


def _gate_words(plan: LabelPlan, config: PolicyConfig) -> str:
    terms = f"{config.gate_power * 100:g} % power, {config.assembly.holdout_fraction * 100:g} % held out"
    head = f"a decisive gate on a {plan.drop * 100:.1f}-pt drop ({plan.source}) needs {plan.labels}"
    if plan.bound is None:
        return f"{head} ({terms})"
    if math.isinf(plan.by_power):
        return (
            f"{head} (the cap: no number of rows makes a gain of at most the gate's "
            f"{config.gate.min_improvement * 100:.1f}-pt minimum decisive)"
        )
    return f"{head} (the {plan.bound}; {int(plan.by_power)} for {terms})"


def label_growth(state: PolicyInput, config: PolicyConfig, summary: str) -> Decision | None:
    """The improvement run of the label-growth trigger, when drift does not call for one: queued once
    the new labels reach the share of the champion's training rows; None when the trigger is off or the
    champion's training rows are unknown."""
    rows = state.champion_train_rows
    if not rows or config.label_growth_share <= 0:
        return None
    share = config.degenerate_growth_share if state.champion_degenerate else config.label_growth_share
    needed = max(config.min_labels_floor, math.ceil(share * rows))
    retry = retry_labels(state, config)
    words = (
        f"{summary}; {state.new_labels} new labels = {state.new_labels / rows:.0%} of the champion's "
        f"{rows} training rows"
    )
    words += (
        f" (the champion is degenerate: an improvement run at {share:.0%})"
        if state.champion_degenerate
        else f" (an improvement run at {share:.0%})"
    )
    if retry is not None and retry > needed:
        needed = retry
        words += f"; the last run on this champion had {state.last_attempt_labels} and did not replace it ({retry})"
    decision = _when_clear(
        state, config, words, needed, off="retraining is off", queued="improvement run queued"
    )
    return replace(decision, trigger=RunTrigger.LABEL_GROWTH)


def decide(state: PolicyInput, config: PolicyConfig) -> Decision:
    if not state.drifted_signals:
        return label_growth(state, config, "no drift") or Decision(False, "no drift")
    parts = [
        f"drift on {', '.join(state.drifted_signals)} for {state.drift_streak} "
        f"check{'s' if state.drift_streak != 1 else ''}"
    ]
    if state.estimated_drop is not None:
        parts.append(f"estimated accuracy {pts(-state.estimated_drop)}")
    if state.realized_drop is not None:
        parts.append(f"realized accuracy {pts(-state.realized_drop)}")
    parts.append(f"{state.new_labels} new labels")
    summary = ", ".join(parts)

    measured_harm = config.realized_drop_skips_persistence and REALIZED_DROP in state.drifted_signals
    if state.drift_streak < config.persistence:
        if not measured_harm:
            return Decision(False, f"{summary}: waiting for {config.persistence} consecutive checks")
        summary += f" (a significant realized drop: not waiting for {config.persistence} consecutive checks)"
    drops = [d for d in (state.estimated_drop, state.realized_drop) if d is not None]
    hurts = any(d > config.quality_margin for d in drops)
    if not hurts and not config.drift_alone:
        calm = f"{summary}: quality has not dropped by more than {config.quality_margin * 100:.1f} pts"
        return label_growth(state, config, calm) or Decision(False, calm)
    plan = label_plan(state, config)
    retry = retry_labels(state, config)
    needed = max(plan.labels, retry or 0)
    summary = f"{summary}; {_gate_words(plan, config)}"
    if retry is not None:
        summary += (
            f"; the last run on this champion had {state.last_attempt_labels} and did not replace it: a retry "
            f"waits for {config.retry_label_growth:g}x that, and {config.min_labels_floor} more at least "
            f"({retry})"
        )
    return _when_clear(
        state, config, summary, needed, off="retraining on drift is off", queued="retrain queued"
    )


def _when_clear(
    state: PolicyInput, config: PolicyConfig, summary: str, needed: int, *, off: str, queued: str
) -> Decision:
    """A run, once ``needed`` labels are in, no run is active, the cooldown is over and retraining is on;
    else why not, after ``summary``."""
    if state.new_labels < needed:
        return Decision(False, f"{summary}: fewer than {needed} new labels", needed)
    if state.active_run:
        return Decision(False, f"{summary}: a run is already queued or running", needed)
    if state.since_last_run is not None and state.since_last_run < config.cooldown:
        left = config.cooldown - state.since_last_run
        return Decision(False, f"{summary}: cooling down ({int(left.total_seconds())} s left)", needed)
    if not config.retrain_on_drift:
        return Decision(False, f"{summary}: {off}", needed)
    return Decision(True, f"{summary}: {queued}", needed)
