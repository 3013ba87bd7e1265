"""Drift checks and promotion decisions: read them, approve or refuse pending promotions."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from registry import entities as e
from service.api.deps import RegistryDep, WriterDep
from service.api.params import Id
from service.api.responses import EVERY_ROUTE, WRITE, responses

checks = APIRouter(prefix="/drift-checks", tags=["drift checks"], responses=EVERY_ROUTE)
decisions = APIRouter(prefix="/decisions", tags=["promotion decisions"], responses=EVERY_ROUTE)


class ReviewRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    reviewer: str | None = Field(
        default=None,
        max_length=200,
        description="Kept for old clients, in the reason ('on behalf of ...'): the reviewer recorded is the "
        "token's name.",
    )


def _reason(body: ReviewRequest) -> str:
    """The reason, saying on whose behalf when the body names someone other than the token."""
    return f"{body.reason} (on behalf of {body.reviewer})" if body.reviewer else body.reason


@checks.get("", response_model=list[e.DriftCheck], responses=responses(422))
def list_checks(registry: RegistryDep, model_name: str | None = None, limit: int = Query(100, ge=1, le=1000)):
    return registry.list_drift_checks(model_name, limit=limit)


@checks.get("/{check_id}", response_model=e.DriftCheck, responses=responses(404, 422))
def get_check(check_id: Id, registry: RegistryDep) -> e.DriftCheck:
    return registry.get_drift_check(check_id)


@decisions.get("", response_model=list[e.PromotionDecision], responses=responses(422))
def list_decisions(
    registry: RegistryDep, model_name: str | None = None, limit: int = Query(100, ge=1, le=1000)
):
    return registry.list_decisions(model_name, limit=limit)


@decisions.get("/{decision_id}", response_model=e.PromotionDecision, responses=responses(404, 422))
def get_decision(decision_id: Id, registry: RegistryDep) -> e.PromotionDecision:
    return registry.get_decision(decision_id)


@decisions.post(
    "/{decision_id}/approve", response_model=e.PromotionDecision, responses=WRITE
)
def approve(
    decision_id: Id, body: ReviewRequest, registry: RegistryDep, actor: WriterDep
) -> e.PromotionDecision:
    return registry.review_decision(decision_id, approve=True, reviewer=actor, reason=_reason(body))


@decisions.post(
    "/{decision_id}/reject", response_model=e.PromotionDecision, responses=WRITE
)
def reject(
    decision_id: Id, body: ReviewRequest, registry: RegistryDep, actor: WriterDep
) -> e.PromotionDecision:
    return registry.review_decision(decision_id, approve=False, reviewer=actor, reason=_reason(body))
