"""Data for a retraining run: the labels that arrived since the champion was trained, plus a replay
sample of the champion's own training data (so the challenger does not forget), de-duplicated by text,
with the most recent labels held out for the gate.

A pure function of data frames: the run loads them from the registry and the champion's snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from registry.texts import text_key

COLUMNS = ["text", "label", "domain", "time"]


class SkipRun(Exception):
    """The run cannot train on what there is; it ends as ``skipped`` with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AssemblyConfig:
    min_new_labels: int = 200
    holdout_fraction: float = 0.2  # the most recent share of the new labels, held out for the gate
    replay_ratio: float = 1.0  # replayed champion-training rows per new training row
    seed: int = 13


@dataclass(frozen=True)
class RunData:
    train: pd.DataFrame  # columns text, label, domain, time, origin ("new" or "replay")
    recent_heldout: pd.DataFrame  # the latest new labels: the gate's main evaluation set
    old_heldout: pd.DataFrame  # the champion's own held-out rows: the forgetting check
    counts: dict[str, int] = field(default_factory=dict)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.reindex(columns=COLUMNS).copy()
    out["time"] = pd.to_datetime(out["time"], utc=True)
    out["_key"] = out["text"].map(text_key)
    return out


def assemble(
    new_labels: pd.DataFrame,
    replay: pd.DataFrame,
    old_heldout: pd.DataFrame,
    *,
    labels: Sequence[str],
    config: AssemblyConfig = AssemblyConfig(),
) -> RunData:
    new = _normalise(new_labels)
    new = new[new["label"].isin(list(labels))]
    new = new.sort_values("time", kind="stable").drop_duplicates("_key", keep="last")
    if len(new) < config.min_new_labels:
        raise SkipRun(f"{len(new)} new labelled texts; at least {config.min_new_labels} are needed")
    n_holdout = max(1, math.ceil(len(new) * config.holdout_fraction))
    recent = new.iloc[-n_holdout:]
    train_new = new.iloc[:-n_holdout]
    classes = sorted(train_new["label"].unique())
    if len(classes) < 2:
        raise SkipRun(
            f"the {len(train_new)} new training labels hold a single class ({', '.join(classes) or 'none'})"
        )

    taken = set(new["_key"])
    old = _normalise(old_heldout)
    old = old[~old["_key"].isin(taken)]
    pool = _normalise(replay)
    pool = pool[~pool["_key"].isin(taken | set(old["_key"]))].drop_duplicates("_key", keep="last")
    n_replay = min(len(pool), round(len(train_new) * config.replay_ratio))
    replayed = pool.sample(n=n_replay, random_state=config.seed) if n_replay else pool.iloc[:0]

    train = pd.concat([train_new.assign(origin="new"), replayed.assign(origin="replay")], ignore_index=True)
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
        },
    )
