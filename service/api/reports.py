"""Report files (drift reports, promotion reports) that records link to, served from the artifact store.

Only files inside ``<artifact root>/reports/`` are served: on a local filesystem a path with a symlink in
it, or whose real path lies elsewhere, is answered like a missing file (other fsspec stores have no
symlinks).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath

from fastapi import APIRouter
from fastapi.responses import Response

from registry.errors import InvalidInputError, NotFoundError
from service.api.deps import ArtifactsDep
from service.api.responses import EVERY_ROUTE, responses

router = APIRouter(prefix="/reports", tags=["reports"], responses=EVERY_ROUTE)

REPORTS_PREFIX = "reports"
LOCAL_PROTOCOLS = frozenset({"file", "local"})
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
    fs = artifacts.fs  # type: ignore[attr-defined]
    base = artifacts._base  # type: ignore[attr-defined]
    full = f"{base}/{REPORTS_PREFIX}/{'/'.join(parts)}"
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    local = bool(protocols & LOCAL_PROTOCOLS)
    if (local and not _inside_local_reports(Path(base, REPORTS_PREFIX), parts)) or not fs.isfile(full):
        raise NotFoundError(f"report '{path}' does not exist", field="path")
    media = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    with fs.open(full, "rb") as fh:
        return Response(fh.read(), media_type=media)


def _inside_local_reports(folder: Path, parts: tuple[str, ...]) -> bool:
    """Whether ``folder/parts`` has no symlink among its components under ``folder`` and its real path
    lies inside the real ``folder`` (which may itself be reached through a symlink)."""
    path = folder
    for part in parts:
        path = path / part
        if path.is_symlink():
            return False
    return path.resolve().is_relative_to(folder.resolve())
