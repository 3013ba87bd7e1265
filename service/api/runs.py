"""Retraining runs: list, inspect, queue a manual one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from registry import entities as e
from registry.settings import get_settings
from service.api.deps import RegistryDep, WriterDep

router = APIRouter(prefix="/runs", tags=["runs"])


class RetrainRequest(BaseModel):
    model_name: str | None = Field(default=None, description="Defaults to DRIFTLINE_MODEL_NAME.")
    reason: str = Field(default="manual retrain", max_length=2000)
    config: dict[str, Any] = Field(default_factory=dict, description="Training config overrides.")
    assembly: dict[str, Any] = Field(
        default_factory=dict, description="Data assembly overrides, e.g. {\"min_new_labels\": 100}."
    )
    gate: dict[str, Any] = Field(default_factory=dict, description="Promotion gate overrides.")


@router.get("", response_model=list[e.RetrainRun])
def list_runs(registry: RegistryDep, model_name: str | None = None, limit: int = Query(100, ge=1, le=1000)):
    return registry.list_runs(model_name, limit=limit)


@router.get("/{run_id}", response_model=e.RetrainRun)
def get_run(run_id: int, registry: RegistryDep) -> e.RetrainRun:
    return registry.get_run(run_id)


@router.post("", response_model=e.RetrainRun, status_code=201)
def queue_retrain(body: RetrainRequest, registry: RegistryDep, actor: WriterDep) -> e.RetrainRun:
    """Queue a manual retraining run; the scheduler's dispatcher starts it."""
    name = body.model_name or get_settings().model_name
    registry.get_model(name)
    return registry.create_run(
        name,
        trigger=e.RunTrigger.MANUAL,
        config={
            "train": body.config,
            "assembly": body.assembly,
            "gate": body.gate,
            "reason": body.reason,
            "requested_by": actor,
        },
    )
