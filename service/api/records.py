"""Drift checks and promotion decisions: read them, approve or refuse pending promotions."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from registry import entities as e
from service.api.deps import RegistryDep, WriterDep

checks = APIRouter(prefix="/drift-checks", tags=["drift checks"])
decisions = APIRouter(prefix="/decisions", tags=["promotion decisions"])


class ReviewRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    reviewer: str | None = Field(default=None, max_length=200)


@checks.get("", response_model=list[e.DriftCheck])
def list_checks(registry: RegistryDep, model_name: str | None = None, limit: int = Query(100, ge=1, le=1000)):
    return registry.list_drift_checks(model_name, limit=limit)


@checks.get("/{check_id}", response_model=e.DriftCheck)
def get_check(check_id: int, registry: RegistryDep) -> e.DriftCheck:
    return registry.get_drift_check(check_id)


@decisions.get("", response_model=list[e.PromotionDecision])
def list_decisions(
    registry: RegistryDep, model_name: str | None = None, limit: int = Query(100, ge=1, le=1000)
):
    return registry.list_decisions(model_name, limit=limit)


@decisions.get("/{decision_id}", response_model=e.PromotionDecision)
def get_decision(decision_id: int, registry: RegistryDep) -> e.PromotionDecision:
    return registry.get_decision(decision_id)


@decisions.post("/{decision_id}/approve", response_model=e.PromotionDecision)
def approve(
    decision_id: int, body: ReviewRequest, registry: RegistryDep, actor: WriterDep
) -> e.PromotionDecision:
    return registry.review_decision(
        decision_id, approve=True, reviewer=body.reviewer or actor, reason=body.reason
    )


@decisions.post("/{decision_id}/reject", response_model=e.PromotionDecision)
def reject(
    decision_id: int, body: ReviewRequest, registry: RegistryDep, actor: WriterDep
) -> e.PromotionDecision:
    return registry.review_decision(
        decision_id, approve=False, reviewer=body.reviewer or actor, reason=body.reason
    )
