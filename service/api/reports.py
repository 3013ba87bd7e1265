"""Report files (drift reports, promotion reports) that records link to, served from the artifact store.

Only plain relative paths are asked for, and only files inside ``<artifact root>/reports/`` are served
(``ArtifactStore.read_report``: on a local filesystem a path with a symlink in it, or whose real path lies
elsewhere, is answered like a missing file).
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

from fastapi import APIRouter
from fastapi.responses import Response

from registry.errors import InvalidInputError
from service.api.deps import ArtifactsDep
from service.api.responses import EVERY_ROUTE, responses

router = APIRouter(prefix="/reports", tags=["reports"], responses=EVERY_ROUTE)

MAX_PART_BYTES = 255  # a file name, on every common filesystem
MAX_PATH_CHARS = 1024
REPORT_TYPES = ("text/html", "application/json", "image/png", "image/svg+xml", "application/octet-stream")


@router.get(
    "/{path:path}",
    response_class=Response,
    responses={
        200: {"description": "The file, with its type.", "content": {media: {} for media in REPORT_TYPES}},
        **responses(404, 422),
    },
)
def get_report(path: str, artifacts: ArtifactsDep) -> Response:
    """A file under ``<artifact root>/reports/``, e.g. ``/api/reports/drift/12/report.html``."""
    parts = PurePosixPath(path).parts
    if (
        not parts
        or len(path) > MAX_PATH_CHARS
        or any(ord(c) < 32 for c in path)
        or any(p in ("..", ".") or p.startswith("/") for p in parts)
        or any(len(p.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES for p in parts)
    ):
        raise InvalidInputError(
            f"report path {path[:100]!r} is not a plain relative path (no control characters, parts of at "
            f"most {MAX_PART_BYTES} bytes, at most {MAX_PATH_CHARS} characters)",
            field="path",
        )
    body = artifacts.read_report(path)
    media = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    return Response(body, media_type=media)
