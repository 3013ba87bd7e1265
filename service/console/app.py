"""The console app, mounted by the service at ``/ui``: pages, sign-in sessions, error pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from registry.errors import DriftlineError, ErrorCode
from registry.settings import get_settings
from service.api.deps import Backends, backends_lifespan, get_registry, open_backends
from service.console import auth, pages


class LazySessions:
    """Starlette's signed-cookie sessions, built on the first request: the signing key may live in the
    workspace (``<home>/console.key``), which importing the service must not create."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._sessions: SessionMiddleware | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._sessions is None:
            settings = get_settings()
            self._sessions = SessionMiddleware(
                self.app,
                secret_key=auth.signing_key(settings),
                session_cookie=auth.SESSION_COOKIE,
                max_age=int(settings.console_session_hours * 3600),
                same_site="strict",
                https_only=settings.console_secure_cookie,
            )
        await self._sessions(scope, receive, send)


def _error_page(
    request: Request, status: int, title: str, message: str, field: str | None = None
) -> Response:
    try:
        return pages.page(
            request,
            get_registry(request),
            "error.html.j2",
            status=status,
            title=title,
            message=message,
            field=field,
        )
    except DriftlineError:  # the registry itself is unavailable: the same page, with nobody signed in
        return pages.render_page(request, "error.html.j2", status, title=title, message=message, field=field)


async def _driftline_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DriftlineError)
    if exc.code is ErrorCode.UNAUTHENTICATED and request.method in ("GET", "HEAD"):
        base, path = pages.base_path(request), request.url.path
        path = path[len(base) :] if base and path.startswith(base) else path
        return RedirectResponse(f"{base}/login?next={pages.quote(path)}", status_code=303)
    title = pages.ERROR_TITLES.get(exc.code, "Error")
    return _error_page(request, exc.http_status, title, exc.message, exc.details.get("field"))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    said = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ())[1:]) or 'request'}: {err.get('msg', 'invalid')}"
        for err in exc.errors()
    )
    return _error_page(request, 422, "Invalid input", said)


async def _framework_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "no page here" if exc.status_code == 404 else str(exc.detail)
    return _error_page(request, exc.status_code, "Not found" if exc.status_code == 404 else "Error", message)


def create_console_app(backends: Callable[[], Backends] = open_backends) -> FastAPI:
    """The console, reading the registry and artifact store ``backends`` gives at startup."""
    app = FastAPI(
        title="Driftline console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=backends_lifespan(backends),
    )
    app.add_exception_handler(DriftlineError, _driftline_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _framework_error)
    app.include_router(pages.router)
    app.add_middleware(LazySessions)
    return app
