"""Report files (drift reports, promotion reports) that records link to, served from the artifact store."""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

from fastapi import APIRouter
from fastapi.responses import Response

from registry.errors import InvalidInputError, NotFoundError
from service.api.deps import ArtifactsDep

router = APIRouter(prefix="/reports", tags=["reports"])

REPORTS_PREFIX = "reports"


@router.get("/{path:path}")
def get_report(path: str, artifacts: ArtifactsDep) -> Response:
    """A file under ``<artifact root>/reports/``, e.g. ``/api/reports/drift/12/report.html``."""
    parts = PurePosixPath(path).parts
    if not parts or any(p in ("..", ".") or p.startswith("/") for p in parts):
        raise InvalidInputError(f"report path '{path}' is not a plain relative path", field="path")
    fs = artifacts.fs  # type: ignore[attr-defined]
    full = f"{artifacts._base}/{REPORTS_PREFIX}/{'/'.join(parts)}"  # type: ignore[attr-defined]
    if not fs.isfile(full):
        raise NotFoundError(f"report '{path}' does not exist", field="path")
    media = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    with fs.open(full, "rb") as fh:
        return Response(fh.read(), media_type=media)
