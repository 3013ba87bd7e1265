"""SQLAlchemy 2.0 typed mapping of the registry's tables. Internal to ``registry/``.

Every class has ``to_entity()``; callers outside the package only ever see entities.
Schema changes need an Alembic migration in ``registry/migrations/versions`` (a test checks that the
two agree).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from common.texts import clean_text
from registry import entities as e

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StorableString(TypeDecorator[str]):
    """A string column whose every written value is made storable on every backend
    (:func:`common.texts.clean_text`: NUL and lone surrogates become U+FFFD), whoever writes it."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return clean_text(value) if isinstance(value, str) else value


class StorableText(StorableString):
    impl = Text
    cache_ok = True


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class RegisteredModelRow(Base):
    __tablename__ = "registered_models"

    name: Mapped[str] = mapped_column(StorableString(200), primary_key=True)
    description: Mapped[str] = mapped_column(StorableText, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_entity(self) -> e.RegisteredModel:
        return e.RegisteredModel(name=self.name, description=self.description, created_at=self.created_at)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(ForeignKey("registered_models.name", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    parent_version: Mapped[int | None] = mapped_column(Integer)
    base_model: Mapped[str] = mapped_column(StorableText)
    artifact_uri: Mapped[str] = mapped_column(StorableText)
    artifact_sha256: Mapped[str] = mapped_column(StorableString(64))
    labels: Mapped[list[Any]] = mapped_column()
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("retrain_runs.id", ondelete="SET NULL"))
    data_snapshot_uri: Mapped[str | None] = mapped_column(StorableText)
    data_snapshot_sha256: Mapped[str | None] = mapped_column(StorableString(64))
    metrics: Mapped[dict[str, Any]] = mapped_column()
    calibration: Mapped[dict[str, Any] | None] = mapped_column()
    config: Mapped[dict[str, Any]] = mapped_column()
    description: Mapped[str] = mapped_column(StorableText, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_entity(self) -> e.ModelVersion:
        return e.ModelVersion(
            model_name=self.model_name,
            version=self.version,
            parent_version=self.parent_version,
            base_model=self.base_model,
            artifact_uri=self.artifact_uri,
            artifact_sha256=self.artifact_sha256,
            labels=tuple(self.labels),
            training_run_id=self.training_run_id,
            data_snapshot_uri=self.data_snapshot_uri,
            data_snapshot_sha256=self.data_snapshot_sha256,
            metrics=dict(self.metrics),
            calibration=dict(self.calibration) if self.calibration is not None else None,
            config=dict(self.config),
            description=self.description,
            created_at=self.created_at,
        )


class AliasRow(Base):
    __tablename__ = "model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_name", "version"],
            ["model_versions.model_name", "model_versions.version"],
            name="fk_model_aliases_version_model_versions",
        ),
    )

    model_name: Mapped[str] = mapped_column(StorableString(200), primary_key=True)
    alias: Mapped[str] = mapped_column(StorableString(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_entity(self) -> e.Alias:
        return e.Alias(
            model_name=self.model_name, alias=self.alias, version=self.version, updated_at=self.updated_at
        )


class AliasEventRow(Base):
    """Append-only: the store inserts these and never updates or deletes them."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_model_alias", "model_name", "alias", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(StorableString(200))
    alias: Mapped[str] = mapped_column(StorableString(100))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(StorableString(200))
    reason: Mapped[str] = mapped_column(StorableText)
    report_uri: Mapped[str | None] = mapped_column(StorableText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_entity(self) -> e.AliasEvent:
        return e.AliasEvent(
            id=self.id,
            model_name=self.model_name,
            alias=self.alias,
            from_version=self.from_version,
            to_version=self.to_version,
            actor=self.actor,
            reason=self.reason,
            report_uri=self.report_uri,
            created_at=self.created_at,
        )


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_created_at", "created_at"),
        Index("ix_predictions_model_created", "model_name", "created_at"),
        Index("ix_predictions_model_version_created", "model_name", "model_version", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(StorableString(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column()
    text: Mapped[str] = mapped_column(StorableText)
    text_hash: Mapped[str] = mapped_column(StorableString(64), index=True)
    label: Mapped[str] = mapped_column(StorableString(200))
    scores: Mapped[dict[str, Any]] = mapped_column()
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    model_name: Mapped[str] = mapped_column(StorableString(200))
    model_version: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    runtime: Mapped[str | None] = mapped_column(String(16))

    def to_entity(self) -> e.Prediction:
        return e.Prediction(
            id=self.id,
            created_at=self.created_at,
            text=self.text,
            text_hash=self.text_hash,
            label=self.label,
            scores=dict(self.scores),
            embedding=self.embedding,
            model_name=self.model_name,
            model_version=self.model_version,
            latency_ms=self.latency_ms,
            truncated=self.truncated,
            runtime=self.runtime,
        )


class LabelRow(Base):
    __tablename__ = "labels"
    __table_args__ = (
        Index("ix_labels_created_at", "created_at"),
        Index("ix_labels_model_created", "model_name", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str | None] = mapped_column(
        ForeignKey("predictions.id", ondelete="SET NULL"), index=True
    )
    # the model the label is for: its prediction's, or the one a text's label names. NULL only for a
    # label given before 0008 that no prediction or single model could attribute (see the migration)
    model_name: Mapped[str | None] = mapped_column(StorableString(200))
    text: Mapped[str] = mapped_column(StorableText)
    text_hash: Mapped[str] = mapped_column(StorableString(64), index=True)
    label: Mapped[str] = mapped_column(StorableString(200))
    source: Mapped[str] = mapped_column(StorableString(100))
    domain: Mapped[str | None] = mapped_column(StorableString(200))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_entity(self) -> e.Label:
        return e.Label(
            id=self.id,
            prediction_id=self.prediction_id,
            model_name=self.model_name,
            text=self.text,
            text_hash=self.text_hash,
            label=self.label,
            source=self.source,
            domain=self.domain,
            metadata=dict(self.meta or {}),
            created_at=self.created_at,
        )


class DriftCheckRow(Base):
    __tablename__ = "drift_checks"
    __table_args__ = (Index("ix_drift_checks_model_created", "model_name", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(StorableString(200))
    model_version: Mapped[int | None] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column()
    window_end: Mapped[datetime] = mapped_column()
    reference: Mapped[str] = mapped_column(StorableText)
    n_reference: Mapped[int] = mapped_column(Integer)
    n_current: Mapped[int] = mapped_column(Integer)
    scores: Mapped[dict[str, Any]] = mapped_column()
    drifted: Mapped[bool] = mapped_column(Boolean)
    decision: Mapped[str] = mapped_column(StorableString(50))
    reason: Mapped[str] = mapped_column(StorableText)
    report_uri: Mapped[str | None] = mapped_column(StorableText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_entity(self) -> e.DriftCheck:
        return e.DriftCheck(
            id=self.id,
            model_name=self.model_name,
            model_version=self.model_version,
            window_start=self.window_start,
            window_end=self.window_end,
            reference=self.reference,
            n_reference=self.n_reference,
            n_current=self.n_current,
            scores=dict(self.scores),
            drifted=self.drifted,
            decision=self.decision,
            reason=self.reason,
            report_uri=self.report_uri,
            created_at=self.created_at,
        )


class RetrainRunRow(Base):
    __tablename__ = "retrain_runs"
    __table_args__ = (Index("ix_retrain_runs_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(StorableString(200))
    trigger: Mapped[str] = mapped_column(StorableString(20))
    status: Mapped[str] = mapped_column(StorableString(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    not_before: Mapped[datetime | None] = mapped_column()  # a retry waits until then (back-off)
    config: Mapped[dict[str, Any]] = mapped_column()
    data_snapshot_sha256: Mapped[str | None] = mapped_column(StorableString(64))
    candidate_version: Mapped[int | None] = mapped_column(Integer)
    drift_check_id: Mapped[int | None] = mapped_column(ForeignKey("drift_checks.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(StorableText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    def to_entity(self) -> e.RetrainRun:
        return e.RetrainRun(
            id=self.id,
            model_name=self.model_name,
            trigger=e.RunTrigger(self.trigger),
            status=e.RunStatus(self.status),
            attempts=self.attempts,
            heartbeat_at=self.heartbeat_at,
            not_before=self.not_before,
            config=dict(self.config),
            data_snapshot_sha256=self.data_snapshot_sha256,
            candidate_version=self.candidate_version,
            drift_check_id=self.drift_check_id,
            error=self.error,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


class CheckRequestRow(Base):
    """A drift check someone asked for (``POST /api/checks``); the scheduler's leader runs it."""

    __tablename__ = "check_requests"
    __table_args__ = (Index("ix_check_requests_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(StorableString(200))
    requested_by: Mapped[str] = mapped_column(StorableString(200))
    status: Mapped[str] = mapped_column(StorableString(20))
    drift_check_id: Mapped[int | None] = mapped_column(ForeignKey("drift_checks.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(StorableText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column()

    def to_entity(self) -> e.CheckRequest:
        return e.CheckRequest(
            id=self.id,
            model_name=self.model_name,
            requested_by=self.requested_by,
            status=e.CheckRequestStatus(self.status),
            drift_check_id=self.drift_check_id,
            error=self.error,
            created_at=self.created_at,
            handled_at=self.handled_at,
        )


class PromotionDecisionRow(Base):
    __tablename__ = "promotion_decisions"
    __table_args__ = (Index("ix_promotion_decisions_model_created", "model_name", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(StorableString(200))
    candidate_version: Mapped[int] = mapped_column(Integer)
    incumbent_version: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("retrain_runs.id", ondelete="SET NULL"))
    metrics: Mapped[dict[str, Any]] = mapped_column()
    passed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[Any]] = mapped_column()
    status: Mapped[str] = mapped_column(StorableString(30))
    reviewer: Mapped[str | None] = mapped_column(StorableString(200))
    report_uri: Mapped[str | None] = mapped_column(StorableText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column()

    def to_entity(self) -> e.PromotionDecision:
        return e.PromotionDecision(
            id=self.id,
            model_name=self.model_name,
            candidate_version=self.candidate_version,
            incumbent_version=self.incumbent_version,
            run_id=self.run_id,
            metrics=dict(self.metrics),
            passed=self.passed,
            reasons=tuple(self.reasons),
            status=e.DecisionStatus(self.status),
            reviewer=self.reviewer,
            report_uri=self.report_uri,
            created_at=self.created_at,
            decided_at=self.decided_at,
        )


class ApiTokenRow(Base):
    """A named API token: the sha256 of its secret, never the secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(StorableString(64), unique=True)
    role: Mapped[str] = mapped_column(StorableString(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(StorableString(200))
    revoked_at: Mapped[datetime | None] = mapped_column()

    def to_entity(self) -> e.ApiToken:
        return e.ApiToken(
            id=self.id,
            name=self.name,
            role=e.Role(self.role),
            created_at=self.created_at,
            created_by=self.created_by,
            revoked_at=self.revoked_at,
        )


class LeaseRow(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(StorableString(200), primary_key=True)
    holder: Mapped[str] = mapped_column(StorableString(200))
    acquired_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()

    def to_entity(self) -> e.Lease:
        return e.Lease(
            name=self.name, holder=self.holder, acquired_at=self.acquired_at, expires_at=self.expires_at
        )


class LabelRequestRow(Base):
    """A prediction the label queue handed out (``labeling.handout``, leased by
    ``registry.store.labelqueue``): not offered again until ``expires_at``, nor ever once it has a label."""

    __tablename__ = "label_requests"
    __table_args__ = (Index("ix_label_requests_prediction_expires", "prediction_id", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"))
    model_name: Mapped[str] = mapped_column(StorableString(200))
    model_version: Mapped[int] = mapped_column(Integer)
    handout: Mapped[str] = mapped_column(StorableString(32), index=True)
    strategy: Mapped[str] = mapped_column(String(16))
    rank: Mapped[int] = mapped_column(Integer)
    margin: Mapped[float] = mapped_column(Float)
    handed_to: Mapped[str] = mapped_column(StorableString(200))
    handed_out_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
