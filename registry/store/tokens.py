"""Named API tokens with roles: create, list, revoke, and authenticate a presented secret.

A token is a name (the actor recorded on what it does), a :class:`registry.entities.Role` and a secret
``dl_...`` that is returned once by :meth:`TokenStore.create` and never stored: the table keeps its
sha256 (``api_tokens.token_hash``), and :meth:`TokenStore.authenticate` hashes what a client sends and
looks that up. Revoked tokens stay in the table (their names stay taken, for the audit log) and no
longer authenticate.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import entities as e
from registry.errors import AlreadyExistsError, ConflictError, InvalidInputError, NotFoundError
from registry.orm import ApiTokenRow

SECRET_PREFIX = "dl_"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
ENV_TOKEN_ACTOR = "api-token"
"""The actor name of ``DRIFTLINE_API_TOKEN`` (an admin token); no named token may take it."""
MAX_CREATED_BY_CHARS = 200  # the width of api_tokens.created_by
CACHE_TTL_S = 5.0
"""How long a serving process may keep a successful lookup (``service.api.deps.TokenCache``): a revoked
token stops working everywhere within this many seconds."""


def hash_secret(secret: str) -> str:
    """The sha256 hex digest of a token's secret: what the table stores and looks up."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def parse_role(value: str | e.Role) -> e.Role:
    """``value`` as a role, or :class:`InvalidInputError` naming the field and the roles there are."""
    try:
        return e.Role(value)
    except ValueError:
        roles = ", ".join(r.value for r in e.Role)
        raise InvalidInputError(f"role {value!r} is not one of {roles}", field="role") from None


def check_name(name: str) -> None:
    """Refuse a token name outside ``NAME_PATTERN`` or the env token's reserved name, naming the field."""
    if not isinstance(name, str) or re.fullmatch(NAME_PATTERN, name) is None:
        raise InvalidInputError(f"token name {name!r} is not allowed: it must be {NAME_RULE}", field="name")
    if name == ENV_TOKEN_ACTOR:
        raise InvalidInputError(
            f"token name {name!r} is reserved for DRIFTLINE_API_TOKEN: pick another name", field="name"
        )


class TokenStore:
    """The ``api_tokens`` table: ``Registry.tokens``, in the registry's transaction scope and clock."""

    def __init__(
        self, transaction: Callable[[], AbstractContextManager[Session]], clock: Callable[[], datetime]
    ) -> None:
        self._tx = transaction
        self._clock = clock

    def create(self, name: str, role: str | e.Role, *, created_by: str) -> tuple[e.ApiToken, str]:
        """A new token and its secret; the secret is not kept anywhere and cannot be shown again."""
        check_name(name)
        role = parse_role(role)
        if not created_by or len(created_by) > MAX_CREATED_BY_CHARS:
            raise InvalidInputError(
                f"created_by {created_by!r} must be 1 to {MAX_CREATED_BY_CHARS} characters",
                field="created_by",
            )
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        taken = AlreadyExistsError(
            f"token '{name}' already exists (names stay taken after a revoke): pick another name",
            field="name",
        )
        try:
            with self._tx() as s:
                if s.scalar(select(ApiTokenRow.id).where(ApiTokenRow.name == name)) is not None:
                    raise taken
                row = ApiTokenRow(
                    name=name,
                    role=role.value,
                    token_hash=hash_secret(secret),
                    created_at=self._clock(),
                    created_by=created_by,
                )
                s.add(row)
                s.flush()
                return row.to_entity(), secret
        except ConflictError:  # created by someone else between our read and insert
            raise taken from None

    def list(self) -> list[e.ApiToken]:
        """Every token, revoked ones included, oldest first (entities never carry the hash)."""
        with self._tx() as s:
            return [r.to_entity() for r in s.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))]

    def revoke(self, name: str) -> e.ApiToken:
        """Revoke the token ``name``: it no longer authenticates. Unknown or already revoked:
        :class:`NotFoundError`."""
        with self._tx() as s:
            row = s.scalar(select(ApiTokenRow).where(ApiTokenRow.name == name).with_for_update())
            if row is None:
                raise NotFoundError(f"token '{name}' does not exist", field="name")
            if row.revoked_at is not None:
                raise NotFoundError(
                    f"token '{name}' has no active secret: it was revoked at {row.revoked_at.isoformat()}",
                    field="name",
                )
            row.revoked_at = self._clock()
            s.flush()
            return row.to_entity()

    def authenticate(self, secret: str) -> e.ApiToken | None:
        """The active token whose secret this is, or None (unknown or revoked)."""
        with self._tx() as s:
            row = s.scalar(
                select(ApiTokenRow).where(
                    ApiTokenRow.token_hash == hash_secret(secret), ApiTokenRow.revoked_at.is_(None)
                )
            )
            return None if row is None else row.to_entity()

    def active(self, token_id: int) -> e.ApiToken | None:
        """The token with this id if it is not revoked (a console session checks it on each request)."""
        with self._tx() as s:
            row = s.get(ApiTokenRow, token_id)
            return None if row is None or row.revoked_at is not None else row.to_entity()

    def any_active(self) -> bool:
        """Whether at least one token is not revoked (to tell a client that none exists yet)."""
        with self._tx() as s:
            active = select(ApiTokenRow.id).where(ApiTokenRow.revoked_at.is_(None)).limit(1)
            return s.scalar(active) is not None
