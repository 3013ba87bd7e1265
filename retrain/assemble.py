"""Data for a retraining run: the labels that arrived since the champion was trained, plus a replay
sample of the champion's own training data (so the challenger does not forget), de-duplicated by text,
with the most recent labels held out for the gate.

Both samples are stratified by label, so skewed and shifting class priors do not starve a class:

- held out: for each class, its most recent ``holdout_fraction`` share of the new labels (at least one
  row for a class with two or more), so a class that is rare lately is still in the gate's rows; the
  rest of the new labels are trained on. Within a class the split is by time; across classes the
  held-out rows are then not strictly the latest overall.
- replayed: every class of the champion's training rows gets at least ``min(available,
  min_replay_per_class)`` rows and the rest of the sample is shared in proportion to the classes' sizes,
  so a class that vanished from the recent labels is still trained on.

A pure function of data frames: the run loads them from the registry and the champion's snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from common.texts import text_key
from contracts import AssemblyConfig

COLUMNS = ["text", "label", "domain", "time"]
_NAMED_LABELS = 10  # unknown labels named in a reason


class SkipRun(Exception):
    """The run cannot train on what there is; it ends as ``skipped`` with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RunData:
    train: pd.DataFrame  # columns text, label, domain, time, origin ("new" or "replay")
    recent_heldout: pd.DataFrame  # the latest new labels of each class: the gate's main evaluation set
    old_heldout: pd.DataFrame  # the champion's own held-out rows: the forgetting check
    counts: dict[str, int] = field(default_factory=dict)
    # label -> {"new_train", "replay", "recent_heldout", "old_heldout"}: rows of each class in each set
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    # labels outside the champion's label set -> how many new rows carried them (ignored)
    unknown_labels: dict[str, int] = field(default_factory=dict)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.reindex(columns=COLUMNS).copy()
    out["time"] = pd.to_datetime(out["time"], utc=True)
    out["_key"] = out["text"].map(text_key)
    return out


def _ignored(unknown: Mapping[str, int]) -> str:
    """``; 7 rows with labels outside the champion's label set were ignored ('spam' 5, 'ham' 2)``."""
    if not unknown:
        return ""
    named = ", ".join(f"{label!r} {n}" for label, n in list(unknown.items())[:_NAMED_LABELS])
    more = f", {len(unknown) - _NAMED_LABELS} more" if len(unknown) > _NAMED_LABELS else ""
    return (
        f"; {sum(unknown.values())} rows with labels outside the champion's label set were ignored "
        f"({named}{more})"
    )


def holdout_size(n: int, fraction: float) -> int:
    """Rows of a class held out: its ``fraction`` share, rounded half up, at least 1 when it has 2 or more."""
    if n < 2:
        return 0
    return min(n - 1, max(1, math.floor(n * fraction + 0.5)))


def split_recent(new: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held out) of time-ordered ``new``: each class's latest ``holdout_size`` rows held out."""
    held: list[int] = []
    for _, rows in new.groupby("label", sort=True):
        k = holdout_size(len(rows), fraction)
        if k:
            held.extend(rows.index[-k:])  # ``new`` is in time order, and groupby keeps that order
    mask = new.index.isin(held)
    return new[~mask], new[mask]


def allocate(available: Mapping[str, int], total: int, floor: int) -> dict[str, int]:
    """Rows to take from each class: at least ``min(available, floor)`` each, then the rest of ``total``
    in proportion to the classes' sizes (largest remainders), never more than a class has. The floors
    win over ``total``."""
    take = {label: min(n, floor) for label, n in available.items()}
    left = total - sum(take.values())
    while left > 0:
        room = {
            label: available[label] - take[label] for label in available if available[label] > take[label]
        }
        if not room:
            break
        weight = sum(available[label] for label in room)
        quota = {label: left * available[label] / weight for label in room}
        shares = {label: min(room[label], math.floor(quota[label])) for label in room}
        if all(shares[label] == math.floor(quota[label]) for label in room):  # no class ran out
            spare = left - sum(shares.values())
            by_remainder = sorted(room, key=lambda c: (math.floor(quota[c]) - quota[c], -available[c], c))
            for label in by_remainder:
                if spare and shares[label] < room[label]:
                    shares[label] += 1
                    spare -= 1
        for label, n in shares.items():
            take[label] += n
        left -= sum(shares.values())
    return take


def _replay_sample(pool: pd.DataFrame, n_replay: int, config: AssemblyConfig) -> pd.DataFrame:
    if n_replay <= 0 or pool.empty:
        return pool.iloc[:0]
    available = pool["label"].value_counts().sort_index().to_dict()
    take = allocate(available, n_replay, config.min_replay_per_class)
    parts = [
        pool[pool["label"] == label].sample(n=n, random_state=config.seed) for label, n in take.items() if n
    ]
    return pd.concat(parts).sort_index() if parts else pool.iloc[:0]


def _per_class(labels: Sequence[str], **sets: pd.DataFrame) -> dict[str, dict[str, int]]:
    counted = {name: frame["label"].value_counts().to_dict() for name, frame in sets.items()}
    return {label: {name: int(counted[name].get(label, 0)) for name in sets} for label in labels}


def assemble(
    new_labels: pd.DataFrame,
    replay: pd.DataFrame,
    old_heldout: pd.DataFrame,
    *,
    labels: Sequence[str],
    config: AssemblyConfig | None = None,
) -> RunData:
    config = config or AssemblyConfig()
    known = list(labels)
    new = _normalise(new_labels)
    outside = ~new["label"].isin(known)
    unknown = {str(k): int(v) for k, v in new.loc[outside, "label"].value_counts().items()}
    new = new[~outside]
    new = new.sort_values("time", kind="stable").drop_duplicates("_key", keep="last").reset_index(drop=True)
    if len(new) < config.min_new_labels:
        raise SkipRun(
            f"{len(new)} new labelled texts; at least {config.min_new_labels} are needed{_ignored(unknown)}"
        )
    train_new, recent = split_recent(new, config.holdout_fraction)

    taken = set(new["_key"])
    old = _normalise(old_heldout)
    old = old[~old["_key"].isin(taken)]
    pool = _normalise(replay)
    pool = pool[pool["label"].isin(known)]
    pool = pool[~pool["_key"].isin(taken | set(old["_key"]))].drop_duplicates("_key", keep="last")
    pool = pool.reset_index(drop=True)
    n_replay = min(len(pool), round(len(train_new) * config.replay_ratio))
    replayed = _replay_sample(pool, n_replay, config)

    train = pd.concat([train_new.assign(origin="new"), replayed.assign(origin="replay")], ignore_index=True)
    classes = sorted(train["label"].unique())
    if len(classes) < 2:
        raise SkipRun(
            f"the {len(train)} training rows ({len(train_new)} new, {len(replayed)} replayed) hold "
            f"{'a single class' if classes else 'no class'} ({', '.join(classes) or 'none'}); at least 2 are "
            f"needed{_ignored(unknown)}"
        )
    drop = ["_key"]
    return RunData(
        train=train.drop(columns=drop),
        recent_heldout=recent.drop(columns=drop).reset_index(drop=True),
        old_heldout=old.drop(columns=drop).reset_index(drop=True),
        counts={
            "new_labels": len(new),
            "new_train": len(train_new),
            "replay": len(replayed),
            "recent_heldout": len(recent),
            "old_heldout": len(old),
            "unknown_labels": sum(unknown.values()),
        },
        per_class=_per_class(
            known, new_train=train_new, replay=replayed, recent_heldout=recent, old_heldout=old
        ),
        unknown_labels=unknown,
    )
