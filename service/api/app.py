"""The control API app: one router per resource, one exception handler for Driftline errors."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from registry.errors import DriftlineError
from service.api import checks, models, records, reports, runs
from service.api.deps import require_open_reads_or_reader


async def _driftline_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DriftlineError)
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


def create_control_app() -> FastAPI:
    app = FastAPI(
        title="Driftline control API",
        summary="Models, aliases, audit log, drift checks (and requests for one), retraining runs and promotion "
        "decisions.",
        version="1",
    )
    app.add_exception_handler(DriftlineError, _driftline_error)
    routers = (models.router, runs.router, checks.router, records.checks, records.decisions, reports.router)
    for router in routers:
        # reads are open unless DRIFTLINE_OPEN_READS=false; writes check their role on each route
        app.include_router(router, dependencies=[Depends(require_open_reads_or_reader)])
    return app
