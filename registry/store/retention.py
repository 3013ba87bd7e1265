"""The prediction log over months: retention in batches, and an export for a warehouse.

Retention (:meth:`PredictionLogStore.prune`) deletes predictions older than a cutoff, a batch per
transaction, and never one that something still needs:

- a prediction a label points to (the guard judges labeled rows, and a label's text is kept with the
  label anyway);
- the latest ``keep_latest`` predictions of each model version (a drift check's open window; with little
  traffic those can be older than the cutoff).

A version's drift reference is its own ``reference.parquet`` in its artifact, not rows of this table, so
retention cannot take it away.

Export (:meth:`PredictionLogStore.batches`) reads predictions in time order, in keyset-paged batches
(``created_at``, ``id``), each with the last label given for it, so a table of millions is streamed
without loading it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, true, tuple_
from sqlalchemy.orm import Session

from registry.orm import LabelRow, PredictionRow
from registry.store.traffic import last_labels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    batches: int
    kept_labeled: int  # older than the cutoff, kept because a label points to them
    seconds: float


class PredictionLogStore:
    """The ``predictions`` table's retention and export: ``Registry.prediction_log``, in the registry's
    transaction scope."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Session]]) -> None:
        self._tx = transaction

    def _protected_since(self, s: Any, keep_latest: int) -> dict[tuple[str, int], datetime]:
        """Per model version, the time of its ``keep_latest``-th newest prediction (rows at or after it
        stay: they may be in a drift check's window)."""
        out: dict[tuple[str, int], datetime] = {}
        versions = s.execute(select(PredictionRow.model_name, PredictionRow.model_version).distinct()).all()
        for name, version in versions:
            oldest_kept = s.scalar(
                select(PredictionRow.created_at)
                .where(PredictionRow.model_name == name, PredictionRow.model_version == version)
                .order_by(PredictionRow.created_at.desc())
                .offset(max(keep_latest - 1, 0))
                .limit(1)
            )
            if oldest_kept is None:  # fewer rows than keep_latest: every one of them stays
                oldest_kept = s.scalar(
                    select(func.min(PredictionRow.created_at)).where(
                        PredictionRow.model_name == name, PredictionRow.model_version == version
                    )
                )
            out[(name, version)] = oldest_kept
        return out

    def prune(
        self,
        before: datetime,
        *,
        keep_latest: int = 1000,
        batch_size: int = 5000,
        max_batches: int | None = None,
    ) -> PruneResult:
        """Delete predictions created before ``before`` that no label points to, outside each version's
        latest ``keep_latest``; ``batch_size`` rows per transaction, at most ``max_batches`` of them (None:
        until none is left). Returns what it did."""
        started = time.perf_counter()
        with self._tx() as s:
            protected = self._protected_since(s, keep_latest)
        unlabeled = ~exists().where(LabelRow.prediction_id == PredictionRow.id)
        window = [
            and_(
                PredictionRow.model_name == name,
                PredictionRow.model_version == version,
                PredictionRow.created_at >= since,
            )
            for (name, version), since in protected.items()
        ]
        outside_windows = ~or_(*window) if window else true()
        deleted = batches = 0
        while max_batches is None or batches < max_batches:
            with self._tx() as s:
                ids = list(
                    s.scalars(
                        select(PredictionRow.id)
                        .where(PredictionRow.created_at < before, unlabeled, outside_windows)
                        .order_by(PredictionRow.created_at)
                        .limit(batch_size)
                    )
                )
                if not ids:
                    break
                s.execute(delete(PredictionRow).where(PredictionRow.id.in_(ids)))
            deleted += len(ids)
            batches += 1
        with self._tx() as s:
            kept = s.scalar(
                select(func.count())
                .select_from(PredictionRow)
                .where(PredictionRow.created_at < before, ~unlabeled)
            )
        result = PruneResult(deleted, batches, int(kept or 0), time.perf_counter() - started)
        if deleted:
            logger.info(
                "prediction log: deleted %d rows older than %s in %d batches (%.1f s); kept %d labeled",
                deleted,
                before.isoformat(),
                batches,
                result.seconds,
                result.kept_labeled,
            )
        return result

    def batches(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        model_name: str | None = None,
        batch_size: int = 10_000,
    ) -> Iterator[list[dict[str, Any]]]:
        """Predictions in ``[since, until)`` oldest first, as export records (no embeddings), each with
        ``true_label``: the last label given for it, or None."""
        after: tuple[datetime, str] | None = None
        while True:
            with self._tx() as s:
                query = (
                    select(PredictionRow)
                    .order_by(PredictionRow.created_at, PredictionRow.id)
                    .limit(batch_size)
                )
                if since is not None:
                    query = query.where(PredictionRow.created_at >= since)
                if until is not None:
                    query = query.where(PredictionRow.created_at < until)
                if model_name is not None:
                    query = query.where(PredictionRow.model_name == model_name)
                if after is not None:
                    query = query.where(tuple_(PredictionRow.created_at, PredictionRow.id) > after)
                rows = list(s.scalars(query))
                if not rows:
                    return
                labels = last_labels(s, [r.id for r in rows])
                records = [
                    {
                        "prediction_id": r.id,
                        "created_at": r.created_at,
                        "model_name": r.model_name,
                        "model_version": r.model_version,
                        "text": r.text,
                        "predicted": r.label,
                        "scores": dict(r.scores),
                        "latency_ms": r.latency_ms,
                        "truncated": r.truncated,
                        "runtime": r.runtime,
                        "true_label": labels.get(r.id),
                    }
                    for r in rows
                ]
                after = (rows[-1].created_at, rows[-1].id)
            yield records
