"""Retraining runs: list, inspect, queue a manual one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field, model_validator

from contracts import RunSpec
from registry import entities as e
from registry.settings import get_settings
from service.api.deps import RegistryDep, WriterDep
from service.api.params import Id
from service.api.responses import EVERY_ROUTE, WRITE, responses

router = APIRouter(prefix="/runs", tags=["runs"], responses=EVERY_ROUTE)


class RunRequest(RunSpec):
    """The body of ``POST /api/runs``: the run contract (an unknown key anywhere is a 422 naming it, and
    nothing is queued), the model, and ``config``, the name this body gave the training values before
    it took the contract's ``train`` (still read, for the clients that send it)."""

    model_name: str | None = Field(default=None, description="Defaults to DRIFTLINE_MODEL_NAME.")
    reason: str = Field(default="manual retrain", max_length=2000)
    config: dict[str, Any] | None = Field(
        default=None, description="Training config overrides: the same as train (give one of them)."
    )

    @model_validator(mode="before")
    @classmethod
    def _config_is_train(cls, data: Any) -> Any:
        """``config`` is read as ``train`` (the contract's name); both at once is refused."""
        if not isinstance(data, dict) or data.get("config") is None:
            return data
        if "train" in data:
            raise ValueError("give the training values as train or as config, not both")
        return {**{k: v for k, v in data.items() if k != "config"}, "train": data["config"]}

    def spec(self, requested_by: str) -> RunSpec:
        """The run contract this body asks for, recorded as asked by ``requested_by`` (the caller)."""
        unsaid = set() if "search" in self.model_fields_set else {"search"}  # the run's DRIFTLINE_SEARCH decides
        values = self.model_dump(exclude={"model_name", "config", *unsaid})
        return RunSpec.model_validate({**values, "requested_by": requested_by})


@router.get("", response_model=list[e.RetrainRun], responses=responses(422))
def list_runs(registry: RegistryDep, model_name: str | None = None, limit: int = Query(100, ge=1, le=1000)):
    return registry.list_runs(model_name, limit=limit)


@router.get("/{run_id}", response_model=e.RetrainRun, responses=responses(404, 422))
def get_run(run_id: Id, registry: RegistryDep) -> e.RetrainRun:
    return registry.get_run(run_id)


@router.post("", response_model=e.RetrainRun, status_code=201, responses=WRITE)
def queue_retrain(body: RunRequest, registry: RegistryDep, actor: WriterDep) -> e.RetrainRun:
    """Queue a manual retraining run; the scheduler's dispatcher starts it. A model that already has
    ``DRIFTLINE_MAX_PENDING_MANUAL_RUNS`` manual runs queued or running answers 409. ``mode: manual``:
    a challenger that passes the gate waits for a reviewer's approval."""
    settings = get_settings()
    name = body.model_name or settings.model_name
    return registry.create_run(
        name,
        trigger=e.RunTrigger.MANUAL,
        max_pending=settings.max_pending_manual_runs,
        config=body.spec(actor).to_record(),
    )
