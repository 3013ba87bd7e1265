"""Shared dependencies: the registry, the artifact store, and bearer-token auth for writes."""

from __future__ import annotations

import hmac
import threading
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registry.artifacts import ArtifactStore, open_artifact_store
from registry.errors import DriftlineError, ErrorCode
from registry.settings import get_settings
from registry.store import Registry

_lock = threading.Lock()
_bearer = HTTPBearer(auto_error=False, description="DRIFTLINE_API_TOKEN")


def get_registry(request: Request) -> Registry:
    """The app's registry; the serving process shares its own, a standalone app opens one lazily."""
    state = request.app.state
    if getattr(state, "registry", None) is None:
        with _lock:
            if getattr(state, "registry", None) is None:
                state.registry = Registry.open(get_settings())
    return state.registry


def get_artifacts(request: Request) -> ArtifactStore:
    state = request.app.state
    if getattr(state, "artifacts", None) is None:
        settings = get_settings()
        state.artifacts = open_artifact_store(
            settings.artifact_root, cache_dir=settings.cache_dir / "artifacts"
        )
    return state.artifacts


def require_writer(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Write endpoints need ``Authorization: Bearer $DRIFTLINE_API_TOKEN``; returns the actor name."""
    token = get_settings().api_token
    if token is None or not token.get_secret_value():
        raise DriftlineError(
            "write endpoints are disabled: set DRIFTLINE_API_TOKEN for the server and send it as "
            "'Authorization: Bearer <token>' (`driftline up` generates one and prints it)",
            code=ErrorCode.PERMISSION_DENIED,
        )
    if credentials is None or not hmac.compare_digest(credentials.credentials, token.get_secret_value()):
        raise DriftlineError(
            "missing or wrong bearer token: send 'Authorization: Bearer <DRIFTLINE_API_TOKEN>'",
            code=ErrorCode.UNAUTHENTICATED,
        )
    return "api"


RegistryDep = Annotated[Registry, Depends(get_registry)]
ArtifactsDep = Annotated[ArtifactStore, Depends(get_artifacts)]
WriterDep = Annotated[str, Depends(require_writer)]
