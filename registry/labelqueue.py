"""The label queue: which logged predictions a label would teach the model most, in order.

Margin sampling: the smaller the gap between a prediction's two highest calibrated probabilities, the
more its label tells (for transformer classifiers it beat entropy and least-confidence sampling in
Schröder et al., "Revisiting uncertainty-based query strategies for active learning with transformers",
Findings of ACL 2022). Alone it fills a queue with near-copies of one confusing template, so the queue
is built greedily in margin order, and a candidate whose logged embedding is within ``SIMILAR_COSINE``
of one already chosen (or whose text is one already chosen) waits until the distinct candidates run
out. A uniform-random share (``RANDOM_SHARE``), marked as such and spread evenly through the queue,
keeps an unbiased sample of the traffic: estimates of accuracy need labels nobody chose for being hard.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from registry.entities import ModelVersion
from registry.orm import LabelRequestRow, LabelRow, PredictionRow
from registry.scores import softmax

RANDOM_SHARE = 0.10  # of the queue, drawn uniformly from every candidate
LEASE = timedelta(hours=24)  # how long a handed-out item is not offered to anyone else
CANDIDATES = 100_000  # the most recent unlabeled predictions considered
MAX_LIMIT = 5_000  # items per hand-out
SIMILAR_COSINE = 0.95  # two logged embeddings at least this close count as one template
POOL_FACTOR = 20  # candidates considered per queue place, in margin order: bounds the diversity pass
MARGIN = "margin"
RANDOM = "random"
STRATEGIES = (MARGIN, RANDOM)


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


def rank_queue(
    probs: np.ndarray,
    limit: int,
    *,
    embeddings: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
    keys: Sequence[str] | None = None,
    random_share: float = RANDOM_SHARE,
    similar: float = SIMILAR_COSINE,
    seed: int = 0,
) -> list[QueueChoice]:
    """Up to ``limit`` candidates (rows of ``probs``, calibrated), each chosen once, in queue order.

    ``embeddings`` (rows of NaN where none was logged; or a function giving those rows for an array of
    candidate indices, called once, for the candidates the diversity pass may consider) and ``keys``
    (e.g. text hashes) drive the diversity rule; without them the queue is in plain margin order. ``round(limit * random_share)``
    places go to candidates drawn uniformly at random (with ``seed``), spread evenly through the queue.
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
    chosen = _diverse_by_margin(gaps, taken, limit - n_random, embeddings, keys, similar)
    order = _interleave(chosen, [int(i) for i in randoms], limit)
    return [
        QueueChoice(index=i, strategy=strategy, rank=rank, margin=float(gaps[i]))
        for rank, (i, strategy) in enumerate(order, start=1)
    ]


