"""The OpenAPI document at ``/docs.json``, with every status ``/predict`` and ``/feedback`` answer.

BentoML generates the document from the API signatures and lists the same three errors for every API
(400, 404, 500, with bodies of its own), with no way to declare others. These two answer their own
errors, all with the control API's error body (:class:`service.api.responses.ErrorBody`): 400 for a
body that is not JSON or not of the request schema (:func:`service.validation.input_problem`), 413 and 415 from the
middlewares, 422 for the limits, 503 when no model serves or the queue is full, 401/403/404 on
``/feedback``; and BentoML's server itself answers 429 (too many requests in flight), 500 and 504
(timeout) with its ``{"error": "..."}``. :class:`DocumentedErrors` answers ``GET /docs.json`` with
BentoML's document whose ``responses`` of these two operations are replaced by :data:`API_ERRORS`;
everything else in it is BentoML's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import Response

from service.api.responses import ErrorBody

DOC_PATH = "/docs.json"
REF = "#/components/schemas/{model}"
SERVER_ERROR_SCHEMA = "BentoMLErrorBody"
_ERROR = {"application/json": {"schema": {"$ref": REF.format(model=ErrorBody.__name__)}}}
_SERVER_ERROR = {"application/json": {"schema": {"$ref": REF.format(model=SERVER_ERROR_SCHEMA)}}}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds after which the work queued now is done (with an overload 503 only)",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_COMMON: dict[int, dict[str, Any]] = {
    400: {"description": "The body is not JSON, or not of the request schema: the message names the field."},
    413: {"description": "The body is over DRIFTLINE_MAX_BODY_BYTES: refused unread."},
    415: {"description": "Content-Type is not application/json."},
    422: {"description": "A value is over a limit or empty: the message names the field and the limit."},
    429: {"description": "More requests in flight than BentoML's max_concurrency.", "content": _SERVER_ERROR},
    500: {"description": "A server error (its traceback is in the server log).", "content": _SERVER_ERROR},
    504: {"description": "Not answered within BentoML's traffic timeout.", "content": _SERVER_ERROR},
}
API_ERRORS: dict[str, dict[int, dict[str, Any]]] = {
    "/predict": {
        **_COMMON,
        503: {
            "description": "No model is serving yet, or the service is overloaded: the wait for the model "
            "would pass DRIFTLINE_MAX_QUEUE_WAIT_MS (then with Retry-After).",
            "headers": _RETRY_AFTER,
        },
    },
    "/feedback": {
        **_COMMON,
        401: {"description": "No bearer token, or a wrong one (unless DRIFTLINE_OPEN_FEEDBACK=true)."},
        403: {"description": "The token's role is below labeler."},
        404: {"description": "A prediction_id is unknown: the message names it."},
        503: {"description": "The database is unavailable or busy: try again later."},
    },
}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (BentoML's, as JSON data: status keys are strings) with the responses of
    :data:`API_ERRORS` and their schemas."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template=REF)
    for name, schema in body.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault(ErrorBody.__name__, body)
    schemas[SERVER_ERROR_SCHEMA] = {
        "type": "object",
        "title": SERVER_ERROR_SCHEMA,
        "description": "BentoML's own error answer.",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    }
    for path, errors in API_ERRORS.items():
        operation = document["paths"][path]["post"]
        operation["responses"] = {
            "200": operation["responses"]["200"],
            **{str(status): {"content": _ERROR, **entry} for status, entry in sorted(errors.items())},
        }
    return document


class DocumentedErrors:
    """ASGI middleware: ``GET /docs.json`` answers :func:`complete` of ``spec()``, built once."""

    def __init__(self, app: Any, *, spec: Callable[[], Mapping[str, Any]]) -> None:
        self.app = app
        self._spec = spec

    @functools.cached_property
    def _document(self) -> bytes:
        as_json = json.loads(json.dumps(self._spec()))  # BentoML's status keys are ints
        return json.dumps(complete(as_json)).encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == DOC_PATH and scope["method"] in ("GET", "HEAD"):
            await Response(self._document, media_type="application/json")(scope, receive, send)
            return
        await self.app(scope, receive, send)
