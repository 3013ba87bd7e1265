"""Plain frozen records handed out by the store. ORM classes never leave ``registry/``."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Any

CHAMPION = "champion"
CHALLENGER = "challenger"
GUARD_ACTOR = "guard"  # the actor of the alias moves the post-promotion guard makes (orchestration/guard_job.py)


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # nothing to train on (too few new labels, a single class); the reason is kept

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)


class CheckRequestStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class RunTrigger(enum.StrEnum):
    BOOTSTRAP = "bootstrap"
    DRIFT = "drift"
    LABEL_GROWTH = "label_growth"  # no drift that hurts, but the labels since the champion outgrew it
    MANUAL = "manual"


class DecisionStatus(enum.StrEnum):
    PROMOTED = "promoted"
    REJECTED = "rejected"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REFUSED = "refused"


class Role(enum.StrEnum):
    """What an API token may do; each role may do everything the roles before it may."""

    READER = "reader"  # GETs of the control API, where reads are closed
    LABELER = "labeler"  # POST /feedback
    REVIEWER = "reviewer"  # promote, rollback, approve, reject, queue a run, request a drift check
    ADMIN = "admin"  # token management

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        order = list(Role)
        return order.index(self) >= order.index(needed)


def as_dict(entity: Any) -> dict[str, Any]:
    """JSON-ready dict of an entity: datetimes as ISO 8601, enums as their values, bytes left out."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(entity):
        value = getattr(entity, field.name)
        if isinstance(value, bytes):
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        out[field.name] = value
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class RegisteredModel:
    name: str
    description: str
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ArtifactRef:
    """Where a content-addressed artifact lives and the digest it must have."""

    uri: str
    sha256: str


@dataclasses.dataclass(frozen=True, slots=True)
class ModelVersion:
    model_name: str
    version: int
    parent_version: int | None
    base_model: str
    artifact_uri: str
    artifact_sha256: str
    labels: tuple[str, ...]
    training_run_id: int | None
    data_snapshot_uri: str | None
    data_snapshot_sha256: str | None
    metrics: dict[str, Any]
    calibration: dict[str, Any] | None
    config: dict[str, Any]
    description: str
    created_at: datetime

    @property
    def artifact(self) -> ArtifactRef:
        return ArtifactRef(self.artifact_uri, self.artifact_sha256)


@dataclasses.dataclass(frozen=True, slots=True)
class NewModelVersion:
    """What a caller gives to register a version; the registry assigns the number."""

    base_model: str
    artifact: ArtifactRef
    labels: tuple[str, ...]
    metrics: dict[str, Any]
    config: dict[str, Any]
    parent_version: int | None = None
    training_run_id: int | None = None
    data_snapshot: ArtifactRef | None = None
    calibration: dict[str, Any] | None = None
    description: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Alias:
    model_name: str
    alias: str
    version: int
    updated_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class AliasEvent:
    id: int
    model_name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    report_uri: str | None
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Prediction:
    id: str
    created_at: datetime
    text: str
    text_hash: str
    label: str
    scores: dict[str, float]
    embedding: bytes | None
    model_name: str
    model_version: int
    latency_ms: float
    truncated: bool = False  # longer than the model's max_length tokens: the model read its head
    runtime: str | None = None  # what computed it: torch, onnx, onnx-int8 (None: logged before 0006)


@dataclasses.dataclass(frozen=True, slots=True)
class Label:
    id: int
    prediction_id: str | None
    model_name: str | None  # the model it is for (None: given before 0008, of no prediction it could name)
    text: str
    text_hash: str
    label: str
    source: str
    domain: str | None
    metadata: dict[str, Any]
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class DriftCheck:
    id: int
    model_name: str
    model_version: int | None
    window_start: datetime
    window_end: datetime
    reference: str
    n_reference: int
    n_current: int
    scores: dict[str, Any]
    drifted: bool
    decision: str
    reason: str
    report_uri: str | None
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class NewDriftCheck:
    """What the monitor records of one drift check; the registry assigns the id and the time."""

    model_name: str
    model_version: int | None
    window_start: datetime
    window_end: datetime
    reference: str
    n_reference: int
    n_current: int
    scores: dict[str, Any]
    drifted: bool
    decision: str
    reason: str
    report_uri: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RetrainRun:
    id: int
    model_name: str
    trigger: RunTrigger
    status: RunStatus
    attempts: int
    heartbeat_at: datetime | None
    not_before: datetime | None  # a queued retry is not dispatched before this time
    config: dict[str, Any]
    data_snapshot_sha256: str | None
    candidate_version: int | None
    drift_check_id: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class CheckRequest:
    """A drift check asked for through the control API; ``drift_check_id`` is set once it ran."""

    id: int
    model_name: str
    requested_by: str
    status: CheckRequestStatus
    drift_check_id: int | None
    error: str | None
    created_at: datetime
    handled_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class PromotionDecision:
    id: int
    model_name: str
    candidate_version: int
    incumbent_version: int | None
    run_id: int | None
    metrics: dict[str, Any]
    passed: bool
    reasons: tuple[str, ...]
    status: DecisionStatus
    reviewer: str | None
    report_uri: str | None
    created_at: datetime
    decided_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class NewDecision:
    """What a run decided about its candidate; the registry assigns the id and the time, and a
    ``promoted`` decision moves ``champion``."""

    model_name: str
    candidate_version: int
    incumbent_version: int | None
    run_id: int | None
    metrics: dict[str, Any]
    passed: bool
    reasons: tuple[str, ...]
    status: DecisionStatus
    report_uri: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ApiToken:
    """A named API token; its secret is shown once when it is made and only its hash is stored."""

    id: int
    name: str
    role: Role
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class NewPrediction:
    """A prediction to log; the service assigns the id when it answers."""

    id: str
    created_at: datetime
    text: str
    text_hash: str
    label: str
    scores: dict[str, float]
    model_name: str
    model_version: int
    latency_ms: float
    embedding: bytes | None = None
    truncated: bool = False
    runtime: str | None = None  # torch, onnx or onnx-int8 (service.runtime.RUNTIMES)


@dataclasses.dataclass(frozen=True, slots=True)
class NewLabel:
    """A label for a logged prediction (``prediction_id``) or for a text seen elsewhere (``text``).

    A prediction's label is for the model that served it; a text's label is for ``model_name``, which
    it needs."""

    label: str
    prediction_id: str | None = None
    text: str | None = None
    model_name: str | None = None
    domain: str | None = None
    source: str = "feedback"
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    created_at: datetime | None = None  # when the label was given; defaults to now


# --- the label queue (labeling/ ranks, registry/store/labelqueue.py leases) ------------------------

MARGIN = "margin"  # a queue item chosen for its small margin: the model was unsure
RANDOM = "random"  # one drawn uniformly: an unbiased sample of the traffic


@dataclasses.dataclass(frozen=True, slots=True)
class QueuePick:
    """A prediction the queue's ranking picked, to lease: in queue order, before the lease drops any."""

    prediction_id: str
    strategy: str  # MARGIN or RANDOM
    margin: float  # top-1 minus top-2 calibrated probability, unrounded
    scores: dict[str, float]  # calibrated probabilities, the version's label order, unrounded


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
class Handout:
    """One answer of the queue: its items, leased to ``handed_to`` until ``expires_at``."""

    id: str
    model_name: str
    model_version: int
    handed_to: str
    handed_out_at: datetime
    expires_at: datetime
    candidates: int  # unlabeled predictions not handed out, among the latest considered
    random_share: float
    items: list[QueueItem] = dataclasses.field(default_factory=list)
