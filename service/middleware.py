"""The ASGI middleware in front of the service's APIs: each refuses a request before the handler sees it,
with the error body and one log line at most, never a traceback.

- :class:`JSONOnly`: ``/predict`` and ``/feedback`` refuse a content type other than JSON with 415.
- :class:`ApiPathGuard`: an ``/api`` path with a control character in it gets the API's 404 body.
- :class:`ShedEarly`: while the model is overloaded, ``/predict`` is refused 503 with ``Retry-After``.
- :class:`BodyGuard`: a body over ``DRIFTLINE_MAX_BODY_BYTES`` is refused 413, one that is not JSON of
  the API's input model 400.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import bentoml
from pydantic import BaseModel
from starlette.responses import JSONResponse

from registry.errors import ErrorCode, error_body
from service.batching import Overloaded
from service.settings import get_serve_settings
from service.validation import input_problem, repair_lone_surrogates

logger = logging.getLogger(__name__)


class JSONOnly:
    """ASGI middleware: the JSON APIs refuse other content types with 415 instead of guessing."""

    PATHS = ("/predict", "/feedback")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.PATHS:
            headers = dict(scope.get("headers") or [])
            media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if media != b"application/json":
                shown = media.decode("latin-1") or "none"
                body = error_body(
                    ErrorCode.INVALID_INPUT,
                    f"Content-Type must be application/json, got {shown}",
                    {"field": "Content-Type"},
                )
                await JSONResponse(body, status_code=415)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ApiPathGuard:
    """ASGI middleware: BentoML mounts the control API with the route ``^/api/(?P<path>.*)$``, whose ``.``
    stops at a line break, so an ``/api`` path with a control character in it (``%0A`` in a parameter)
    matched nothing and got BentoML's text/plain 404: it gets the API's error body instead."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/api/") and any(ord(c) < 32 for c in path):
            body = error_body(ErrorCode.NOT_FOUND, "no route matches a path with control characters")
            await JSONResponse(body, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class ShedEarly:
    """ASGI middleware: while a prediction sent now would wait over ``DRIFTLINE_MAX_QUEUE_WAIT_MS`` for the
    model (the batcher's estimate), ``POST /predict`` is answered 503 with ``Retry-After`` before its body
    is read or parsed: under overload most requests are refused, and a refusal here costs the CPU the
    model needs about half what it costs in the handler (docs/results.md, "Overload and soak"). Those
    that pass here and find the queue full in the handler get the same answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/predict":
            try:
                bentoml.get_current_service().batcher.admit()
            except Overloaded as exc:
                headers = {"Retry-After": str(exc.retry_after_s)}
                await JSONResponse(overloaded_body(exc), status_code=503, headers=headers)(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


class BodyGuard:
    """ASGI middleware: a request body over ``DRIFTLINE_MAX_BODY_BYTES`` is answered 413 before any of
    it is parsed: at once when ``Content-Length`` says so, else as soon as the bytes read pass it. The
    JSON APIs' bodies get their lone surrogate escapes repaired (``repair_lone_surrogates``), then are
    checked against ``inputs[path]`` (BentoML's input model of the API at that path): a body that is not
    JSON or not of that schema is answered 400 with the error body naming the field, and one log line.
    BentoML would answer it 400 too, with a body unlike its documented one and a 2 KB traceback logged
    at ERROR per request."""

    def __init__(self, app: Any, *, inputs: Mapping[str, type[BaseModel]]) -> None:
        self.app = app
        self.inputs = inputs

    @staticmethod
    def _too_large(limit: int) -> JSONResponse:
        return JSONResponse(
            error_body(
                ErrorCode.INVALID_INPUT,
                f"request body is over the limit of {limit} bytes (DRIFTLINE_MAX_BODY_BYTES)",
                {"field": "body", "limit": limit},
            ),
            status_code=413,
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = get_serve_settings().max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(limit)(scope, receive, send)
            return
        # Read the body here (bounded), then hand it on: a chunked body gets the same limit.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > limit:
                await self._too_large(limit)(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if scope["path"] in JSONOnly.PATHS:
            body = repair_lone_surrogates(body)
        model = self.inputs.get(scope["path"]) if scope["method"] == "POST" else None
        problem = input_problem(model, body) if model is not None else None
        if problem is not None:
            refusal = problem.body()
            logger.info("%s %s refused with 400: %.200s", scope["method"], scope["path"], refusal["message"])
            await JSONResponse(refusal, status_code=400)(scope, receive, send)
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def overloaded_body(exc: Overloaded) -> dict[str, Any]:
    """The 503 body of a prediction refused because the wait for the model is over the limit."""
    return error_body(
        ErrorCode.UNAVAILABLE,
        f"the service is overloaded: {exc} (DRIFTLINE_MAX_QUEUE_WAIT_MS); retry after {exc.retry_after_s} s",
        {
            "expected_wait_ms": round(exc.expected_wait_s * 1000),
            "limit_ms": round(exc.limit_s * 1000),
            "retry_after_s": exc.retry_after_s,
        },
    )
