"""The post-promotion guard: a promoted champion against the version it replaced, on the labeled rows
the new champion served since its promotion. If it is significantly worse, the guard rolls it back.

The decision is a pure function of paired predictions (:func:`judge`); the job that finds the latest
champion move, scores its labeled rows with the replaced version and rolls back on harm is
:func:`orchestration.guard_job.guard_champion`.

The test is an exact one-sided McNemar test: of the rows where exactly one model is right, does the
replaced one win significantly more often than half? Harm is that, at the look's level, together with an
observed accuracy loss beyond ``margin``. The guard looks at a fixed schedule of labeled-row counts:
``min_labels`` doubling up to ``window_labels``, then every half window up to ``watch_labels`` (50, 100,
200, 300, 450, ..., 1000 by default). Each look judges the latest ``window_labels`` rows it has (all of
them at the early looks), so harm that begins after the promotion (the stream moves on to what the new
champion handles worse) is seen as well as harm from the start. The schedule is known in advance, so
``alpha`` is split between its looks (Bonferroni, valid however the overlapping windows correlate): a
champion as good as the replaced one is rolled back with probability below ``alpha`` over the whole
watch, not per tick. After the last look without harm the guard ends for that promotion.

Usage (a doctest, run by ``tests/unit/test_doctests.py``): v3 replaced v2 and answers "pos" to every
one of the first 100 labeled rows it served, where v2 would have been right on all of them:

>>> y_true = ["pos", "neg"] * 50
>>> verdict = judge(y_true, ["pos"] * 100, y_true, GuardConfig(), names=("v3", "v2"))
>>> verdict.status
<GuardStatus.ROLLBACK: 'rollback'>
>>> print(verdict.reason)
v3 is worse than v2 by more than 1.0 pts, significantly: on the same 100 labeled rows (1-100 since the
promotion) v3 scores 0.500 and v2 1.000 (-50.0 pts); only v3 right on 0, only v2 on 50: one-sided exact
McNemar p = 8.9e-16 (level 0.00556 per look, 9 looks)
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from common.templating import pts


@dataclass(frozen=True)
class GuardConfig:
    min_labels: int = 50  # labeled rows the new champion must have served before its first look
    window_labels: int = 300  # the latest rows each look judges
    watch_labels: int = 1000  # the last look: the guard ends here for this promotion if nothing was wrong
    margin: float = 0.01  # an accuracy loss beyond this (0.01 = 1 pt) counts as harm, if significant
    alpha: float = 0.05  # over all looks of one watch (split between them)

    def __post_init__(self) -> None:
        if not 1 <= self.min_labels <= self.watch_labels or self.window_labels < self.min_labels:
            raise ValueError(
                f"guard: need 1 <= min_labels ({self.min_labels}) <= watch_labels ({self.watch_labels}) "
                f"and window_labels ({self.window_labels}) >= min_labels"
            )
        if not 0 < self.alpha < 1 or self.margin < 0:
            raise ValueError(f"guard: alpha {self.alpha} must be in (0, 1) and margin {self.margin} >= 0")

    @property
    def window(self) -> int:
        return min(self.window_labels, self.watch_labels)

    def looks(self) -> tuple[int, ...]:
        """Labeled-row counts at which the champion is judged: ``min_labels`` doubling up to the window,
        then every half window, ending at ``watch_labels``."""
        out, n = [], self.min_labels
        while n < min(self.window, self.watch_labels):
            out.append(n)
            n *= 2
        n = self.window
        step = max(1, self.window // 2)
        while n < self.watch_labels:
            out.append(n)
            n += step
        return (*out, self.watch_labels)

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / len(self.looks())


class GuardStatus(enum.StrEnum):
    WAITING = "waiting"  # fewer labeled rows than the first look
    WATCHING = "watching"  # judged at a look: no harm so far
    ROLLBACK = "rollback"  # significantly worse: roll back
    CLEARED = "cleared"  # no harm at the last look: the guard ends


@dataclass(frozen=True)
class GuardVerdict:
    status: GuardStatus
    reason: str
    labeled: int  # labeled rows served by the champion since its promotion
    look: int  # the latest look reached (0 while waiting): its window of rows ends there
    judged: int = 0  # rows in that window
    champion_accuracy: float | None = None
    replaced_accuracy: float | None = None
    difference: float | None = None  # champion - replaced, on the judged rows
    champion_only_right: int = 0  # rows only the champion got right
    replaced_only_right: int = 0  # rows only the replaced version got right
    p_value: float | None = None
    alpha_per_look: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    y_true: Sequence[str],
    champion_pred: Sequence[str],
    replaced_pred: Sequence[str],
    config: GuardConfig,
    *,
    names: tuple[str, str] = ("the champion", "the replaced version"),
    labeled: int | None = None,
) -> GuardVerdict:
    """The guard's decision on rows in serving order (labels and both models' predicted labels).
    ``labeled``: how many labeled rows there are in all, when only the first ones are passed (the
    latest look's)."""
    n = len(y_true)
    if len(champion_pred) != n or len(replaced_pred) != n:
        raise ValueError(
            f"paired predictions need equal lengths: {n} labels, {len(champion_pred)} champion, "
            f"{len(replaced_pred)} replaced"
        )
    total = n if labeled is None else labeled
    reached = [look for look in config.looks() if look <= n]
    if not reached:
        return GuardVerdict(
            GuardStatus.WAITING,
            f"{total} labeled rows since the promotion; the first look is at {config.min_labels}",
            labeled=total,
            look=0,
            alpha_per_look=config.alpha_per_look,
        )
    look = reached[-1]
    first = max(0, look - config.window)  # the look's window: its latest rows
    paired = paired_comparison(y_true[first:look], champion_pred[first:look], replaced_pred[first:look])
    level = config.alpha_per_look
    new, old = names
    evidence = (
        f"on the same {paired['judged']} labeled rows ({first + 1}-{look} since the promotion) {new} scores "
        f"{paired['champion_accuracy']:.3f} and {old} {paired['replaced_accuracy']:.3f} "
        f"({pts(paired['difference'])}); only {new} right on {paired['champion_only_right']}, only {old} "
        f"on {paired['replaced_only_right']}: one-sided exact McNemar p = {paired['p_value']:.2g} "
        f"(level {level:.3g} per look, {len(config.looks())} looks)"
    )
    common = {"labeled": total, "look": look, **paired, "alpha_per_look": level}
    if paired["difference"] < -config.margin and paired["p_value"] < level:
        return GuardVerdict(
            GuardStatus.ROLLBACK,
            f"{new} is worse than {old} by more than {config.margin * 100:.1f} pts, significantly: {evidence}",
            **common,
        )
    if look >= config.watch_labels:
        return GuardVerdict(
            GuardStatus.CLEARED, f"no harm at the last look: {evidence}; the guard ends", **common
        )
    return GuardVerdict(GuardStatus.WATCHING, f"no significant harm yet: {evidence}", **common)


def paired_comparison(y: Sequence[str], champion: Sequence[str], replaced: Sequence[str]) -> dict[str, Any]:
    """The paired comparison of two models on the same labeled rows: their accuracies, the rows only one
    of them gets right, and the one-sided exact McNemar test that the replaced one wins more of those."""
    from scipy.stats import binomtest

    champion_right = [p == t for p, t in zip(champion, y, strict=True)]
    replaced_right = [p == t for p, t in zip(replaced, y, strict=True)]
    only_champion = sum(c and not r for c, r in zip(champion_right, replaced_right, strict=True))
    only_replaced = sum(r and not c for c, r in zip(champion_right, replaced_right, strict=True))
    discordant = only_champion + only_replaced
    p_value = binomtest(only_replaced, discordant, 0.5, alternative="greater").pvalue if discordant else 1.0
    acc_a, acc_b = sum(champion_right) / len(y), sum(replaced_right) / len(y)
    return {
        "judged": len(y),
        "champion_accuracy": acc_a,
        "replaced_accuracy": acc_b,
        "difference": acc_a - acc_b,
        "champion_only_right": only_champion,
        "replaced_only_right": only_replaced,
        "p_value": float(p_value),
    }
