"""The registry's store API: every read and write of records goes through :class:`Registry`.

It hands out frozen entities (``registry.entities``) and raises :class:`registry.errors.DriftlineError`
subclasses with messages that name the key (``model 'sentiment' has no version 7``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session

from registry import entities as e
from registry import labelqueue
from registry.db import check_schema, make_engine, session_factory, transaction
from registry.errors import ConflictError, InvalidInputError, NotFoundError
from registry.labelqueue import Handout
from registry.orm import (
    AliasEventRow,
    AliasRow,
    CheckRequestRow,
    DriftCheckRow,
    LabelRequestRow,
    LabelRow,
    LeaseRow,
    ModelVersionRow,
    PredictionRow,
    PromotionDecisionRow,
    RegisteredModelRow,
    RetrainRunRow,
    utcnow,
)
from registry.settings import Settings, get_settings
from registry.texts import clean_label, clean_text, label_hint, text_hash

logger = logging.getLogger(__name__)

MAX_LABEL_CHARS = 200  # the width of every label column
# Names that end up in URLs, report paths, HTML and logs: aliases (champion, challenger) and model names
# (sentiment) are plain words. A model name is checked when the model is created, so a model made
# before this rule keeps working.
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
ALIAS_RULE = "1 to 63 lowercase letters, digits, '_' or '-', starting with a letter"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
MODEL_NAME_RULE = "1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"

REGISTER_ATTEMPTS = 8


class Registry:
    """Records of models, versions, aliases, runs and leases in one SQL database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)
        self._clock = clock

    @classmethod
    def open(cls, settings: Settings | None = None, *, create_if_empty: bool = True) -> Registry:
        """Connect to the configured database and refuse to go on below the migration head."""
        settings = settings or get_settings()
        engine = make_engine(settings.database_url)
        check_schema(engine, create_if_empty=create_if_empty)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def _tx(self):  # type: ignore[no-untyped-def]
        return transaction(self._sessions)

    # --- models -----------------------------------------------------------------------------

    def ensure_model(self, name: str, description: str = "") -> e.RegisteredModel:
        """Create the model if it does not exist yet (its name must match ``MODEL_NAME_PATTERN``); return
        it either way."""
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                with self._tx() as s:
                    row = s.get(RegisteredModelRow, name)
                    if row is None:
                        _check_name("model name", name, MODEL_NAME_PATTERN, MODEL_NAME_RULE)
                        row = RegisteredModelRow(name=name, description=description, created_at=self._clock())
                        s.add(row)
                        s.flush()
                    return row.to_entity()
            except ConflictError:  # created by someone else between our read and insert
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def get_model(self, name: str) -> e.RegisteredModel:
        with self._tx() as s:
            return _model_row(s, name).to_entity()

    def list_models(self) -> list[e.RegisteredModel]:
        with self._tx() as s:
            rows = s.scalars(select(RegisteredModelRow).order_by(RegisteredModelRow.name))
            return [r.to_entity() for r in rows]

    # --- versions ---------------------------------------------------------------------------

    def register_version(
        self,
        model_name: str,
        spec: e.NewModelVersion,
        *,
        set_aliases: Sequence[str] = (),
        actor: str = "driftline",
        reason: str = "",
    ) -> e.ModelVersion:
        """Register the next version of ``model_name`` and, in the same transaction, point aliases at it.

        Version numbers come from ``max(version) + 1``; when two processes race, the unique
        constraint refuses one of them and it retries (at most ``REGISTER_ATTEMPTS`` times).
        """
        if not spec.labels or len(set(spec.labels)) != len(spec.labels):
            raise InvalidInputError(f"label set {list(spec.labels)!r} must be non-empty and without repeats")
        self.ensure_model(model_name)
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                with self._tx() as s:
                    latest = s.scalar(
                        select(func.max(ModelVersionRow.version)).where(
                            ModelVersionRow.model_name == model_name
                        )
                    )
                    row = ModelVersionRow(
                        model_name=model_name,
                        version=(latest or 0) + 1,
                        parent_version=spec.parent_version,
                        base_model=spec.base_model,
                        artifact_uri=spec.artifact.uri,
                        artifact_sha256=spec.artifact.sha256,
                        labels=list(spec.labels),
                        training_run_id=spec.training_run_id,
                        data_snapshot_uri=spec.data_snapshot.uri if spec.data_snapshot else None,
                        data_snapshot_sha256=spec.data_snapshot.sha256 if spec.data_snapshot else None,
                        metrics=spec.metrics,
                        calibration=spec.calibration,
                        config=spec.config,
                        description=spec.description,
                        created_at=self._clock(),
                    )
                    s.add(row)
                    s.flush()
                    for alias in set_aliases:
                        self._move_alias(s, model_name, alias, row.version, actor=actor, reason=reason)
                    if spec.training_run_id is not None:
                        s.execute(
                            update(RetrainRunRow)
                            .where(RetrainRunRow.id == spec.training_run_id)
                            .values(candidate_version=row.version)
                        )
                    version = row.to_entity()
                logger.info("registered %s v%s", model_name, version.version)
                return version
            except ConflictError:
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise
                logger.debug("version number race on %s, retrying (%d)", model_name, attempt + 1)
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def get_version(self, model_name: str, version: int) -> e.ModelVersion:
        with self._tx() as s:
            return _version_row(s, model_name, version).to_entity()

    def list_versions(self, model_name: str) -> list[e.ModelVersion]:
        with self._tx() as s:
            _model_row(s, model_name)
            rows = s.scalars(
                select(ModelVersionRow)
                .where(ModelVersionRow.model_name == model_name)
                .order_by(ModelVersionRow.version)
            )
            return [r.to_entity() for r in rows]

    def versions_using_artifact(self, sha256: str) -> list[tuple[str, int]]:
        """(model, version) pairs whose model or data snapshot is the artifact ``sha256``."""
        with self._tx() as s:
            rows = s.execute(
                select(ModelVersionRow.model_name, ModelVersionRow.version).where(
                    (ModelVersionRow.artifact_sha256 == sha256)
                    | (ModelVersionRow.data_snapshot_sha256 == sha256)
                )
            )
            return [(name, version) for name, version in rows]

    # --- aliases ----------------------------------------------------------------------------

    def set_alias(
        self,
        model_name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        report_uri: str | None = None,
    ) -> e.AliasEvent:
        """Point ``alias`` at ``version`` and append the audit event, in one transaction."""
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                with self._tx() as s:
                    return self._move_alias(
                        s, model_name, alias, version, actor=actor, reason=reason, report_uri=report_uri
                    )
            except ConflictError:  # two first-time writers of the same alias
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _move_alias(
        self,
        s: Session,
        model_name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        report_uri: str | None = None,
    ) -> e.AliasEvent:
        _check_name("alias", alias, ALIAS_PATTERN, ALIAS_RULE)
        _version_row(s, model_name, version)
        row = s.scalar(
            select(AliasRow)
            .where(AliasRow.model_name == model_name, AliasRow.alias == alias)
            .with_for_update()
        )
        now = self._clock()
        previous = row.version if row is not None else None
        if row is None:
            s.add(AliasRow(model_name=model_name, alias=alias, version=version, updated_at=now))
        else:
            row.version = version
            row.updated_at = now
        event = AliasEventRow(
            model_name=model_name,
            alias=alias,
            from_version=previous,
            to_version=version,
            actor=actor,
            reason=reason,
            report_uri=report_uri,
            created_at=now,
        )
        s.add(event)
        s.flush()
        was = f"v{previous}" if previous is not None else "none"
        logger.info("alias %s/%s: %s -> v%s by %s", model_name, alias, was, version, actor)
        return event.to_entity()

    def get_alias(self, model_name: str, alias: str) -> e.Alias | None:
        with self._tx() as s:
            row = s.get(AliasRow, (model_name, alias))
            return row.to_entity() if row is not None else None

    def get_version_by_alias(self, model_name: str, alias: str) -> e.ModelVersion:
        with self._tx() as s:
            row = s.get(AliasRow, (model_name, alias))
            if row is None:
                _model_row(s, model_name)
                raise NotFoundError(f"model '{model_name}' has no alias '{alias}'")
            return _version_row(s, model_name, row.version).to_entity()

    def list_aliases(self, model_name: str | None = None) -> list[e.Alias]:
        with self._tx() as s:
            query = select(AliasRow).order_by(AliasRow.model_name, AliasRow.alias)
            if model_name is not None:
                query = query.where(AliasRow.model_name == model_name)
            return [r.to_entity() for r in s.scalars(query)]

    def list_alias_events(
        self, model_name: str | None = None, alias: str | None = None, *, limit: int = 100
    ) -> list[e.AliasEvent]:
        """Newest first."""
        with self._tx() as s:
            query = select(AliasEventRow).order_by(AliasEventRow.id.desc()).limit(limit)
            if model_name is not None:
                query = query.where(AliasEventRow.model_name == model_name)
            if alias is not None:
                query = query.where(AliasEventRow.alias == alias)
            return [r.to_entity() for r in s.scalars(query)]

    def rollback(
        self,
        model_name: str,
        *,
        actor: str,
        reason: str,
        expected_version: int | None = None,
        report_uri: str | None = None,
    ) -> e.AliasEvent:
        """Point ``champion`` back at the version it pointed to before its latest move. With
        ``expected_version``, only if the champion is still that version (else :class:`ConflictError`):
        a rollback decided on evidence about one version never moves another."""
        with self._tx() as s:
            current = s.scalar(
                select(AliasRow)
                .where(AliasRow.model_name == model_name, AliasRow.alias == e.CHAMPION)
                .with_for_update()
            )
            if current is None:
                _model_row(s, model_name)
                raise NotFoundError(f"model '{model_name}' has no champion to roll back")
            if expected_version is not None and current.version != expected_version:
                raise ConflictError(
                    f"model '{model_name}' champion is v{current.version}, not v{expected_version}: not rolled back"
                )
            last = s.scalar(
                select(AliasEventRow)
                .where(AliasEventRow.model_name == model_name, AliasEventRow.alias == e.CHAMPION)
                .order_by(AliasEventRow.id.desc())
                .limit(1)
            )
            if last is None or last.from_version is None:
                raise ConflictError(
                    f"model '{model_name}' champion v{current.version} has no previous champion to roll back to"
                )
            return self._move_alias(
                s,
                model_name,
                e.CHAMPION,
                last.from_version,
                actor=actor,
                reason=reason,
                report_uri=report_uri,
            )

    # --- drift checks and promotion decisions ---------------------------------------------------

    def add_drift_check(
        self,
        check: dict[str, Any],
        *,
        queue_run: dict[str, Any] | None = None,
        trigger: e.RunTrigger = e.RunTrigger.DRIFT,
    ) -> tuple[e.DriftCheck, e.RetrainRun | None]:
        """Store a drift check and, in the same transaction, the run its decision queued (if any).

        ``queue_run`` holds the run's ``config`` and ``trigger`` what queued it (the drift rule or the
        label-growth rule); the run refers to the check. A run already queued or
        running for the model, or a champion other than the checked ``model_version`` (a promotion
        landed while the check ran), makes the whole write fail with :class:`ConflictError`. Queueing
        locks the model's row first (SQLite: the write lock ``BEGIN IMMEDIATE`` takes), so two monitors
        that decide at once serialize here and the second sees the first one's run.
        """
        with self._tx() as s:
            if queue_run is not None:
                s.execute(
                    select(RegisteredModelRow.name)
                    .where(RegisteredModelRow.name == check["model_name"])
                    .with_for_update()
                )
                champion = s.get(AliasRow, (check["model_name"], e.CHAMPION))
                if champion is not None and champion.version != check.get("model_version"):
                    raise ConflictError(
                        f"the champion moved to v{champion.version} while v{check.get('model_version')} "
                        "was being checked"
                    )
            row = DriftCheckRow(**{"created_at": self._clock(), **check})
            s.add(row)
            s.flush()
            run = None
            if queue_run is not None:
                active = s.scalar(
                    select(RetrainRunRow.id)
                    .where(
                        RetrainRunRow.model_name == row.model_name,
                        RetrainRunRow.status.in_([e.RunStatus.QUEUED.value, e.RunStatus.RUNNING.value]),
                    )
                    .with_for_update()
                    .limit(1)
                )
                if active is not None:
                    raise ConflictError(
                        f"model '{row.model_name}' already has run {active} queued or running"
                    )
                run = RetrainRunRow(
                    model_name=row.model_name,
                    trigger=trigger.value,
                    status=e.RunStatus.QUEUED.value,
                    attempts=0,
                    config=queue_run,
                    drift_check_id=row.id,
                    created_at=row.created_at,
                )
                s.add(run)
                s.flush()
            return row.to_entity(), run.to_entity() if run is not None else None

    def get_drift_check(self, check_id: int) -> e.DriftCheck:
        with self._tx() as s:
            row = s.get(DriftCheckRow, check_id)
            if row is None:
                raise NotFoundError(f"drift check {check_id} does not exist")
            return row.to_entity()

    def list_drift_checks(self, model_name: str | None = None, *, limit: int = 100) -> list[e.DriftCheck]:
        with self._tx() as s:
            query = select(DriftCheckRow).order_by(DriftCheckRow.id.desc()).limit(limit)
            if model_name is not None:
                query = query.where(DriftCheckRow.model_name == model_name)
            return [r.to_entity() for r in s.scalars(query)]

    def add_decision(self, decision: dict[str, Any], *, actor: str = "driftline") -> e.PromotionDecision:
        """Record a promotion decision; a ``promoted`` one moves ``champion`` in the same transaction."""
        with self._tx() as s:
            values = {"created_at": self._clock(), **decision}
            values["status"] = e.DecisionStatus(values["status"]).value
            values["reasons"] = list(values.get("reasons", []))
            row = PromotionDecisionRow(**values)
            s.add(row)
            s.flush()
            if row.status == e.DecisionStatus.PROMOTED.value:
                row.decided_at = row.created_at
                self._move_alias(
                    s,
                    row.model_name,
                    e.CHAMPION,
                    row.candidate_version,
                    actor=actor,
                    reason=f"decision {row.id}: " + "; ".join(row.reasons),
                    report_uri=row.report_uri,
                )
            return row.to_entity()

    def get_decision(self, decision_id: int) -> e.PromotionDecision:
        with self._tx() as s:
            return _decision_row(s, decision_id).to_entity()

    def list_decisions(self, model_name: str | None = None, *, limit: int = 100) -> list[e.PromotionDecision]:
        with self._tx() as s:
            query = select(PromotionDecisionRow).order_by(PromotionDecisionRow.id.desc()).limit(limit)
            if model_name is not None:
                query = query.where(PromotionDecisionRow.model_name == model_name)
            return [r.to_entity() for r in s.scalars(query)]

    def review_decision(
        self, decision_id: int, *, approve: bool, reviewer: str, reason: str
    ) -> e.PromotionDecision:
        """Approve (and promote, in the same transaction) or refuse a decision pending approval."""
        with self._tx() as s:
            row = _decision_row(s, decision_id, lock=True)
            if row.status != e.DecisionStatus.PENDING_APPROVAL.value:
                raise ConflictError(f"decision {decision_id} is '{row.status}', not pending approval")
            row.status = (e.DecisionStatus.APPROVED if approve else e.DecisionStatus.REFUSED).value
            row.reviewer = reviewer
            row.decided_at = self._clock()
            row.reasons = [*row.reasons, f"{'approved' if approve else 'refused'} by {reviewer}: {reason}"]
            if approve:
                self._move_alias(
                    s,
                    row.model_name,
                    e.CHAMPION,
                    row.candidate_version,
                    actor=reviewer,
                    reason=f"decision {decision_id} approved: {reason}",
                    report_uri=row.report_uri,
                )
            s.flush()
            return row.to_entity()

    # --- check requests ---------------------------------------------------------------------

    def request_check(
        self, model_name: str, *, requested_by: str, max_pending: int | None = None
    ) -> e.CheckRequest:
        """Record that someone wants a drift check of ``model_name`` now; the scheduler's leader runs it.

        The service cannot run checks itself (it never imports ``monitor``); this row is how it asks.
        With ``max_pending``, a model that already has that many pending requests refuses one more
        (:class:`ConflictError`); its row is locked first, so two requests at once count each other.
        """
        with self._tx() as s:
            _model_row(s, model_name, lock=max_pending is not None)
            if max_pending is not None:
                pending = s.scalars(
                    select(CheckRequestRow.id)
                    .where(
                        CheckRequestRow.model_name == model_name,
                        CheckRequestRow.status == e.CheckRequestStatus.PENDING.value,
                    )
                    .order_by(CheckRequestRow.id)
                )
                _check_pending(model_name, "drift-check requests pending", list(pending), max_pending)
            row = CheckRequestRow(
                model_name=model_name,
                requested_by=requested_by,
                status=e.CheckRequestStatus.PENDING.value,
                created_at=self._clock(),
            )
            s.add(row)
            s.flush()
            return row.to_entity()

    def get_check_request(self, request_id: int) -> e.CheckRequest:
        with self._tx() as s:
            row = s.get(CheckRequestRow, request_id)
            if row is None:
                raise NotFoundError(f"check request {request_id} does not exist")
            return row.to_entity()

    def list_check_requests(
        self, status: e.CheckRequestStatus | None = None, *, limit: int = 100
    ) -> list[e.CheckRequest]:
        """Newest first, or oldest first for ``pending`` (the order the scheduler handles them in)."""
        with self._tx() as s:
            order = (
                CheckRequestRow.id if status is e.CheckRequestStatus.PENDING else CheckRequestRow.id.desc()
            )
            query = select(CheckRequestRow).order_by(order).limit(limit)
            if status is not None:
                query = query.where(CheckRequestRow.status == status.value)
            return [r.to_entity() for r in s.scalars(query)]

    def next_check_request(self) -> e.CheckRequest | None:
        """The oldest pending check request, or ``None``."""
        pending = self.list_check_requests(e.CheckRequestStatus.PENDING, limit=1)
        return pending[0] if pending else None

    def finish_check_request(
        self, request_id: int, *, drift_check_id: int | None = None, error: str | None = None
    ) -> e.CheckRequest:
        """Mark a request done (with the check it produced) or failed (with ``error``)."""
        if (drift_check_id is None) == (error is None):
            raise InvalidInputError(
                "give either drift_check_id (done) or error (failed), not both or neither"
            )
        with self._tx() as s:
            row = s.scalar(select(CheckRequestRow).where(CheckRequestRow.id == request_id).with_for_update())
            if row is None:
                raise NotFoundError(f"check request {request_id} does not exist")
            done = drift_check_id is not None
            row.status = (e.CheckRequestStatus.DONE if done else e.CheckRequestStatus.FAILED).value
            row.drift_check_id = drift_check_id
            row.error = error[:2000] if error is not None else None
            row.handled_at = self._clock()
            s.flush()
            return row.to_entity()

    # --- retrain runs -----------------------------------------------------------------------

    def create_run(
        self,
        model_name: str,
        *,
        trigger: e.RunTrigger,
        config: dict[str, Any],
        status: e.RunStatus = e.RunStatus.QUEUED,
        drift_check_id: int | None = None,
        max_pending: int | None = None,
    ) -> e.RetrainRun:
        """Record a run. With ``max_pending``, a model that already has that many runs of this
        ``trigger`` queued or running refuses one more (:class:`ConflictError`, :class:`NotFoundError`
        for an unknown model); its row is locked first, so two requests at once count each other."""
        now = self._clock()
        with self._tx() as s:
            if max_pending is not None:
                _model_row(s, model_name, lock=True)
                pending = s.scalars(
                    select(RetrainRunRow.id)
                    .where(
                        RetrainRunRow.model_name == model_name,
                        RetrainRunRow.trigger == trigger.value,
                        RetrainRunRow.status.in_([e.RunStatus.QUEUED.value, e.RunStatus.RUNNING.value]),
                    )
                    .order_by(RetrainRunRow.id)
                )
                _check_pending(
                    model_name, f"{trigger.value} runs queued or running", list(pending), max_pending
                )
            row = RetrainRunRow(
                model_name=model_name,
                trigger=trigger.value,
                status=status.value,
                attempts=1 if status == e.RunStatus.RUNNING else 0,
                config=config,
                drift_check_id=drift_check_id,
                created_at=now,
                started_at=now if status == e.RunStatus.RUNNING else None,
                heartbeat_at=now if status == e.RunStatus.RUNNING else None,
            )
            s.add(row)
            s.flush()
            return row.to_entity()

    def get_run(self, run_id: int) -> e.RetrainRun:
        with self._tx() as s:
            return _run_row(s, run_id).to_entity()

    def list_runs(self, model_name: str | None = None, *, limit: int = 100) -> list[e.RetrainRun]:
        with self._tx() as s:
            query = select(RetrainRunRow).order_by(RetrainRunRow.id.desc()).limit(limit)
            if model_name is not None:
                query = query.where(RetrainRunRow.model_name == model_name)
            return [r.to_entity() for r in s.scalars(query)]

    def finish_run(
        self,
        run_id: int,
        status: e.RunStatus,
        *,
        error: str | None = None,
        data_snapshot_sha256: str | None = None,
    ) -> e.RetrainRun:
        if not status.finished:
            raise InvalidInputError(f"run status '{status}' is not a final status")
        with self._tx() as s:
            row = _run_row(s, run_id)
            row.status = status.value
            row.error = error
            row.finished_at = self._clock()
            if data_snapshot_sha256 is not None:
                row.data_snapshot_sha256 = data_snapshot_sha256
            s.flush()
            return row.to_entity()

    # --- predictions and labels -------------------------------------------------------------

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

    def add_labels(
        self, items: Sequence[e.NewLabel], *, allowed_labels: Sequence[str] | None = None
    ) -> list[e.Label]:
        """Store labels all-or-nothing: an unknown prediction id or label refuses the whole batch.

        Raises :class:`NotFoundError` naming every unknown prediction id, and
        :class:`InvalidInputError` naming every unknown label; nothing is written then.
        """
        items = [clean_label_item(item) for item in items]
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
            if not item.label or len(item.label) > MAX_LABEL_CHARS:
                raise InvalidInputError(
                    f"item {i}: label has {len(item.label)} characters; it must have 1 to {MAX_LABEL_CHARS}",
                    field="label",
                )
        now = self._clock()
        with self._tx() as s:
            wanted = sorted({item.prediction_id for item in items if item.prediction_id is not None})
            predictions: dict[str, PredictionRow] = {}
            if wanted:
                predictions = {
                    p.id: p for p in s.scalars(select(PredictionRow).where(PredictionRow.id.in_(wanted)))
                }
            missing = [pid for pid in wanted if pid not in predictions]
            if missing:
                raise NotFoundError(
                    f"unknown prediction ids {missing}", field="prediction_id", unknown=missing
                )
            rows = []
            for item in items:
                text = predictions[item.prediction_id].text if item.prediction_id else item.text
                assert text is not None
                rows.append(
                    LabelRow(
                        prediction_id=item.prediction_id,
                        text=text,
                        text_hash=predictions[item.prediction_id].text_hash
                        if item.prediction_id
                        else text_hash(text),
                        label=item.label,
                        source=item.source,
                        domain=item.domain,
                        meta=item.metadata,
                        created_at=item.created_at or now,
                    )
                )
            s.add_all(rows)
            s.flush()
            return [r.to_entity() for r in rows]

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

    def count_labels(self, *, since: datetime | None = None) -> int:
        with self._tx() as s:
            query = select(func.count()).select_from(LabelRow)
            if since is not None:
                query = query.where(LabelRow.created_at >= since)
            return int(s.scalar(query) or 0)

    def list_labels(self, *, since: datetime | None = None, limit: int = 10_000) -> list[e.Label]:
        with self._tx() as s:
            query = select(LabelRow).order_by(LabelRow.id).limit(limit)
            if since is not None:
                query = query.where(LabelRow.created_at >= since)
            return [r.to_entity() for r in s.scalars(query)]

    def hand_out_labels(
        self,
        version: e.ModelVersion,
        limit: int,
        *,
        handed_to: str,
        random_share: float = labelqueue.RANDOM_SHARE,
        lease_hours: float = labelqueue.LEASE.total_seconds() / 3600,
        seed: int | None = None,
    ) -> Handout:
        """The label queue of ``version`` (registry.labelqueue): up to ``limit`` of its latest unlabeled
        predictions not handed out yet, most informative first, leased to ``handed_to``."""
        if not 1 <= limit <= labelqueue.MAX_LIMIT:
            raise InvalidInputError(f"limit must be 1 to {labelqueue.MAX_LIMIT}, got {limit}")
        if not 0.0 <= random_share <= 1.0:
            raise InvalidInputError(f"random_share must be within 0 and 1, got {random_share}")
        if not lease_hours > 0:
            raise InvalidInputError(f"lease_hours must be above 0, got {lease_hours}")
        return labelqueue.hand_out(
            self._tx,
            version,
            limit,
            handed_to=handed_to,
            now=self._clock(),
            random_share=random_share,
            lease=timedelta(hours=lease_hours),
            seed=seed,
        )

    def chosen_for_labels(self, prediction_ids: Sequence[str], strategy: str = labelqueue.MARGIN) -> set[str]:
        """Which of ``prediction_ids`` the label queue handed out by ``strategy``: labels asked for because
        the model was unsure are not a sample of its accuracy (the random share is)."""
        found: set[str] = set()
        with self._tx() as s:
            for start in range(0, len(prediction_ids), 500):
                chunk = list(prediction_ids[start : start + 500])
                found.update(
                    s.scalars(
                        select(LabelRequestRow.prediction_id)
                        .where(LabelRequestRow.prediction_id.in_(chunk), LabelRequestRow.strategy == strategy)
                        .distinct()
                    )
                )
        return found

    def next_queued_run(self, model_name: str | None = None) -> e.RetrainRun | None:
        """The oldest queued run that may start now (to dispatch), or ``None``.

        A retry waiting out its back-off (``not_before`` in the future) is skipped, so a run that keeps
        dying does not hog the dispatcher in a tight loop.
        """
        with self._tx() as s:
            query = (
                select(RetrainRunRow)
                .where(
                    RetrainRunRow.status == e.RunStatus.QUEUED.value,
                    (RetrainRunRow.not_before.is_(None)) | (RetrainRunRow.not_before <= self._clock()),
                )
                .order_by(RetrainRunRow.id)
                .limit(1)
            )
            if model_name is not None:
                query = query.where(RetrainRunRow.model_name == model_name)
            row = s.scalar(query)
            return row.to_entity() if row is not None else None

    def claim_run(self, run_id: int) -> e.RetrainRun:
        """Move a queued run to running (attempts + 1, heartbeat now); refuses any other status."""
        with self._tx() as s:
            row = s.scalar(select(RetrainRunRow).where(RetrainRunRow.id == run_id).with_for_update())
            if row is None:
                raise NotFoundError(f"retrain run {run_id} does not exist")
            if row.status != e.RunStatus.QUEUED.value:
                raise ConflictError(f"retrain run {run_id} is '{row.status}', not queued")
            now = self._clock()
            row.status = e.RunStatus.RUNNING.value
            row.attempts += 1
            row.started_at = now
            row.heartbeat_at = now
            row.not_before = None  # the back-off of the previous attempt is over
            s.flush()
            return row.to_entity()

    def heartbeat(self, run_id: int) -> None:
        with self._tx() as s:
            s.execute(
                update(RetrainRunRow).where(RetrainRunRow.id == run_id).values(heartbeat_at=self._clock())
            )

    def reap_runs(
        self, *, heartbeat_before: datetime, max_attempts: int = 1, backoff_s: float = 0.0
    ) -> list[e.RetrainRun]:
        """Retry or fail every running run whose last heartbeat is older than ``heartbeat_before``.

        Its process is gone (killed, out of memory, node lost) without recording an outcome: see
        :meth:`retry_or_fail_run`. Returns the runs as they are afterwards (queued again or failed).
        """
        with self._tx() as s:
            rows = list(
                s.scalars(
                    select(RetrainRunRow)
                    .where(
                        RetrainRunRow.status == e.RunStatus.RUNNING.value,
                        RetrainRunRow.heartbeat_at < heartbeat_before,
                    )
                    .with_for_update()
                )
            )
            for row in rows:
                last = row.heartbeat_at.isoformat() if row.heartbeat_at else "never"
                self._retry_or_fail(row, f"heartbeat stopped (last at {last})", max_attempts, backoff_s)
            s.flush()
            return [row.to_entity() for row in rows]

    def retry_or_fail_run(
        self, run_id: int, reason: str, *, max_attempts: int, backoff_s: float
    ) -> e.RetrainRun | None:
        """Put a run whose process died back in the queue, or fail it after ``max_attempts`` attempts.

        Only a ``running`` run is touched (``None`` otherwise): a run that ended through a Python
        exception was already marked failed by the run itself and stays failed, since running the
        same code on the same data again would fail the same way. A process that vanished (a signal,
        the OOM killer, a lost node) may well succeed the next time; the retry keeps the run id, so
        it resumes from the checkpoints the earlier attempt left in the cache dir.
        """
        with self._tx() as s:
            row = s.scalar(select(RetrainRunRow).where(RetrainRunRow.id == run_id).with_for_update())
            if row is None:
                raise NotFoundError(f"retrain run {run_id} does not exist")
            if row.status != e.RunStatus.RUNNING.value:
                return None
            self._retry_or_fail(row, reason, max_attempts, backoff_s)
            s.flush()
            return row.to_entity()

    def _retry_or_fail(self, row: RetrainRunRow, reason: str, max_attempts: int, backoff_s: float) -> None:
        """Back-off doubles per attempt: ``backoff_s * 2 ** (attempts - 1)`` after attempt ``attempts``."""
        now = self._clock()
        if row.attempts < max_attempts:
            row.status = e.RunStatus.QUEUED.value
            row.not_before = now + timedelta(seconds=backoff_s * 2 ** max(row.attempts - 1, 0))
            row.error = f"attempt {row.attempts}: {reason}; retry after {row.not_before.isoformat()}"
            logger.warning("run %s: %s", row.id, row.error)
            return
        row.status = e.RunStatus.FAILED.value
        row.finished_at = now
        row.not_before = None
        row.error = f"{reason}; gave up after {row.attempts} attempt{'s' if row.attempts != 1 else ''}"
        logger.warning("run %s failed: %s", row.id, row.error)

    # --- leases -----------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl: timedelta) -> e.Lease | None:
        """Take the lease ``name`` for ``ttl`` if it is free, expired, or already ``holder``'s.

        Returns the lease on success and ``None`` when someone else holds it.
        """
        _check_name("lease name", name)
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                with self._tx() as s:
                    now = self._clock()
                    row = s.scalar(select(LeaseRow).where(LeaseRow.name == name).with_for_update())
                    if row is None:
                        row = LeaseRow(name=name, holder=holder, acquired_at=now, expires_at=now + ttl)
                        s.add(row)
                    elif row.holder == holder or row.expires_at <= now:
                        if row.holder != holder:
                            logger.info(
                                "lease %s: expired holder %s replaced by %s", name, row.holder, holder
                            )
                            row.acquired_at = now
                        row.holder = holder
                        row.expires_at = now + ttl
                    else:
                        return None
                    s.flush()
                    return row.to_entity()
            except ConflictError:  # two first-time acquirers; one insert wins
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def renew_lease(self, name: str, holder: str, ttl: timedelta) -> e.Lease | None:
        """Extend ``holder``'s unexpired lease; ``None`` if it expired or belongs to someone else."""
        with self._tx() as s:
            now = self._clock()
            row = s.scalar(select(LeaseRow).where(LeaseRow.name == name).with_for_update())
            if row is None or row.holder != holder or row.expires_at <= now:
                return None
            row.expires_at = now + ttl
            s.flush()
            return row.to_entity()

    def release_lease(self, name: str, holder: str) -> bool:
        with self._tx() as s:
            result = s.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder))
            return bool(result.rowcount)

    def get_lease(self, name: str) -> e.Lease | None:
        with self._tx() as s:
            row = s.get(LeaseRow, name)
            return row.to_entity() if row is not None else None


