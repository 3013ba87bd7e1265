"""The label queue's ranking, a pure function of the candidates' probabilities: which logged predictions
a label would teach the model most, in order.

Margin sampling: the smaller the gap between a prediction's two highest calibrated probabilities, the
more its label tells (for transformer classifiers it beat entropy and least-confidence sampling in
Schröder et al., "Revisiting uncertainty-based query strategies for active learning with transformers",
Findings of ACL 2022). Alone it fills a queue with near-copies of one confusing template, so the queue
is built greedily in margin order, and a candidate whose logged embedding is within ``SIMILAR_COSINE``
of one already chosen (or whose text is one already chosen) waits until the distinct candidates run
out. A uniform-random share (``RANDOM_SHARE``), marked as such and spread evenly through the queue,
keeps an unbiased sample of the traffic: estimates of accuracy need labels nobody chose for being hard.

``labeling.handout.hand_out`` reads the candidates from the registry, ranks them here and leases the picks.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from registry.entities import MARGIN, RANDOM
from runtime.scores import softmax

RANDOM_SHARE = 0.10  # of the queue, drawn uniformly from every candidate
SIMILAR_COSINE = 0.95  # two logged embeddings at least this close count as one template
POOL_FACTOR = 20  # candidates considered per queue place, in margin order: bounds the diversity pass
STRATEGIES = (MARGIN, RANDOM)  # how an item was chosen (registry.entities names them: the leases keep it)


@dataclass(frozen=True)
class QueueChoice:
    index: int  # into the candidates given to rank_queue
    strategy: str  # MARGIN or RANDOM
    rank: int  # 1-based place in the queue
    margin: float  # top-1 minus top-2 calibrated probability


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of each row (1.0 for a single-class row)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top = np.partition(probs, -2, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


Lookup = Callable[[np.ndarray], tuple[np.ndarray | None, Sequence[str] | None]]
"""Given candidate indices, their embeddings (rows of NaN where none was logged) and keys."""


def rank_queue(
    probs: np.ndarray,
    limit: int,
    *,
    embeddings: np.ndarray | None = None,
    keys: Sequence[str] | None = None,
    lookup: Lookup | None = None,
    random_share: float = RANDOM_SHARE,
    similar: float = SIMILAR_COSINE,
    seed: int = 0,
) -> list[QueueChoice]:
    """Up to ``limit`` candidates (rows of ``probs``, calibrated), each chosen once, in queue order.

    ``embeddings`` (rows of NaN where none was logged) and ``keys`` (e.g. text hashes) drive the
    diversity rule; or ``lookup`` gives both for the candidates the diversity pass reaches, a slice of
    the margin order at a time (so a queue over a large log reads only what it considers). Without
    them the queue is in plain margin order. ``round(limit * random_share)`` places go to candidates
    drawn uniformly at random (with ``seed``), spread evenly through the queue.
    """
    if not 0.0 <= random_share <= 1.0:
        raise ValueError(f"random_share must be within [0, 1], got {random_share}")
    n = len(probs)
    limit = min(limit, n)
    if limit <= 0:
        return []
    gaps = margins(probs)
    rng = np.random.default_rng(seed)
    n_random = int(round(limit * random_share))
    randoms = rng.choice(n, size=n_random, replace=False) if n_random else np.array([], dtype=int)
    taken = np.zeros(n, dtype=bool)
    taken[randoms] = True
    if lookup is None and (embeddings is not None or keys is not None):

        def lookup(index: np.ndarray) -> tuple[np.ndarray | None, Sequence[str] | None]:
            return (
                embeddings[index] if embeddings is not None else None,
                [keys[i] for i in index] if keys is not None else None,
            )

    chosen = _diverse_by_margin(gaps, taken, limit - n_random, lookup, similar)
    order = _interleave(chosen, [int(i) for i in randoms], limit)
    return [
        QueueChoice(index=i, strategy=strategy, rank=rank, margin=float(gaps[i]))
        for rank, (i, strategy) in enumerate(order, start=1)
    ]


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, vectors / norms, np.nan)


def _diverse_by_margin(
    gaps: np.ndarray, taken: np.ndarray, want: int, lookup: Lookup | None, similar: float
) -> list[int]:
    if want <= 0:
        return []
    free = np.flatnonzero(~taken)
    pool = free[np.lexsort((free, gaps[free]))][: want * POOL_FACTOR]  # smallest margin first
    if lookup is None:
        return [int(i) for i in pool[:want]]
    chosen: list[int] = []
    deferred: list[int] = []
    seen_keys: set[str] = set()
    picked: np.ndarray | None = None  # unit vectors of the chosen, first ``count`` rows in use
    count = 0
    step = max(2 * want, 64)  # candidates looked up at a time
    for start in range(0, len(pool), step):
        if len(chosen) == want:
            break
        part = pool[start : start + step]
        vectors, part_keys = lookup(part)
        unit = _unit_rows(vectors) if vectors is not None else None
        if unit is not None and picked is None:
            picked = np.empty((want, unit.shape[1]), dtype=np.float32)
        for k, i in enumerate(part):
            if len(chosen) == want:
                break
            if part_keys is not None and part_keys[k] in seen_keys:
                deferred.append(int(i))
                continue
            if unit is not None and picked is not None and unit.shape[1] == picked.shape[1]:
                v = unit[k]
                if not np.isnan(v).any():
                    if count and float(np.max(picked[:count] @ v)) >= similar:
                        deferred.append(int(i))
                        continue
                    picked[count] = v
                    count += 1
            chosen.append(int(i))
            if part_keys is not None:
                seen_keys.add(part_keys[k])
    for i in deferred:  # the pool's distinct candidates ran out: near-copies next, in margin order
        if len(chosen) == want:
            break
        chosen.append(i)
    return chosen


def _interleave(chosen: list[int], randoms: list[int], limit: int) -> list[tuple[int, str]]:
    """The margin picks in order, with the random ones spread evenly among them."""
    total = min(limit, len(chosen) + len(randoms))
    slots = {int(round((k + 0.5) * total / len(randoms))) for k in range(len(randoms))} if randoms else set()
    out: list[tuple[int, str]] = []
    margin_iter, random_iter = iter(chosen), iter(randoms)
    for place in range(total):
        source = random_iter if place in slots else margin_iter
        item = next(source, None)
        if item is None:  # the other kind ran out
            source = margin_iter if source is random_iter else random_iter
            item = next(source)
            strategy = MARGIN if source is margin_iter else RANDOM
        else:
            strategy = RANDOM if source is random_iter else MARGIN
        out.append((item, strategy))
    return out


def calibrated(scores: Sequence[dict[str, float]], labels: Sequence[str], temperature: float) -> np.ndarray:
    """The logged probabilities (softmax of the logits) re-scaled by the version's temperature: a softmax
    of log-probabilities over ``temperature`` equals a softmax of the logits over it."""
    try:  # every label in every row, as the service logs them: one C-level lookup per row
        values = list(map(operator.itemgetter(*labels), scores)) if len(labels) > 1 else None
    except (KeyError, TypeError):
        values = None
    if values is None:
        values = [[row.get(label, 0.0) for label in labels] for row in scores]
    probs = np.array(values, dtype=np.float64).reshape(len(scores), len(labels))
    if not len(probs):
        return probs.reshape(0, len(labels))
    return softmax(np.log(np.clip(probs, 1e-12, 1.0)), temperature=temperature)
