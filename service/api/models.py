"""Models, versions, aliases and their audit log; promote and roll back."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from registry import entities as e
from service.api.deps import RegistryDep, WriterDep
from service.api.params import AliasName, Id
from service.api.responses import EVERY_ROUTE, WRITE, responses

router = APIRouter(prefix="/models", tags=["models"], responses=EVERY_ROUTE)


class PromoteRequest(BaseModel):
    version: Id = Field(description="The version to make champion.")
    reason: str = Field(min_length=1, max_length=2000)
    alias: AliasName = e.CHAMPION


class RollbackRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.get("", response_model=list[e.RegisteredModel])
def list_models(registry: RegistryDep) -> list[e.RegisteredModel]:
    return registry.list_models()


@router.get("/{name}/versions", response_model=list[e.ModelVersion], responses=responses(404, 422))
def list_versions(name: str, registry: RegistryDep) -> list[e.ModelVersion]:
    return registry.list_versions(name)


@router.get("/{name}/versions/{version}", response_model=e.ModelVersion, responses=responses(404, 422))
def get_version(name: str, version: Id, registry: RegistryDep) -> e.ModelVersion:
    return registry.get_version(name, version)


@router.get("/{name}/aliases", response_model=list[e.Alias], responses=responses(404, 422))
def list_aliases(name: str, registry: RegistryDep) -> list[e.Alias]:
    registry.get_model(name)
    return registry.list_aliases(name)


@router.get("/{name}/aliases/{alias}", response_model=e.ModelVersion, responses=responses(404, 422))
def get_alias(name: str, alias: str, registry: RegistryDep) -> e.ModelVersion:
    return registry.get_version_by_alias(name, alias)


@router.get("/{name}/events", response_model=list[e.AliasEvent], responses=responses(404, 422))
def list_events(
    name: str, registry: RegistryDep, alias: str | None = None, limit: int = Query(100, ge=1, le=1000)
) -> list[e.AliasEvent]:
    registry.get_model(name)
    return registry.list_alias_events(name, alias, limit=limit)


@router.post("/{name}/promote", response_model=e.AliasEvent, responses=WRITE)
def promote(name: str, body: PromoteRequest, registry: RegistryDep, actor: WriterDep) -> e.AliasEvent:
    return registry.set_alias(name, body.alias, body.version, actor=actor, reason=body.reason)


@router.post("/{name}/rollback", response_model=e.AliasEvent, responses=WRITE)
def rollback(name: str, body: RollbackRequest, registry: RegistryDep, actor: WriterDep) -> e.AliasEvent:
    return registry.rollback(name, actor=actor, reason=body.reason)