# --- helpers ----------------------------------------------------------------------------------


def last_labels(s: Session, prediction_ids: Sequence[str], chunk: int = 500) -> dict[str, str]:
    """The last label given for each of ``prediction_ids`` that has one (queried ``chunk`` ids at a time)."""
    labels: dict[str, str] = {}
    for start in range(0, len(prediction_ids), chunk):
        for pid, label in s.execute(
            select(LabelRow.prediction_id, LabelRow.label)
            .where(LabelRow.prediction_id.in_(prediction_ids[start : start + chunk]))
            .order_by(LabelRow.id)
        ):
            labels[pid] = label
    return labels


def clean_label_item(item: e.NewLabel) -> e.NewLabel:
    """A label as stored: the label by :func:`registry.texts.clean_label`, text and domain cleaned."""
    return dataclasses.replace(
        item,
        label=clean_label(item.label),
        text=None if item.text is None else clean_text(item.text),
        domain=None if item.domain is None else clean_text(item.domain),
    )


def _check_name(what: str, value: str, pattern: str | None = None, rule: str = "") -> None:
    """1 to 100 characters (the width of every name column) and, with ``pattern``, matching it (``rule``
    says the same in words); the error's ``field`` is ``what`` in snake case."""
    field = what.replace(" ", "_")
    if not value or not value.strip() or len(value) > 100:
        raise InvalidInputError(f"{what} {value!r} must be 1 to 100 characters", field=field)
    if pattern is not None and re.fullmatch(pattern, value) is None:
        raise InvalidInputError(f"{what} {value!r} is not allowed: it must be {rule}", field=field)


