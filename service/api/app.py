"""The control API app: one router per resource; Driftline's errors and the framework's own (an unreadable
body, a path no route matches) answer one error body (``service.api.responses.ErrorBody``)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from registry.errors import DriftlineError, ErrorCode, error_body
from service.api import checks, labelqueue, models, records, reports, runs
from service.api.deps import Backends, backends_lifespan, open_backends, require_open_reads_or_reader


async def _driftline_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DriftlineError)
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


# The framework's own errors, by status (anything else a client causes is INVALID_INPUT)
FRAMEWORK_CODES = {401: ErrorCode.UNAUTHENTICATED, 403: ErrorCode.PERMISSION_DENIED, 404: ErrorCode.NOT_FOUND}


async def _framework_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI and Starlette raise ``HTTPException`` for a body that is not JSON text (400) and a path no
    route matches (404, e.g. a newline in a path parameter): the same body as every other error."""
    assert isinstance(exc, HTTPException)
    code = FRAMEWORK_CODES.get(
        exc.status_code, ErrorCode.INVALID_INPUT if exc.status_code < 500 else ErrorCode.INTERNAL
    )
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = "no route matches this method and path"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def create_control_app(backends: Callable[[], Backends] = open_backends) -> FastAPI:
    """The control API, serving the registry and artifact store ``backends`` gives at startup."""
    app = FastAPI(
        title="Driftline control API",
        summary="Models, aliases, audit log, drift checks (and requests for one), retraining runs and promotion "
        "decisions.",
        version="1",
        lifespan=backends_lifespan(backends),
    )
    app.add_exception_handler(DriftlineError, _driftline_error)
    app.add_exception_handler(HTTPException, _framework_error)
    routers = (
        models.router,
        runs.router,
        checks.router,
        records.checks,
        records.decisions,
        reports.router,
        labelqueue.router,
    )
    for router in routers:
        # reads are open unless DRIFTLINE_OPEN_READS=false; writes check their role on each route
        app.include_router(router, dependencies=[Depends(require_open_reads_or_reader)])
    return app
