"""One error type with a code, and one table that maps codes to HTTP statuses.

Messages name the thing that is wrong: ``model 'sentiment' has no version 7``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class ErrorCode(enum.StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CONFLICT = "CONFLICT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAVAILABLE = "UNAVAILABLE"
    SCHEMA_OUT_OF_DATE = "SCHEMA_OUT_OF_DATE"
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    UNSAFE_ARTIFACT = "UNSAFE_ARTIFACT"
    DATABASE_ERROR = "DATABASE_ERROR"
    INTERNAL = "INTERNAL"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_INPUT: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.SCHEMA_OUT_OF_DATE: 503,
    ErrorCode.CHECKSUM_MISMATCH: 500,
    ErrorCode.UNSAFE_ARTIFACT: 500,
    ErrorCode.DATABASE_ERROR: 503,
    ErrorCode.INTERNAL: 500,
}


def error_body(code: ErrorCode, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of every error answer, whoever refuses: ``{"error": CODE, "message": "...",
    "details": {...}}``, with ``details`` only when there are some."""
    body: dict[str, Any] = {"error": code.value, "message": message}
    if details:
        body["details"] = dict(details)
    return body


class DriftlineError(Exception):
    """Base of every error Driftline raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, code: ErrorCode | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


class InvalidInputError(DriftlineError):
    code = ErrorCode.INVALID_INPUT


class NotFoundError(DriftlineError):
    code = ErrorCode.NOT_FOUND


class AlreadyExistsError(DriftlineError):
    code = ErrorCode.ALREADY_EXISTS


class ConflictError(DriftlineError):
    code = ErrorCode.CONFLICT


class SchemaOutOfDateError(DriftlineError):
    code = ErrorCode.SCHEMA_OUT_OF_DATE


class ChecksumMismatchError(DriftlineError):
    code = ErrorCode.CHECKSUM_MISMATCH


class UnsafeArtifactError(DriftlineError):
    code = ErrorCode.UNSAFE_ARTIFACT


class DatabaseError(DriftlineError):
    """The database failed a statement. ``transient``: it was unreachable, busy or locked (try again
    later); otherwise it refused what it was given (the same values will fail again)."""

    code = ErrorCode.DATABASE_ERROR

    def __init__(self, message: str, *, transient: bool = True, **details: Any) -> None:
        super().__init__(message, **details)
        self.transient = transient
