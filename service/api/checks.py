"""Ask for a drift check now, and follow the request until the scheduler has run it.

The service never runs checks itself (it does not import ``monitor``): ``POST /api/checks`` records a
request, the scheduler's leader runs the check on its next dispatch tick (every
``DRIFTLINE_DISPATCH_INTERVAL_S``) and links the request to the check it wrote. The checks themselves
are listed under ``/api/drift-checks``.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from registry import entities as e
from registry.settings import get_settings
from service.api.deps import RegistryDep, WriterDep
from service.api.params import Id
from service.api.responses import EVERY_ROUTE, WRITE, responses

router = APIRouter(prefix="/checks", tags=["drift checks"], responses=EVERY_ROUTE)


class CheckRequestBody(BaseModel):
    model_name: str | None = Field(default=None, description="Defaults to DRIFTLINE_MODEL_NAME.")


@router.post("", response_model=e.CheckRequest, status_code=202, responses=WRITE)
def request_check(
    registry: RegistryDep, actor: WriterDep, body: CheckRequestBody | None = None
) -> e.CheckRequest:
    """Queue a drift check; poll ``/api/checks/requests/{id}`` for its status and ``drift_check_id``. A
    model that already has ``DRIFTLINE_MAX_PENDING_CHECK_REQUESTS`` pending requests answers 409."""
    settings = get_settings()
    name = (body.model_name if body else None) or settings.model_name
    return registry.request_check(name, requested_by=actor, max_pending=settings.max_pending_check_requests)


@router.get("/requests", response_model=list[e.CheckRequest], responses=responses(422))
def list_requests(
    registry: RegistryDep,
    status: e.CheckRequestStatus | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[e.CheckRequest]:
    return registry.list_check_requests(status, limit=limit)


@router.get("/requests/{request_id}", response_model=e.CheckRequest, responses=responses(404, 422))
def get_request(request_id: Id, registry: RegistryDep) -> e.CheckRequest:
    return registry.get_check_request(request_id)
