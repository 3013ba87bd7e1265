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

import json
import operator
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Row, Text, cast, exists, insert, select
from sqlalchemy.orm import Session

from registry.entities import ModelVersion
from registry.orm import LabelRequestRow, LabelRow, PredictionRow
from runtime.scores import softmax

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
    ids, probs = _unlabeled_candidates(transaction, version, now, candidates)

    def lookup(index: np.ndarray) -> tuple[np.ndarray, list[str]]:
        return _details(transaction, [ids[i] for i in index])

    rng_seed = seed if seed is not None else uuid.uuid4().int % (2**32)
    queue = rank_queue(probs, limit, lookup=lookup, random_share=random_share, seed=rng_seed)
    handout = Handout(
        id=uuid.uuid4().hex,
        model_name=version.model_name,
        model_version=version.version,
        handed_to=handed_to,
        handed_out_at=now,
        expires_at=now + lease,
        candidates=len(ids),
        random_share=random_share,
    )
    with transaction() as s:
        found = _still_free(s, [ids[c.index] for c in queue], now)
        kept = [c for c in queue if ids[c.index] in found]
        items = [
            queue_item(found[ids[c.index]], c, rank, version, probs[c.index])
            for rank, c in enumerate(kept, start=1)
        ]
        if items:
            s.execute(
                insert(LabelRequestRow),
                [lease_row(handout, item, c.margin) for item, c in zip(items, kept, strict=True)],
            )
    return replace(handout, items=items)


def _unlabeled_candidates(
    transaction: Callable[[], Any], version: ModelVersion, now: datetime, candidates: int
) -> tuple[list[str], np.ndarray]:
    """The ids of the version's latest ``candidates`` predictions that have no label and no unexpired
    lease, newest first, and their probabilities calibrated by the version's temperature."""
    temperature = float((version.calibration or {}).get("temperature", 1.0))
    with transaction() as s:
        rows = s.execute(
            # the scores as stored text, parsed below in one call: 100,000 rows through the JSON type's
            # per-row decoding took most of a hand-out's time
            select(PredictionRow.id, cast(PredictionRow.scores, Text))
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
    ids = [r[0] for r in rows]
    probs = calibrated(json.loads("[" + ",".join(r[1] for r in rows) + "]"), version.labels, temperature)
    return ids, probs


def _still_free(
    s: Session, prediction_ids: Sequence[str], now: datetime
) -> dict[str, Row[str, str, datetime, str]]:
    """The (id, text, created_at, label) of each of ``prediction_ids`` still logged and not handed out
    meanwhile (by another caller, since the candidates were read), by id."""
    taken = set(_active_requests(s, prediction_ids, now))
    return {
        r.id: r
        for chunk in _chunks(prediction_ids)
        for r in s.execute(
            select(PredictionRow.id, PredictionRow.text, PredictionRow.created_at, PredictionRow.label).where(
                PredictionRow.id.in_(chunk)
            )
        )
        if r.id not in taken
    }


def queue_item(
    row: Any, choice: QueueChoice, rank: int, version: ModelVersion, probs: np.ndarray
) -> QueueItem:
    """The queue's ``rank``-th item: the logged prediction ``row`` (id, text, created_at, label) that
    ``choice`` picked, with its calibrated probabilities ``probs`` in the version's label order."""
    return QueueItem(
        prediction_id=row.id,
        text=row.text,
        created_at=row.created_at,
        model_name=version.model_name,
        model_version=version.version,
        label=row.label,
        scores={label: round(float(p), 6) for label, p in zip(version.labels, probs, strict=True)},
        strategy=choice.strategy,
        rank=rank,
        margin=round(choice.margin, 6),
    )


def lease_row(handout: Handout, item: QueueItem, margin: float) -> dict[str, Any]:
    """The ``label_requests`` row that leases ``item`` to the hand-out's holder (``margin`` unrounded)."""
    return {
        "prediction_id": item.prediction_id,
        "model_name": handout.model_name,
        "model_version": handout.model_version,
        "handout": handout.id,
        "strategy": item.strategy,
        "rank": item.rank,
        "margin": margin,
        "handed_to": handout.handed_to,
        "handed_out_at": handout.handed_out_at,
        "expires_at": handout.expires_at,
    }


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


def _details(transaction: Callable[[], Any], prediction_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The logged float16 embeddings of ``prediction_ids`` as float32 rows (NaN where none was logged)
    and their text hashes."""
    found: dict[str, tuple[str, bytes | None]] = {}
    with transaction() as s:
        for chunk in _chunks(prediction_ids):
            query = select(PredictionRow.id, PredictionRow.text_hash, PredictionRow.embedding).where(
                PredictionRow.id.in_(chunk)
            )
            found.update((pid, (key, blob)) for pid, key, blob in s.execute(query))
    keys = [found.get(pid, (pid, None))[0] for pid in prediction_ids]
    blobs = [found.get(pid, ("", None))[1] for pid in prediction_ids]
    width = next((len(b) // 2 for b in blobs if b), 1)
    out = np.full((len(prediction_ids), width), np.nan, dtype=np.float32)
    for k, blob in enumerate(blobs):
        if blob is not None and len(blob) == 2 * width:
            out[k] = np.frombuffer(blob, dtype=np.float16)
    return out, keys


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
