"""A hand-out of the label queue: read the candidates from the registry, rank them
(:func:`labeling.ranking.rank_queue`, pure) and lease the picks, so nobody else is offered them meanwhile.

The SQL is the registry's (``registry.store.labelqueue``); this module only composes it with the ranking.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np

from labeling.ranking import RANDOM_SHARE, calibrated, rank_queue
from registry.entities import Handout, ModelVersion, QueuePick
from registry.errors import InvalidInputError
from registry.store import Registry

LEASE = timedelta(hours=24)  # how long a handed-out item is not offered to anyone else
LEASE_HOURS = LEASE.total_seconds() / 3600
CANDIDATES = 100_000  # the most recent unlabeled predictions considered
MAX_LIMIT = 5_000  # items per hand-out


def hand_out(
    registry: Registry,
    version: ModelVersion,
    limit: int,
    *,
    handed_to: str,
    random_share: float = RANDOM_SHARE,
    lease_hours: float = LEASE_HOURS,
    seed: int | None = None,
    candidates: int = CANDIDATES,
) -> Handout:
    """The label queue of ``version``: up to ``limit`` of its latest ``candidates`` unlabeled predictions
    not handed out yet, most informative first (a ``random_share`` of them drawn uniformly, with ``seed``),
    leased to ``handed_to`` for ``lease_hours`` by the registry's clock."""
    check_hand_out(limit, random_share, lease_hours)
    now = registry.now()
    ids, scores = registry.label_candidates(version, now=now, limit=candidates)
    temperature = float((version.calibration or {}).get("temperature", 1.0))
    probs = calibrated(scores, version.labels, temperature)

    def lookup(index: np.ndarray) -> tuple[np.ndarray, list[str]]:
        return registry.prediction_details([ids[i] for i in index])

    rng_seed = seed if seed is not None else uuid.uuid4().int % (2**32)
    queue = rank_queue(probs, limit, lookup=lookup, random_share=random_share, seed=rng_seed)
    picks = [
        QueuePick(
            prediction_id=ids[c.index],
            strategy=c.strategy,
            margin=c.margin,
            scores={label: float(p) for label, p in zip(version.labels, probs[c.index], strict=True)},
        )
        for c in queue
    ]
    handout = Handout(
        id=uuid.uuid4().hex,
        model_name=version.model_name,
        model_version=version.version,
        handed_to=handed_to,
        handed_out_at=now,
        expires_at=now + timedelta(hours=lease_hours),
        candidates=len(ids),
        random_share=random_share,
    )
    return registry.lease_for_labels(handout, picks)


def check_hand_out(limit: int, random_share: float, lease_hours: float) -> None:
    """Refuse a hand-out's arguments out of bounds, naming the argument (:class:`InvalidInputError`)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be 1 to {MAX_LIMIT}, got {limit}")
    if not 0.0 <= random_share <= 1.0:
        raise InvalidInputError(f"random_share must be within 0 and 1, got {random_share}")
    if not lease_hours > 0:
        raise InvalidInputError(f"lease_hours must be above 0, got {lease_hours}")
