"""What the served model sees and is told: logged predictions, the labels given for them (or for texts
seen elsewhere), each of one model, and the windows of a version's traffic the monitor and the guard
judge it on. The label queue's leases over the log are ``registry.store.labelqueue``'s."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, insert, or_, select
from sqlalchemy.orm import Session

from common.texts import clean_label, clean_text, label_hint, text_hash
from registry import entities as e
from registry.errors import InvalidInputError, NotFoundError
from registry.orm import LabelRow, PredictionRow
from registry.store.base import ID_CHUNK, StoreBase

MAX_LABEL_CHARS = 200  # the width of every label column


class Traffic(StoreBase):
    """Predictions, labels and windows of a version's traffic."""

    # --- predictions ------------------------------------------------------------------------

    def add_predictions(self, rows: Sequence[e.NewPrediction]) -> int:
        """Insert logged predictions in one statement (executemany); returns how many."""
        if not rows:
            return 0
        with self._tx() as s:
            s.execute(
                insert(PredictionRow),
                [
                    {
                        "id": r.id,
                        "created_at": r.created_at,
                        "text": clean_text(r.text),
                        "text_hash": r.text_hash,
                        "label": r.label,
                        "scores": r.scores,
                        "embedding": r.embedding,
                        "model_name": r.model_name,
                        "model_version": r.model_version,
                        "latency_ms": r.latency_ms,
                        "truncated": r.truncated,
                        "runtime": r.runtime,
                    }
                    for r in rows
                ],
            )
        return len(rows)

    def get_predictions(self, ids: Sequence[str]) -> dict[str, e.Prediction]:
        with self._tx() as s:
            found = s.scalars(select(PredictionRow).where(PredictionRow.id.in_(list(ids))))
            return {r.id: r.to_entity() for r in found}

    def count_predictions(self, model_name: str | None = None) -> int:
        with self._tx() as s:
            query = select(func.count()).select_from(PredictionRow)
            if model_name is not None:
                query = query.where(PredictionRow.model_name == model_name)
            return int(s.scalar(query) or 0)

    # --- labels -----------------------------------------------------------------------------

    def add_labels(
        self, items: Sequence[e.NewLabel], *, allowed_labels: Sequence[str] | None = None
    ) -> list[e.Label]:
        """Store labels all-or-nothing: an unknown prediction id or label refuses the whole batch.

        A label of a prediction belongs to the model that served it; a label of a text, to the
        ``model_name`` it names. Raises :class:`NotFoundError` naming every unknown prediction id, and
        :class:`InvalidInputError` naming every unknown label; nothing is written then.
        """
        items = [clean_label_item(item) for item in items]
        check_labels(items, allowed_labels)
        now = self._clock()
        with self._tx() as s:
            predictions = _predictions_labeled(s, items)
            rows = [_label_row(item, predictions, now) for item in items]
            s.add_all(rows)
            s.flush()
            return [r.to_entity() for r in rows]

    def count_labels(self, model_name: str, *, since: datetime | None = None) -> int:
        """How many labels ``model_name`` has (given since ``since``)."""
        with self._tx() as s:
            query = select(func.count()).select_from(LabelRow).where(_labels_of(model_name))
            if since is not None:
                query = query.where(LabelRow.created_at >= since)
            return int(s.scalar(query) or 0)

    def list_labels(
        self, model_name: str, *, since: datetime | None = None, limit: int = 10_000
    ) -> list[e.Label]:
        """The labels of ``model_name`` (given since ``since``), oldest first."""
        with self._tx() as s:
            query = select(LabelRow).where(_labels_of(model_name)).order_by(LabelRow.id).limit(limit)
            if since is not None:
                query = query.where(LabelRow.created_at >= since)
            return [r.to_entity() for r in s.scalars(query)]

    # --- windows of a version's traffic -----------------------------------------------------------

    def window(
        self, model_name: str, model_version: int, *, limit: int
    ) -> list[tuple[e.Prediction, str | None]]:
        """The latest ``limit`` predictions served by one version, oldest first, each with the last label
        given for it (or ``None``)."""
        with self._tx() as s:
            rows = list(
                s.scalars(
                    select(PredictionRow)
                    .where(
                        PredictionRow.model_name == model_name, PredictionRow.model_version == model_version
                    )
                    .order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
                    .limit(limit)
                )
            )
            rows.reverse()
            labels = last_labels(s, [r.id for r in rows])
            return [(r.to_entity(), labels.get(r.id)) for r in rows]

    def labeled_predictions(
        self, model_name: str, model_version: int, *, since: datetime, limit: int = 10_000
    ) -> list[tuple[e.Prediction, str]]:
        """Predictions served by one version since ``since`` that have a label, oldest first, each with
        the last label given for it: what the post-promotion guard judges a new champion on."""
        with self._tx() as s:
            latest = (
                select(LabelRow.prediction_id, func.max(LabelRow.id).label("label_id"))
                .where(LabelRow.prediction_id.is_not(None))
                .group_by(LabelRow.prediction_id)
                .subquery()
            )
            query = (
                select(PredictionRow, LabelRow.label)
                .join(latest, latest.c.prediction_id == PredictionRow.id)
                .join(LabelRow, LabelRow.id == latest.c.label_id)
                .where(
                    PredictionRow.model_name == model_name,
                    PredictionRow.model_version == model_version,
                    PredictionRow.created_at >= since,
                )
                .order_by(PredictionRow.created_at, PredictionRow.id)
                .limit(limit)
            )
            return [(row.to_entity(), label) for row, label in s.execute(query)]

    def count_labeled_predictions(self, model_name: str, model_version: int, *, since: datetime) -> int:
        """How many predictions :meth:`labeled_predictions` would return, without loading them."""
        with self._tx() as s:
            labeled = select(LabelRow.prediction_id).where(LabelRow.prediction_id.is_not(None)).distinct()
            query = select(func.count()).where(
                PredictionRow.model_name == model_name,
                PredictionRow.model_version == model_version,
                PredictionRow.created_at >= since,
                PredictionRow.id.in_(labeled),
            )
            return int(s.scalar(query) or 0)


