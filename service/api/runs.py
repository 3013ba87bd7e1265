"""Retraining runs: list, inspect, queue a manual one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from registry import entities as e
from registry.settings import get_settings
from service.api.deps import RegistryDep, WriterDep
from service.api.params import Id
from service.api.responses import EVERY_ROUTE, WRITE, responses

router = APIRouter(prefix="/runs", tags=["runs"], responses=EVERY_ROUTE)


class RetrainRequest(BaseModel):
    model_name: str | None = Field(default=None, description="Defaults to DRIFTLINE_MODEL_NAME.")
    reason: str = Field(default="manual retrain", max_length=2000)
    config: dict[str, Any] = Field(default_factory=dict, description="Training config overrides.")
    assembly: dict[str, Any] = Field(
        default_factory=dict, description="Data assembly overrides, e.g. {\"min_new_labels\": 100}."
    )
    gate: dict[str, Any] = Field(default_factory=dict, description="Promotion gate overrides.")


@router.get("", response_model=list[e.RetrainRun], responses=responses(422))
def list_runs(registry: RegistryDep, model_name: str | None = None, limit: int = Query(100, ge=1, le=1000)):
    return registry.list_runs(model_name, limit=limit)


@router.get("/{run_id}", response_model=e.RetrainRun, responses=responses(404, 422))
def get_run(run_id: Id, registry: RegistryDep) -> e.RetrainRun:
    return registry.get_run(run_id)


@router.post("", response_model=e.RetrainRun, status_code=201, responses=WRITE)
def queue_retrain(body: RetrainRequest, registry: RegistryDep, actor: WriterDep) -> e.RetrainRun:
    """Queue a manual retraining run; the scheduler's dispatcher starts it. A model that already has
    ``DRIFTLINE_MAX_PENDING_MANUAL_RUNS`` manual runs queued or running answers 409."""
    settings = get_settings()
    name = body.model_name or settings.model_name
    return registry.create_run(
        name,
        trigger=e.RunTrigger.MANUAL,
        max_pending=settings.max_pending_manual_runs,
        config={
            "train": body.config,
            "assembly": body.assembly,
            "gate": body.gate,
            "reason": body.reason,
            "requested_by": actor,
        },
    )
