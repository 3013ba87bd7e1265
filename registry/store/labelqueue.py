"""The label queue's records: the candidates a hand-out ranks (the latest unlabeled predictions not handed
out), what the ranking looks up about them, and the leases (``label_requests``) of the ones it picked.

The ranking itself is pure and lives in ``labeling.ranking``; ``labeling.handout.hand_out`` composes it
with these reads and writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Row, Text, cast, exists, insert, select
from sqlalchemy.orm import Session

from registry import entities as e
from registry.orm import LabelRequestRow, LabelRow, PredictionRow
from registry.store.base import StoreBase, chunks


class LabelQueue(StoreBase):
    """The label queue's candidates, their details and their leases."""

    def label_candidates(
        self, version: e.ModelVersion, *, now: datetime, limit: int
    ) -> tuple[list[str], list[dict[str, float]]]:
        """The ids of the version's latest ``limit`` predictions that have no label and no lease unexpired
        at ``now``, newest first, and their logged scores."""
        with self._tx() as s:
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
                .limit(limit)
            ).all()
        scores: list[dict[str, float]] = json.loads("[" + ",".join(r[1] for r in rows) + "]")
        return [r[0] for r in rows], scores

    def prediction_details(self, prediction_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """The logged float16 embeddings of ``prediction_ids`` as float32 rows (NaN where none was logged)
        and their text hashes (the id where the prediction is gone)."""
        found: dict[str, tuple[str, bytes | None]] = {}
        with self._tx() as s:
            for chunk in chunks(prediction_ids):
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

    def lease_for_labels(self, handout: e.Handout, picks: Sequence[e.QueuePick]) -> e.Handout:
        """Lease ``picks`` (in queue order) to the hand-out's holder until its ``expires_at``: those still
        logged and not handed out meanwhile (by another caller, since the candidates were read), numbered
        in order. Returns ``handout`` with them as its items."""
        with self._tx() as s:
            found = _still_free(s, [p.prediction_id for p in picks], handout.handed_out_at)
            kept = [p for p in picks if p.prediction_id in found]
            items = [
                queue_item(found[p.prediction_id], p, rank, handout) for rank, p in enumerate(kept, start=1)
            ]
            if items:
                s.execute(
                    insert(LabelRequestRow),
                    [lease_row(handout, item, p.margin) for item, p in zip(items, kept, strict=True)],
                )
        return replace(handout, items=items)

    def chosen_for_labels(self, prediction_ids: Sequence[str], strategy: str = e.MARGIN) -> set[str]:
        """Which of ``prediction_ids`` the label queue handed out by ``strategy``: labels asked for because
        the model was unsure are not a sample of its accuracy (the random share is)."""
        found: set[str] = set()
        with self._tx() as s:
            for chunk in chunks(prediction_ids):
                found.update(
                    s.scalars(
                        select(LabelRequestRow.prediction_id)
                        .where(
                            LabelRequestRow.prediction_id.in_(list(chunk)),
                            LabelRequestRow.strategy == strategy,
                        )
                        .distinct()
                    )
                )
        return found


def queue_item(row: Any, pick: e.QueuePick, rank: int, handout: e.Handout) -> e.QueueItem:
    """The hand-out's ``rank``-th item: the logged prediction ``row`` (id, text, created_at, label) that
    ``pick`` chose, its probabilities and margin rounded to 6 digits."""
    return e.QueueItem(
        prediction_id=row.id,
        text=row.text,
        created_at=row.created_at,
        model_name=handout.model_name,
        model_version=handout.model_version,
        label=row.label,
        scores={label: round(float(p), 6) for label, p in pick.scores.items()},
        strategy=pick.strategy,
        rank=rank,
        margin=round(pick.margin, 6),
    )


def lease_row(handout: e.Handout, item: e.QueueItem, margin: float) -> dict[str, Any]:
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


def _still_free(
    s: Session, prediction_ids: Sequence[str], now: datetime
) -> dict[str, Row[str, str, datetime, str]]:
    """The (id, text, created_at, label) of each of ``prediction_ids`` still logged and without a lease
    unexpired at ``now``, by id."""
    taken = set(_active_requests(s, prediction_ids, now))
    return {
        r.id: r
        for chunk in chunks(prediction_ids)
        for r in s.execute(
            select(PredictionRow.id, PredictionRow.text, PredictionRow.created_at, PredictionRow.label).where(
                PredictionRow.id.in_(chunk)
            )
        )
        if r.id not in taken
    }


def _active_requests(s: Session, prediction_ids: Sequence[str], now: datetime) -> list[str]:
    return [
        pid
        for chunk in chunks(prediction_ids)
        for pid in s.scalars(
            select(LabelRequestRow.prediction_id).where(
                LabelRequestRow.prediction_id.in_(chunk), LabelRequestRow.expires_at > now
            )
        )
    ]