def last_labels(s: Session, prediction_ids: Sequence[str], chunk: int = ID_CHUNK) -> dict[str, str]:
    """The last label given for each of ``prediction_ids`` that has one (queried ``chunk`` ids at a time)."""
    labels: dict[str, str] = {}
    for start in range(0, len(prediction_ids), chunk):
        for pid, label in s.execute(
            select(LabelRow.prediction_id, LabelRow.label)
            .where(LabelRow.prediction_id.in_(prediction_ids[start : start + chunk]))
            .order_by(LabelRow.id)
        ):
            assert pid is not None  # IN never matches NULL
            labels[pid] = label
    return labels


def clean_label_item(item: e.NewLabel) -> e.NewLabel:
    """A label as stored: the label by :func:`common.texts.clean_label`, text and domain cleaned."""
    return dataclasses.replace(
        item,
        label=clean_label(item.label),
        text=None if item.text is None else clean_text(item.text),
        domain=None if item.domain is None else clean_text(item.domain),
    )


def check_labels(items: Sequence[e.NewLabel], allowed_labels: Sequence[str] | None = None) -> None:
    """Refuse a batch with a label outside ``allowed_labels`` (naming every one), an item that gives
    both or neither of ``prediction_id`` and ``text``, a text without ``model_name``, or a label of
    the wrong length."""
    if allowed_labels is not None:
        unknown = sorted({item.label for item in items} - set(allowed_labels))
        if unknown:
            raise InvalidInputError(
                f"unknown labels {unknown} (known: {', '.join(allowed_labels)})"
                + label_hint(unknown, allowed_labels),
                field="label",
                unknown=unknown,
            )
    for i, item in enumerate(items):
        if (item.prediction_id is None) == (item.text is None):
            raise InvalidInputError(f"item {i}: give either prediction_id or text, not both or neither")
        if item.text is not None and not item.model_name:
            raise InvalidInputError(
                f"item {i}: a label for a text needs the model_name it is for", field="model_name"
            )
        if not item.label or len(item.label) > MAX_LABEL_CHARS:
            raise InvalidInputError(
                f"item {i}: label has {len(item.label)} characters; it must have 1 to {MAX_LABEL_CHARS}",
                field="label",
            )


def _predictions_labeled(s: Session, items: Sequence[e.NewLabel]) -> dict[str, PredictionRow]:
    """The predictions ``items`` label, by id; :class:`NotFoundError` naming every id not logged."""
    wanted = sorted({item.prediction_id for item in items if item.prediction_id is not None})
    if not wanted:
        return {}
    found = {p.id: p for p in s.scalars(select(PredictionRow).where(PredictionRow.id.in_(wanted)))}
    missing = [pid for pid in wanted if pid not in found]
    if missing:
        raise NotFoundError(f"unknown prediction ids {missing}", field="prediction_id", unknown=missing)
    return found


def _label_row(item: e.NewLabel, predictions: dict[str, PredictionRow], now: datetime) -> LabelRow:
    """The row of a checked label: a prediction's label takes its text and model from the prediction."""
    if item.prediction_id is not None:
        prediction = predictions[item.prediction_id]
        text, hashed, model_name = prediction.text, prediction.text_hash, prediction.model_name
    else:
        assert item.text is not None and item.model_name is not None  # check_labels refused the others
        text, hashed, model_name = item.text, text_hash(item.text), item.model_name
    return LabelRow(
        prediction_id=item.prediction_id,
        model_name=model_name,
        text=text,
        text_hash=hashed,
        label=item.label,
        source=item.source,
        domain=item.domain,
        meta=item.metadata,
        created_at=item.created_at or now,
    )


def _labels_of(model_name: str) -> ColumnElement[bool]:
    """The labels of ``model_name``, and those given before labels named their model (migration 0008)
    that it could not attribute: counted for every model, as they were before."""
    return or_(LabelRow.model_name == model_name, LabelRow.model_name.is_(None))