def _check_pending(model_name: str, what: str, pending: list[int], limit: int) -> None:
    """Refuse one more of ``what`` when the ids in ``pending`` already reach ``limit``."""
    if len(pending) >= limit:
        raise ConflictError(
            f"model '{model_name}' already has {len(pending)} {what} (ids {', '.join(map(str, pending))}); "
            f"the limit is {limit} at once: wait until one is done",
            pending=len(pending),
            limit=limit,
        )


def _model_row(s: Session, name: str, *, lock: bool = False) -> RegisteredModelRow:
    """The model's row; ``lock`` takes its row lock, so writers that count its records serialize."""
    row = s.get(RegisteredModelRow, name, with_for_update=True if lock else None)
    if row is None:
        raise NotFoundError(f"model '{name}' does not exist")
    return row


def _version_row(s: Session, model_name: str, version: int) -> ModelVersionRow:
    row = s.scalar(
        select(ModelVersionRow).where(
            ModelVersionRow.model_name == model_name, ModelVersionRow.version == version
        )
    )
    if row is None:
        _model_row(s, model_name)
        raise NotFoundError(f"model '{model_name}' has no version {version}")
    return row


def _decision_row(s: Session, decision_id: int, *, lock: bool = False) -> PromotionDecisionRow:
    query = select(PromotionDecisionRow).where(PromotionDecisionRow.id == decision_id)
    row = s.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFoundError(f"promotion decision {decision_id} does not exist")
    return row


def _run_row(s: Session, run_id: int) -> RetrainRunRow:
    row = s.get(RetrainRunRow, run_id)
    if row is None:
        raise NotFoundError(f"retrain run {run_id} does not exist")
    return row
