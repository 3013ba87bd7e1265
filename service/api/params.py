"""Bounds shared by the control API's parameters and body fields, defined once so every route checks the
same thing and the OpenAPI document shows it; a value outside them is answered 422 naming the field."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from registry.store import ALIAS_PATTERN, ALIAS_RULE

MAX_ID = 2**31 - 1
"""The largest id or version number every backend holds: the registry's ids and versions are ``INTEGER``
columns, 32-bit on PostgreSQL (64-bit on SQLite)."""

Id = Annotated[int, Field(ge=1, le=MAX_ID, description=f"1 to {MAX_ID}.")]
"""A record id or a version number."""

AliasName = Annotated[str, Field(pattern=ALIAS_PATTERN, description=f"An alias name: {ALIAS_RULE}.")]
"""The name of an alias to move (the registry refuses any other name too)."""
