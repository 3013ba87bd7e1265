"""Console sign-in: a named token (or ``DRIFTLINE_API_TOKEN``) once, then a signed session cookie.

- The cookie is Starlette's signed session (itsdangerous; HttpOnly, SameSite=Strict, ``Secure`` when
  ``DRIFTLINE_CONSOLE_SECURE_COOKIE=true``), valid ``DRIFTLINE_CONSOLE_SESSION_HOURS``. It holds the token's
  id, name and role, never its secret. Each request checks that the token is still active (a revoked
  token's sessions end at once; for the admin token from the environment, that it is unchanged).
- Every form carries the session's CSRF token; a POST without a session, or whose token does not match,
  is refused before anything is read from the registry.
- The signing key is ``DRIFTLINE_CONSOLE_SECRET``, else a random key kept in ``<home>/console.key`` (0600):
  replicas that share a home share sessions; replicas on separate machines need the setting.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from common.filemodes import create_private_file
from registry.entities import Role
from registry.errors import DriftlineError, ErrorCode
from registry.settings import Settings, get_settings
from registry.store import Registry
from registry.store.tokens import ENV_TOKEN_ACTOR, hash_secret

CSRF_FIELD = "csrf_token"
SESSION_COOKIE = "driftline_console"


@dataclass(frozen=True)
class Reviewer:
    """Who is signed in: the token's name (the actor recorded for their writes) and its role."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return self.role.allows(needed)


def signing_key(settings: Settings) -> str:
    """The session signing key: the setting, else ``<home>/console.key`` (made on first use, 0600)."""
    if settings.console_secret is not None and settings.console_secret.get_secret_value():
        return settings.console_secret.get_secret_value()
    path = Path(settings.home) / "console.key"
    if not path.is_file() or not path.read_text().strip():
        # written aside, then linked into place: two processes starting at once agree on one key
        spare = path.with_name(f".console.key.{secrets.token_hex(6)}")
        create_private_file(spare)
        spare.write_text(secrets.token_urlsafe(48))
        try:
            os.link(spare, path)
        except FileExistsError:
            pass
        finally:
            spare.unlink(missing_ok=True)
    return path.read_text().strip()


def _env_fingerprint(settings: Settings) -> str | None:
    env = settings.api_token.get_secret_value() if settings.api_token is not None else ""
    return hash_secret(env)[:16] if env else None


def sign_in(request: Request, registry: Registry, secret: str) -> Reviewer:
    """Start a session for the token ``secret``; an unknown or revoked one raises ``UNAUTHENTICATED``."""
    settings = get_settings()
    secret = secret.strip()
    env = settings.api_token.get_secret_value() if settings.api_token is not None else ""
    session: dict[str, object]
    if secret and env and hmac.compare_digest(secret.encode(), env.encode()):
        session = {"name": ENV_TOKEN_ACTOR, "role": Role.ADMIN.value, "env": _env_fingerprint(settings)}
    else:
        token = registry.tokens.authenticate(secret) if secret else None
        if token is None:
            raise DriftlineError(
                "that token is unknown or revoked", code=ErrorCode.UNAUTHENTICATED, field="token"
            )
        session = {"name": token.name, "role": token.role.value, "token_id": token.id}
    request.session.clear()
    request.session.update(session, csrf=secrets.token_urlsafe(32))  # a new CSRF token with each sign-in
    return Reviewer(str(session["name"]), Role(str(session["role"])))


def sign_out(request: Request) -> None:
    request.session.clear()


def current_reviewer(request: Request, registry: Registry) -> Reviewer | None:
    """The signed-in reviewer, or None (no session, or its token was revoked or changed since)."""
    session = request.session
    name, role = session.get("name"), session.get("role")
    if not isinstance(name, str) or role not in {r.value for r in Role}:
        return None
    if "env" in session:
        valid = session["env"] is not None and session["env"] == _env_fingerprint(get_settings())
    else:
        token_id = session.get("token_id")
        token = registry.tokens.active(token_id) if isinstance(token_id, int) else None
        valid = token is not None and token.name == name
        role = token.role.value if token is not None else role
    if not valid:
        session.clear()
        return None
    return Reviewer(name, Role(role))


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use, so the sign-in form has one too)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, sent: str | None) -> None:
    """Refuse a form whose CSRF token is missing or is not this session's."""
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise DriftlineError(
            "this form's CSRF token is missing or stale: reload the page and submit it again",
            code=ErrorCode.PERMISSION_DENIED,
            field=CSRF_FIELD,
        )


def require(request: Request, registry: Registry, needed: Role) -> Reviewer:
    """The signed-in reviewer if their role is ``needed`` or above; else 401 (not signed in) or 403."""
    reviewer = current_reviewer(request, registry)
    if reviewer is None:
        raise DriftlineError(
            f"sign in with a token of role {needed.value} or above to do this",
            code=ErrorCode.UNAUTHENTICATED,
            needed=needed.value,
        )
    if not reviewer.may(needed):
        raise DriftlineError(
            f"token '{reviewer.name}' has role {reviewer.role.value}; this needs {needed.value}",
            code=ErrorCode.PERMISSION_DENIED,
            needed=needed.value,
        )
    return reviewer
