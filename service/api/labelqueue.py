"""The label queue: the champion's unlabeled predictions a label would teach most, handed out with a lease."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from labeling.formats import item_record, label_studio_tasks
from labeling.handout import LEASE_HOURS, MAX_LIMIT, hand_out
from labeling.ranking import RANDOM_SHARE
from registry.entities import CHAMPION, Handout
from registry.settings import get_settings
from service.api.deps import LabelerDep, RegistryDep
from service.api.responses import EVERY_ROUTE, WRITE

router = APIRouter(prefix="/label-queue", tags=["label queue"], responses=EVERY_ROUTE)


class QueueItemOut(BaseModel):
    prediction_id: str
    text: str
    created_at: str
    model_name: str
    model_version: int
    predicted_label: str
    scores: dict[str, float]
    strategy: Literal["margin", "random"]
    rank: int
    margin: float


class LabelStudioTask(BaseModel):
    """A Label Studio task (``format=label-studio``): the text and prediction id in ``data``, the model's
    answer in ``predictions`` (``model_version``, ``score``, a ``choices`` result)."""

    data: dict[str, Any]
    predictions: list[dict[str, Any]]


class HandoutOut(BaseModel):
    handout: str
    model_name: str
    model_version: int
    handed_to: str
    expires_at: str
    candidates: int
    random_share: float
    items: list[QueueItemOut]


def handout_body(handout: Handout) -> dict[str, Any]:
    return {
        "handout": handout.id,
        "model_name": handout.model_name,
        "model_version": handout.model_version,
        "handed_to": handout.handed_to,
        "expires_at": handout.expires_at.isoformat(),
        "candidates": handout.candidates,
        "random_share": handout.random_share,
        "items": [item_record(item) for item in handout.items],
    }


@router.get(
    "",
    response_model=HandoutOut | list[LabelStudioTask],
    responses=WRITE,
    description="Hands out up to `limit` of the champion's latest unlabeled predictions, most informative "
    "first (margin sampling with diversity over the logged embeddings, plus a uniform-random share marked "
    "`random`), and leases them to the caller for `lease_hours`: they are not offered again meanwhile, "
    "nor ever once labeled. Needs a labeler token. `format=label-studio` answers Label Studio tasks instead.",
)
def label_queue(
    registry: RegistryDep,
    actor: LabelerDep,
    model: str | None = Query(None, description="Defaults to DRIFTLINE_MODEL_NAME.", max_length=200),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    random_share: float = Query(RANDOM_SHARE, ge=0.0, le=1.0),
    lease_hours: float = Query(LEASE_HOURS, gt=0.0, le=24 * 30),
    format: Literal["json", "label-studio"] = Query("json"),
) -> Any:
    handout = hand_out(
        registry,
        registry.get_version_by_alias(model or get_settings().model_name, CHAMPION),
        limit,
        handed_to=actor,
        random_share=random_share,
        lease_hours=lease_hours,
    )
    if format == "label-studio":
        from fastapi.responses import JSONResponse

        return JSONResponse(label_studio_tasks(handout))
    return handout_body(handout)
