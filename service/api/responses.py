"""What the control API answers besides success, for the OpenAPI document (FastAPI's ``responses=``).

Every error the API raises on purpose is a :class:`registry.errors.DriftlineError` and answers its
``to_dict()``: :class:`ErrorBody`. A request that does not match its schema is answered by FastAPI
itself, with a different body (:class:`ValidationErrorBody`); a 422 is either one, since the registry
also refuses values with 422 (an alias name, a number out of the database's range).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from registry.errors import ErrorCode


class ErrorBody(BaseModel):
    """``{"error": CODE, "message": "...", "details": {...}}`` (``details`` only when there are some)."""

    error: ErrorCode = Field(description="A stable code; the HTTP status follows from it.")
    message: str = Field(
        description="What is wrong, naming the thing: \"model 'sentiment' has no version 7\"."
    )
    details: dict[str, Any] = Field(
        default_factory=dict, description="More about the error, e.g. the field it is about."
    )


class ValidationIssue(BaseModel):
    """One way the request does not match its schema."""

    loc: list[str | int] = Field(description="Where: ['path', 'run_id'], ['body', 'version'], ...")
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] = Field(default_factory=dict)


class ValidationErrorBody(BaseModel):
    """FastAPI's answer to a request that does not match its schema."""

    detail: list[ValidationIssue]


ERRORS: dict[int, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "The body cannot be read as JSON text (e.g. it is not UTF-8).",
    },
    401: {
        "model": ErrorBody,
        "description": "No bearer token, an unknown or a revoked one (writes; reads too where they are closed).",
    },
    403: {
        "model": ErrorBody,
        "description": "The token's role is too low for this: the message names the role it needs.",
    },
    404: {
        "model": ErrorBody,
        "description": "No such model, version, alias, record or report: the message names it.",
    },
    413: {
        "model": ErrorBody,
        "description": "The body is over DRIFTLINE_MAX_BODY_BYTES; it was not read.",
    },
    409: {
        "model": ErrorBody,
        "description": "It conflicts with the current state: the message says with what.",
    },
    422: {
        "model": ValidationErrorBody | ErrorBody,
        "description": "The request does not match its schema (FastAPI's body, with `detail`), or the "
        "registry refused a value (the error body).",
    },
    503: {
        "model": ErrorBody,
        "description": "The database is unavailable, busy or below the required schema: try again later.",
    },
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries documenting ``statuses``, each with its body."""
    return {status: ERRORS[status] for status in statuses}


EVERY_ROUTE = responses(401, 403, 503)
"""What any route may answer: auth (writes, and reads where they are closed) and the database."""

WRITE = responses(400, 404, 409, 413, 422)
"""What a write answers besides :data:`EVERY_ROUTE`: an unreadable or too large body, a missing record, a
conflict, a value refused."""
