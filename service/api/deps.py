"""Shared dependencies: the registry, the artifact store, and bearer-token auth by role.

The control API and the console read one registry and one artifact store from their app's state, set at
startup by :func:`backends_lifespan`: the serving process hands its own to both (they share its
connection pool), a standalone app opens its own from the settings (:func:`open_backends`).

Every write names its actor: the name of the token that made it (``api-token`` for
``DRIFTLINE_API_TOKEN``). Roles: reader < labeler < reviewer < admin (``registry.entities.Role``).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registry.artifacts import ArtifactStore, artifact_store
from registry.entities import Role
from registry.errors import DriftlineError, ErrorCode
from registry.settings import get_settings
from registry.store import Registry
from registry.store.tokens import CACHE_TTL_S, ENV_TOKEN_ACTOR, hash_secret

Backends = tuple[Registry, ArtifactStore]
"""What the control API and the console read and write through."""

_bearer = HTTPBearer(
    auto_error=False, description="A named token (`driftline tokens create`) or DRIFTLINE_API_TOKEN."
)


def open_backends() -> Backends:
    """A registry and an artifact store of its own, from the settings: what a standalone app serves."""
    settings = get_settings()
    return Registry.open(settings), artifact_store(settings)


def backends_lifespan(
    backends: Callable[[], Backends],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: at startup its state gets the registry and artifact store ``backends`` gives."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.registry, app.state.artifacts = backends()
        yield

    return lifespan


def get_registry(request: Request) -> Registry:
    """The registry the app was started with."""
    return request.app.state.registry


def get_artifacts(request: Request) -> ArtifactStore:
    """The artifact store the app was started with."""
    return request.app.state.artifacts


def bearer_secret(header: str | None) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header value, or None."""
    scheme, _, value = (header or "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


class TokenCache:
    """Named tokens that authenticated in the last ``ttl_s`` seconds, keyed by the secret's hash, so a
    hot path (``/feedback``) does not ask the database on each request.

    Only successes are kept. A token revoked (``driftline tokens revoke``) therefore keeps working in a
    process that used it for up to ``ttl_s`` seconds more (5 s by default); a new token works at once.
    """

    def __init__(self, ttl_s: float = CACHE_TTL_S, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, str, Role]] = {}

    def lookup(self, registry: Registry, secret: str) -> tuple[str, Role] | None:
        """The (name, role) of the active token ``secret``, from the cache or the registry; None if none."""
        key = hash_secret(secret)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        token = registry.tokens.authenticate(secret)
        with self._lock:
            if token is None:
                self._entries.pop(key, None)
                return None
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (now + self.ttl_s, token.name, token.role)
        return token.name, token.role

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


token_cache = TokenCache()


def authorize(registry: Registry, secret: str | None, needed: Role) -> str:
    """The actor name of the bearer ``secret`` if its role is ``needed`` or above.

    ``DRIFTLINE_API_TOKEN`` is an admin token named ``api-token``; any other secret is looked up among the
    named tokens (through :data:`token_cache`: a revoked token stops working within its TTL, 5 s).
    No token, an unknown or a revoked one: 401 (saying how to make one when none exists); a role too low: 403.
    """
    env = get_settings().api_token
    env_secret = env.get_secret_value() if env is not None else ""
    found: tuple[str, Role] | None = None
    if secret:
        if env_secret and hmac.compare_digest(_raw(secret), _raw(env_secret)):
            found = (ENV_TOKEN_ACTOR, Role.ADMIN)
        else:
            found = token_cache.lookup(registry, secret)
    if found is None:
        if not env_secret and not registry.tokens.any_active():
            raise DriftlineError(
                f"this needs a token with role {needed.value} or above and none exists yet: create one with "
                "`driftline tokens create NAME --role reviewer` (or set DRIFTLINE_API_TOKEN for the server) "
                "and send it as 'Authorization: Bearer <token>'",
                code=ErrorCode.UNAUTHENTICATED,
                needed=needed.value,
            )
        said = "an unknown or revoked bearer token" if secret else "no bearer token"
        raise DriftlineError(
            f"{said}: this needs a token with role {needed.value} or above, sent as "
            "'Authorization: Bearer <token>'",
            code=ErrorCode.UNAUTHENTICATED,
            needed=needed.value,
        )
    name, role = found
    if not role.allows(needed):
        raise DriftlineError(
            f"token '{name}' has role {role.value}; this needs {needed.value}",
            code=ErrorCode.PERMISSION_DENIED,
            role=role.value,
            needed=needed.value,
        )
    return name


def authorize_header(registry: Registry, header: str | None, needed: Role) -> str:
    """:func:`authorize` for a raw ``Authorization`` header value (the BentoML API, closed reads)."""
    return authorize(registry, bearer_secret(header), needed)


def _raw(secret: str) -> bytes:
    return secret.encode("utf-8", "surrogatepass")


def _requires(role: Role) -> Callable[..., str]:
    def check(
        registry: RegistryDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> str:
        return authorize(registry, None if credentials is None else credentials.credentials, role)

    check.__name__ = f"require_{role.value}"
    check.__doc__ = f"A bearer token with role {role.value} or above; returns its name (the actor)."
    return check


def require_open_reads_or_reader(request: Request) -> None:
    """Router-level: with ``DRIFTLINE_OPEN_READS=false`` a GET (or HEAD) needs a reader token or above."""
    if request.method in ("GET", "HEAD") and not get_settings().open_reads:
        authorize_header(get_registry(request), request.headers.get("authorization"), Role.READER)


RegistryDep = Annotated[Registry, Depends(get_registry)]
ArtifactsDep = Annotated[ArtifactStore, Depends(get_artifacts)]
LabelerDep = Annotated[str, Depends(_requires(Role.LABELER))]
ReviewerDep = Annotated[str, Depends(_requires(Role.REVIEWER))]
WriterDep = ReviewerDep
"""The control API's writes (promote, rollback, approve, reject, queue a run, request a check)."""