def _diverse_by_margin(
    gaps: np.ndarray,
    taken: np.ndarray,
    want: int,
    embeddings: np.ndarray | Callable[[np.ndarray], np.ndarray] | None,
    keys: Sequence[str] | None,
    similar: float,
) -> list[int]:
    if want <= 0:
        return []
    free = np.flatnonzero(~taken)
    pool = free[np.lexsort((free, gaps[free]))][: want * POOL_FACTOR]  # smallest margin first
    unit = None  # unit vectors of the pool's embeddings, row k for pool[k]
    if embeddings is not None:
        vectors = np.asarray(embeddings(pool) if callable(embeddings) else embeddings[pool], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = np.where(norms > 0, vectors / norms, np.nan)
    chosen: list[int] = []
    deferred: list[int] = []
    seen_keys: set[str] = set()
    picked = np.empty((want, unit.shape[1]), dtype=np.float32) if unit is not None else None
    count = 0  # rows of ``picked`` in use
    for k, i in enumerate(pool):
        if len(chosen) == want:
            break
        if keys is not None and keys[i] in seen_keys:
            deferred.append(int(i))
            continue
        if unit is not None and picked is not None:
            v = unit[k]
            if not np.isnan(v).any():
                if count and float(np.max(picked[:count] @ v)) >= similar:
                    deferred.append(int(i))
                    continue
                picked[count] = v
                count += 1
        chosen.append(int(i))
        if keys is not None:
            seen_keys.add(keys[i])
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


# --- the queue over the prediction log -------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    prediction_id: str
    text: str
    created_at: datetime
    model_name: str
    model_version: int
    label: str  # what the model predicted
    scores: dict[str, float]  # calibrated probabilities, the version's label order
    strategy: str
    rank: int
    margin: float


@dataclass(frozen=True)
class Handout:
    """One answer of the queue: its items, leased to ``handed_to`` until ``expires_at``."""

    id: str
    model_name: str
    model_version: int
    handed_to: str
    handed_out_at: datetime
    expires_at: datetime
    candidates: int  # unlabeled predictions not handed out, among the latest ``CANDIDATES``
    random_share: float
    items: list[QueueItem] = field(default_factory=list)


def calibrated(scores: Sequence[dict[str, float]], labels: Sequence[str], temperature: float) -> np.ndarray:
    """The logged probabilities (softmax of the logits) re-scaled by the version's temperature: a softmax
    of log-probabilities over ``temperature`` equals a softmax of the logits over it."""
    probs = np.array([[row.get(label, 0.0) for label in labels] for row in scores], dtype=np.float64)
    if not len(probs):
        return probs.reshape(0, len(labels))
    return softmax(np.log(np.clip(probs, 1e-12, 1.0)), temperature=temperature)


def hand_out(
    transaction: Callable[[], Any],
    version: ModelVersion,
    limit: int,
    *,
    handed_to: str,
    now: datetime,
    random_share: float = RANDOM_SHARE,
    lease: timedelta = LEASE,
    candidates: int = CANDIDATES,
    seed: int | None = None,
) -> Handout:
    """Rank the version's latest unlabeled predictions not handed out yet (:func:`rank_queue`), lease the
    first ``limit`` to ``handed_to`` and return them. ``transaction()`` opens a registry transaction."""
    temperature = float((version.calibration or {}).get("temperature", 1.0))
    with transaction() as s:
        rows = s.execute(
            select(PredictionRow.id, PredictionRow.text_hash, PredictionRow.scores)
            .where(
                PredictionRow.model_name == version.model_name,
                PredictionRow.model_version == version.version,
                ~exists().where(LabelRow.prediction_id == PredictionRow.id),
                ~exists().where(
                    LabelRequestRow.prediction_id == PredictionRow.id, LabelRequestRow.expires_at > now
                ),
            )
            .order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
            .limit(candidates)
        ).all()
    ids = [r.id for r in rows]
    probs = calibrated([r.scores for r in rows], version.labels, temperature)

    def embeddings_of(index: np.ndarray) -> np.ndarray:
        return _embeddings(transaction, [ids[i] for i in index])

    rng_seed = seed if seed is not None else uuid.uuid4().int % (2**32)
    queue = rank_queue(
        probs,
        limit,
        embeddings=embeddings_of,
        keys=[r.text_hash for r in rows],
        random_share=random_share,
        seed=rng_seed,
    )
    handout = uuid.uuid4().hex
    expires = now + lease
    items: list[QueueItem] = []
    with transaction() as s:
        chosen = [ids[c.index] for c in queue]
        taken = set(_active_requests(s, chosen, now))  # handed out meanwhile, by another caller
        found = {
            r.id: r
            for chunk in _chunks(chosen)
            for r in s.execute(
                select(
                    PredictionRow.id, PredictionRow.text, PredictionRow.created_at, PredictionRow.label
                ).where(PredictionRow.id.in_(chunk))
            )
        }
        rank = 0
        for c in queue:
            pid = ids[c.index]
            if pid in taken or pid not in found:
                continue
            rank += 1
            s.add(
                LabelRequestRow(
                    prediction_id=pid,
                    model_name=version.model_name,
                    model_version=version.version,
                    handout=handout,
                    strategy=c.strategy,
                    rank=rank,
                    margin=c.margin,
                    handed_to=handed_to,
                    handed_out_at=now,
                    expires_at=expires,
                )
            )
            row = found[pid]
            items.append(
                QueueItem(
                    prediction_id=pid,
                    text=row.text,
                    created_at=row.created_at,
                    model_name=version.model_name,
                    model_version=version.version,
                    label=row.label,
                    scores={
                        label: round(float(p), 6)
                        for label, p in zip(version.labels, probs[c.index], strict=True)
                    },
                    strategy=c.strategy,
                    rank=rank,
                    margin=round(c.margin, 6),
                )
            )
    return Handout(
        id=handout,
        model_name=version.model_name,
        model_version=version.version,
        handed_to=handed_to,
        handed_out_at=now,
        expires_at=expires,
        candidates=len(ids),
        random_share=random_share,
        items=items,
    )


def _chunks(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _active_requests(s: Session, prediction_ids: Sequence[str], now: datetime) -> list[str]:
    return [
        pid
        for chunk in _chunks(prediction_ids)
        for pid in s.scalars(
            select(LabelRequestRow.prediction_id).where(
                LabelRequestRow.prediction_id.in_(chunk), LabelRequestRow.expires_at > now
            )
        )
    ]


def _embeddings(transaction: Callable[[], Any], prediction_ids: Sequence[str]) -> np.ndarray:
    """The logged float16 embeddings of ``prediction_ids`` as float32 rows, NaN where none was logged."""
    found: dict[str, bytes] = {}
    with transaction() as s:
        for chunk in _chunks(prediction_ids):
            query = select(PredictionRow.id, PredictionRow.embedding).where(
                PredictionRow.id.in_(chunk), PredictionRow.embedding.is_not(None)
            )
            found.update((pid, blob) for pid, blob in s.execute(query))
    if not found:
        return np.full((len(prediction_ids), 1), np.nan, dtype=np.float32)
    width = len(next(iter(found.values()))) // 2
    out = np.full((len(prediction_ids), width), np.nan, dtype=np.float32)
    for k, pid in enumerate(prediction_ids):
        blob = found.get(pid)
        if blob is not None and len(blob) == 2 * width:
            out[k] = np.frombuffer(blob, dtype=np.float16)
    return out


# --- formats ------------------------------------------------------------------------------------

FORMATS = ("jsonl", "csv", "label-studio")
LABEL_STUDIO_FROM = "label"  # the <Choices name=...> of the labeling config the tasks are made for
LABEL_STUDIO_TO = "text"  # the <Text name=...> it labels


def item_record(item: QueueItem) -> dict[str, Any]:
    """One item as a flat JSON object (the API's and the jsonl format's)."""
    return {
        "prediction_id": item.prediction_id,
        "text": item.text,
        "created_at": item.created_at.isoformat(),
        "model_name": item.model_name,
        "model_version": item.model_version,
        "predicted_label": item.label,
        "scores": item.scores,
        "strategy": item.strategy,
        "rank": item.rank,
        "margin": item.margin,
    }


def label_studio_tasks(handout: Handout) -> list[dict[str, Any]]:
    """Label Studio tasks (``data`` for a ``<Text name="text">`` labeled with ``<Choices name="label">``),
    each with the model's prediction pre-selected: its label, ``score`` (the calibrated top probability)
    and ``model_version``. The prediction id rides in ``data``, so an export of the labeled tasks
    imports back with ``driftline labels import FILE --format label-studio``."""
    return [
        {
            "data": {
                "text": item.text,
                "prediction_id": item.prediction_id,
                "strategy": item.strategy,
                "rank": item.rank,
                "handout": handout.id,
            },
            "predictions": [
                {
                    "model_version": f"{item.model_name} v{item.model_version}",
                    "score": item.scores.get(item.label, 0.0),
                    "result": [
                        {
                            "from_name": LABEL_STUDIO_FROM,
                            "to_name": LABEL_STUDIO_TO,
                            "type": "choices",
                            "value": {"choices": [item.label]},
                        }
                    ],
                }
            ],
        }
        for item in handout.items
    ]


def label_studio_labels(tasks: Any, source: str) -> list[tuple[str, str]]:
    """(prediction id, label) of each annotated task of a Label Studio JSON export: the last annotation
    not cancelled, its first choice. Tasks without one are skipped; a task that is not what
    :func:`label_studio_tasks` made raises ValueError naming it."""
    if not isinstance(tasks, list):
        raise ValueError(
            f"{source}: a Label Studio export is a JSON list of tasks, got {type(tasks).__name__}"
        )
    out: list[tuple[str, str]] = []
    for n, task in enumerate(tasks):
        where = f"{source}: task {n}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("prediction_id"), str):
            raise ValueError(
                f"{where} has no data.prediction_id (tasks must come from `driftline labels queue`)"
            )
        choices = None
        for annotation in task.get("annotations") or []:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            for result in annotation.get("result") or []:
                value = result.get("value") if isinstance(result, dict) else None
                if isinstance(value, dict) and value.get("choices"):
                    choices = value["choices"]
                    break
        if choices is None:
            continue
        if not isinstance(choices[0], str):
            raise ValueError(f"{where}: its choice is not a label: {choices[0]!r}")
        out.append((data["prediction_id"], choices[0]))
    return out
