"""The catalog: models, their versions, the aliases that point at versions (with the audit trail of
every move) and the promotion decisions that move ``champion``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from registry import entities as e
from registry.errors import ConflictError, InvalidInputError, NotFoundError
from registry.orm import (
    AliasEventRow,
    AliasRow,
    ModelVersionRow,
    PromotionDecisionRow,
    RegisteredModelRow,
    RetrainRunRow,
)
from registry.store.base import StoreBase, check_name, model_row, retry_on_conflict

logger = logging.getLogger(__name__)

# Names that end up in URLs, report paths, HTML and logs: aliases (champion, challenger) and model names
# (sentiment) are plain words. A model name is checked when the model is created, so a model made
# before this rule keeps working.
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
ALIAS_RULE = "1 to 63 lowercase letters, digits, '_' or '-', starting with a letter"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
MODEL_NAME_RULE = "1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
VERSION_RACE_BACKOFF_S = 0.01  # between attempts at the next version number, times the attempt


class Catalog(StoreBase):
    """Models, versions, aliases and promotion decisions."""

    # --- models -----------------------------------------------------------------------------

    def ensure_model(self, name: str, description: str = "") -> e.RegisteredModel:
        """Create the model if it does not exist yet (its name must match ``MODEL_NAME_PATTERN``); return
        it either way."""

        def get_or_create() -> e.RegisteredModel:
            with self._tx() as s:
                row = s.get(RegisteredModelRow, name)
                if row is None:
                    check_name("model name", name, MODEL_NAME_PATTERN, MODEL_NAME_RULE)
                    row = RegisteredModelRow(name=name, description=description, created_at=self._clock())
                    s.add(row)
                    s.flush()
                return row.to_entity()

        # created by someone else between our read and insert: the next attempt reads it
        return retry_on_conflict(get_or_create, what=f"model {name}")

    def get_model(self, name: str) -> e.RegisteredModel:
        with self._tx() as s:
            return model_row(s, name).to_entity()

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

        def register() -> e.ModelVersion:
            with self._tx() as s:
                row = _version_row_of(spec, model_name, _next_version(s, model_name), self._clock())
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
                return row.to_entity()

        version = retry_on_conflict(
            register, what=f"version number of {model_name}", backoff_s=VERSION_RACE_BACKOFF_S
        )
        logger.info("registered %s v%s", model_name, version.version)
        return version

    def get_version(self, model_name: str, version: int) -> e.ModelVersion:
        with self._tx() as s:
            return _version_row(s, model_name, version).to_entity()

    def list_versions(self, model_name: str) -> list[e.ModelVersion]:
        with self._tx() as s:
            model_row(s, model_name)
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

        def move() -> e.AliasEvent:
            with self._tx() as s:
                return self._move_alias(
                    s, model_name, alias, version, actor=actor, reason=reason, report_uri=report_uri
                )

        # two first-time writers of the same alias: one insert wins, the other moves it next
        return retry_on_conflict(move, what=f"alias {model_name}/{alias}")

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
        check_name("alias", alias, ALIAS_PATTERN, ALIAS_RULE)
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
                model_row(s, model_name)
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
                model_row(s, model_name)
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

    # --- promotion decisions ------------------------------------------------------------------

    def add_decision(self, decision: e.NewDecision, *, actor: str = "driftline") -> e.PromotionDecision:
        """Record a promotion decision; a ``promoted`` one moves ``champion`` in the same transaction."""
        with self._tx() as s:
            row = PromotionDecisionRow(
                model_name=decision.model_name,
                candidate_version=decision.candidate_version,
                incumbent_version=decision.incumbent_version,
                run_id=decision.run_id,
                metrics=decision.metrics,
                passed=decision.passed,
                reasons=list(decision.reasons),
                status=e.DecisionStatus(decision.status).value,
                report_uri=decision.report_uri,
                created_at=self._clock(),
            )
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


def _next_version(s: Session, model_name: str) -> int:
    latest = s.scalar(
        select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_name == model_name)
    )
    return (latest or 0) + 1


def _version_row_of(spec: e.NewModelVersion, model_name: str, version: int, now: datetime) -> ModelVersionRow:
    """The row that registers ``spec`` as ``version`` of ``model_name``."""
    return ModelVersionRow(
        model_name=model_name,
        version=version,
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
        created_at=now,
    )


def _version_row(s: Session, model_name: str, version: int) -> ModelVersionRow:
    row = s.scalar(
        select(ModelVersionRow).where(
            ModelVersionRow.model_name == model_name, ModelVersionRow.version == version
        )
    )
    if row is None:
        model_row(s, model_name)
        raise NotFoundError(f"model '{model_name}' has no version {version}")
    return row


def _decision_row(s: Session, decision_id: int, *, lock: bool = False) -> PromotionDecisionRow:
    query = select(PromotionDecisionRow).where(PromotionDecisionRow.id == decision_id)
    row = s.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFoundError(f"promotion decision {decision_id} does not exist")
    return row
