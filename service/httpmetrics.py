"""BentoML's HTTP metrics, labelled by route instead of by the raw request path.

BentoML's traffic-metrics middleware labels every series with ``scope["path"]`` as the client sent it, so
each distinct unknown path (``/wp-admin``, ``/x1``, ``/x2``, ...) and each id in a control-API path
(``/api/runs/17``) adds a histogram's worth of series that never goes away: 3,000 unknown paths grew
``/metrics`` from 16.8 KB to 11.6 MB. BentoML has no setting for that label, and the middlewares a
service adds run inside its own, after the path was read. So the service turns BentoML's HTTP metrics
off (``@bentoml.service(metrics={"enabled": False})``, which also drops BentoML's ``/metrics`` route),
and :class:`RouteMetrics`, its first middleware, runs BentoML's same middleware class (same metric
names, labels and buckets) on a copy of the request whose path is its route, and answers ``/metrics``
as BentoML did:

- a path of the service's OpenAPI document (its APIs, BentoML's probes, the control API's routes) is
  labelled by its template there (``/predict``, ``/readyz``, ``/api/runs/{run_id}``), and so are
  BentoML's other routes (``/docs.json``) and a mounted app's own (``/api/docs``);
- any other path under a mounted app is ``<mount>/{unknown}`` (a report in a sub-folder too: the
  document's ``/api/reports/{path}`` matches one segment), and anything else ``/{unknown}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send

UNKNOWN = "/{unknown}"
# BentoML's own routes on the main service (see _bentoml_impl.server.app.ServiceAppFactory)
BENTOML_ROUTES = frozenset({"/", "/docs.json", "/schema.json", "/livez", "/healthz", "/readyz", "/metrics"})
BENTOML_MOUNTS = ("/static_content", "/assets")  # its static files
# what BentoML's middleware leaves out of its last-request timestamp (its access-log default)
SKIP_PATHS = ("/metrics", "/healthz", "/livez", "/readyz")
_REAL_PATH = "driftline.path"  # where the copy of the scope keeps the path the request really has


class RouteMetrics:
    """ASGI middleware: BentoML's HTTP metrics with a bounded ``endpoint`` label, and ``GET /metrics``.

    ``spec()``: the service's OpenAPI document (its paths are the labels); ``mounts``: the apps mounted
    under the service, by prefix."""

    def __init__(self, app: Any, *, spec: Callable[[], Mapping[str, Any]], mounts: Mapping[str, Any]) -> None:
        self.app = app
        templates = [*spec()["paths"]]
        for prefix, mounted in mounts.items():  # routes a mounted app leaves out of its document
            templates += [prefix + r.path for r in getattr(mounted, "routes", ()) if hasattr(r, "path_regex")]
        self.known = BENTOML_ROUTES | {t for t in templates if "{" not in t}
        self.templates: list[tuple[re.Pattern[str], str]] = [
            (compile_path(t)[0], t) for t in templates if "{" in t
        ]
        self.prefixes = (*mounts, *BENTOML_MOUNTS)
        namespace = BentoMLContainer.api_server_config.metrics.namespace.get()
        self.metrics = RunnerTrafficMetricsMiddleware(
            self._restore, namespace=namespace, skip_paths=SKIP_PATHS
        )

    def label(self, path: str) -> str:
        """The ``endpoint`` label of a request to ``path``: one of a bounded set."""
        if path in self.known:
            return path
        for regex, template in self.templates:
            if regex.match(path):
                return template
        for prefix in self.prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix + UNKNOWN
        return UNKNOWN

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/metrics" and scope["method"] in ("GET", "HEAD"):
            client = BentoMLContainer.metrics_client.get()
            content = await anyio.to_thread.run_sync(client.generate_latest)
            await Response(content, media_type=client.CONTENT_TYPE_LATEST)(scope, receive, send)
            return
        await self.metrics({**scope, "path": self.label(path), _REAL_PATH: path}, receive, send)

    async def _restore(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, "path": scope[_REAL_PATH]}, receive, send)
