"""The BentoML service: ``bentoml serve service.app:Driftline``.

``POST /predict`` answers through the adaptive micro-batcher (one forward pass per batch, tokenized per
batch), logs every prediction off the request path, and names the model version in the body and in
the ``X-Driftline-Model-Version`` header. ``POST /feedback`` attaches labels. The champion is followed
and hot-swapped by a watcher thread. The control API is mounted at ``/api`` (OpenAPI docs at
``/api/docs``), the review console at ``/ui`` (``service/console``). ``/readyz`` is false until a champion is loaded and warmed.

Overload: while a new prediction would wait over ``DRIFTLINE_MAX_QUEUE_WAIT_MS`` for the model,
``/predict`` answers 503 with ``Retry-After`` at once; a prediction whose client has gone leaves the
queue and costs no forward pass and no log row. Bad input is a 4xx with the error body, never a
traceback in the log (the middleware in front: ``service/middleware.py``); ``/metrics`` labels requests by route (``service/httpmetrics.py``) and
``/docs.json`` lists every status ``/predict`` and ``/feedback`` answer (``service/openapi.py``).

Why not ``@bentoml.api(batchable=True)``: a batchable API answers each request with a bare slice of a
list and runs in the batch's context, so it cannot set a per-request header or refuse one bad request
without failing the batch it shares. The micro-batcher here batches the same way (bounded batch
size, bounded wait) while each request keeps its own validation, response and header.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any, cast

import bentoml
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.filemodes import secure_home
from common.texts import clean_text, text_hash
from registry.artifacts import artifact_store
from registry.entities import CHAMPION, ModelVersion, NewLabel, NewPrediction, Role
from registry.errors import DriftlineError, ErrorCode, NotFoundError, error_body
from registry.settings import get_settings
from registry.store import Registry
from runtime.modelio import load_version
from service.api.app import create_control_app
from service.api.deps import Backends, authorize_header
from service.batching import Abandoned, MicroBatcher, Overloaded
from service.console.app import create_console_app
from service.httpmetrics import RouteMetrics
from service.middleware import ApiPathGuard, BodyGuard, JSONOnly, ShedEarly, overloaded_body
from service.openapi import DocumentedErrors
from service.predlog import DROP_REASONS, PredictionLog, minted_within, new_prediction_id
from service.runtime import RUNTIMES, BatchOutput, ModelHolder, OnnxRefused, OnnxServingModel, ServingModel
from service.settings import get_serve_settings, threads_per_worker
from service.swap import ChampionWatcher
from service.validation import Problem, check_feedback, check_texts

logger = logging.getLogger(__name__)

VERSION_HEADER = "X-Driftline-Model-Version"
CLIENT_GONE = 499  # the status recorded for a request whose client went away (nginx's "client closed")
FREEZE_AFTER_REQUESTS = 100
ESTIMATES_EVERY_S = 15.0  # how often /metrics reads the latest drift check's accuracy estimates
CROSS_REPLICA_WAIT_S = 3.0  # the longest /feedback waits for ids another replica may not have written yet


def _serving_backends() -> Backends:
    """The serving instance's registry and artifact store, shared by the control API and the console:
    BentoML starts its mounted apps once it has made the instance."""
    service = bentoml.get_current_service()
    return service.registry, service.artifacts


control_app = create_control_app(_serving_backends)
console_app = create_console_app(_serving_backends)


class TextPrediction(BaseModel):
    prediction_id: str
    label: str
    scores: dict[str, float]


class PredictResponse(BaseModel):
    model: str
    model_version: int
    predictions: list[TextPrediction]


class FeedbackItem(BaseModel):
    prediction_id: str | None = Field(default=None, max_length=64)
    text: str | None = None
    label: str = Field(max_length=200)
    domain: str | None = Field(default=None, max_length=200)


class FeedbackResponse(BaseModel):
    accepted: int
    label_ids: list[int]


def _freeze_heap() -> None:
    """Move every object alive now (modules, the model, what the first requests built) out of the
    garbage collector's full passes: with a heap this size a full pass stalls the service for 100+ ms."""
    gc.collect()
    gc.freeze()


async def _disconnected(request: Request) -> None:
    """Returns once the client of ``request``, whose body has been read, has gone away (the ASGI
    server does not cancel the handler then: it only answers ``receive()`` with ``http.disconnect``)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _reply(ctx: bentoml.Context, status: int, body: dict[str, Any]) -> JSONResponse:
    ctx.response.status_code = status  # BentoML copies this onto the response it sends
    return JSONResponse(body, status_code=status)


@bentoml.service(
    name="driftline",
    workers=1,
    traffic={"timeout": 60, "max_concurrency": 1024},
    # Every prediction is already recorded in the prediction log, with its latency; a second,
    # per-request access-log line costs CPU the model needs.
    logging={"access": {"enabled": False}},
    # BentoML's HTTP metrics label series by the raw path (unbounded): RouteMetrics records the same
    # metrics by route and serves /metrics instead (service/httpmetrics.py).
    metrics={"enabled": False},
)
@bentoml.asgi_app(control_app, path="/api")
@bentoml.asgi_app(console_app, path="/ui")
class Driftline:
    def __init__(self) -> None:
        import torch

        self.settings = get_settings()
        secure_home(self.settings)  # files 0600, folders 0700, also when `bentoml serve` starts this alone
        self.serve = get_serve_settings()
        torch.set_num_threads(threads_per_worker(self.serve))
        self.registry = Registry.open(self.settings)
        self.artifacts = artifact_store(self.settings)
        self.model_name = self.settings.model_name
        self.holder = ModelHolder()
        self.log = PredictionLog(
            self.registry.add_predictions,
            capacity=self.serve.log_queue_size,
            batch_size=self.serve.log_batch_size,
            flush_interval_s=self.serve.log_flush_interval_s,
        )
        self.batcher: MicroBatcher[BatchOutput] = MicroBatcher(
            self._run_batch,
            max_batch_size=self.serve.max_batch_size,
            max_latency_ms=self.serve.max_latency_ms,
            workers=self.serve.inference_workers,
            max_wait_ms=self.serve.max_queue_wait_ms,
        )
        self.watcher = ChampionWatcher(
            self.holder, self._resolve_champion, self._load, interval_s=self.serve.poll_interval_s
        )
        self._stop = threading.Event()
        self._requests = 0
        self._truncated = 0
        self._onnx_fallbacks = 0
        self._estimates_read = -ESTIMATES_EVERY_S  # monotonic time the latest check was last read
        self._metrics_thread = threading.Thread(
            target=self._export_metrics, name="driftline-metrics", daemon=True
        )
        self.watcher.start()
        self._metrics_thread.start()
        logger.info("serving model '%s' from %s", self.model_name, self.settings.database_url.split("@")[-1])

    # --- lifecycle ------------------------------------------------------------------------------

    def __is_ready__(self) -> bool:
        return self.holder.current is not None

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self._stop.set()
        self.watcher.stop()
        self.batcher.close()
        self.log.close(timeout=10.0)
        self._write_metrics()

    def _resolve_champion(self) -> ModelVersion | None:
        try:
            return self.registry.get_version_by_alias(self.model_name, CHAMPION)
        except NotFoundError:
            return None

    def _load(self, version: ModelVersion) -> ServingModel:
        """The version on the runtime ``DRIFTLINE_RUNTIME`` picks; on PyTorch whenever its ONNX graph is
        missing, unverified or computes differently here (logged, and counted in ``/metrics``)."""
        loaded = load_version(self.artifacts, version, device=self.serve.device)
        if self.serve.runtime != "torch" and self.serve.device == "cpu":
            try:
                return OnnxServingModel(
                    loaded,
                    version,
                    threads=threads_per_worker(self.serve),
                    int8=self.serve.runtime == "int8",
                )
            except OnnxRefused as exc:
                self._onnx_fallbacks += 1
                log = logger.warning if self.serve.runtime == "auto" else logger.error
                log(
                    "%s v%s serves on PyTorch, not ONNX Runtime: %s", version.model_name, version.version, exc
                )
            except Exception as exc:  # noqa: BLE001 - ONNX is an optimisation: PyTorch always serves
                self._onnx_fallbacks += 1
                logger.warning(
                    "%s v%s serves on PyTorch: ONNX Runtime failed: %s",
                    version.model_name,
                    version.version,
                    exc,
                )
        return ServingModel(loaded, version, trace=self.serve.torchscript)

    def _run_batch(self, texts: list[str]) -> BatchOutput:
        model = self.holder.current
        if model is None:
            raise DriftlineError("no champion is loaded")
        return model.predict(
            texts, embeddings=self.serve.log_predictions and self.serve.embedding_sample_rate > 0
        )

    def _export_metrics(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._write_metrics()
            except Exception:  # metrics must never take the service down
                logger.exception("metrics export failed")

    def _write_metrics(self) -> None:
        from service.metrics import get_metrics

        m = get_metrics()
        current = self.holder.current
        if current is not None:
            m.model_version.labels(model=self.model_name).set(current.version.version)
            for runtime in RUNTIMES:
                m.runtime.labels(model=self.model_name, runtime=runtime).set(int(current.runtime == runtime))
        try:
            self._export_estimates(m, current)
        except Exception:  # a registry outage must not stop the other metrics
            logger.warning("accuracy estimates not exported: the registry did not answer", exc_info=True)
        m.log_depth.set(self.log.depth)
        m.log_capacity.set(self.log.capacity)
        dropped = self.log.dropped_by_reason
        for counter, value, attr in (
            (m.swaps, self.holder.swaps, "_swaps"),
            (m.refused_versions, len(self.watcher.refused), "_refused"),
            *((m.log_dropped.labels(reason=r), dropped[r], f"_dropped_{r}") for r in DROP_REASONS),
            (m.log_written, self.log.written, "_written"),
            (m.log_write_errors, self.log.write_errors, "_write_errors"),
            (m.texts_truncated, self._truncated, "_truncated"),
            (m.requests_shed, self.batcher.shed, "_shed"),
            (m.requests_abandoned, self.batcher.abandoned, "_abandoned"),
            (m.texts_computed, self.batcher.texts_computed, "_texts_computed"),
            (m.onnx_fallbacks, self._onnx_fallbacks, "_onnx_fallbacks"),
        ):
            seen = getattr(self, f"_exported{attr}", 0)
            if value > seen:
                counter.inc(value - seen)
                setattr(self, f"_exported{attr}", value)

    def _export_estimates(self, m: Any, current: ServingModel | None) -> None:
        """The champion's latest drift check's accuracy estimates, read every ``ESTIMATES_EVERY_S``."""
        now = time.monotonic()
        if current is None or now - self._estimates_read < ESTIMATES_EVERY_S:
            return
        self._estimates_read = now
        checks = self.registry.list_drift_checks(self.model_name, limit=1)
        if not checks or checks[0].model_version != current.version.version:
            return
        estimates = checks[0].scores.get("accuracy_estimates")
        if not isinstance(estimates, dict):
            return
        version = str(checks[0].model_version)
        for method in ("expected_accuracy", "atc"):
            block = estimates.get(method) or {}
            for bound, key in (("estimate", "value"), ("low", "low"), ("high", "high")):
                value = block.get(key)
                if isinstance(value, int | float):
                    m.estimated_accuracy.labels(
                        model=self.model_name, version=version, method=method, bound=bound
                    ).set(value)
        m.estimates_disagree.labels(model=self.model_name, version=version).set(
            int(bool(estimates.get("disagree")))
        )

    # --- APIs -------------------------------------------------------------------------------------

    # The body documented is PredictResponse's; the handler answers with responses of its own (an error's
    # status, or the body serialized here: this is the service's hottest path).
    @bentoml.api(route="/predict", output_spec=PredictResponse)
    async def predict(self, texts: list[str], ctx: bentoml.Context) -> Response:
        """Classify 1..N texts. Each answer has a label, per-class scores and a prediction id for feedback."""
        problem = check_texts(
            texts, max_texts=self.serve.max_texts_per_request, max_chars=self.serve.max_text_chars
        )
        if problem is not None:
            return _reply(ctx, 422, problem.body())
        # NUL and lone surrogates cleaned: what the model sees is what is logged
        texts = [clean_text(t) for t in texts]
        if self.holder.current is None:
            return _reply(ctx, 503, self._no_champion())
        self._requests += 1
        if self._requests == FREEZE_AFTER_REQUESTS:
            _freeze_heap()
        started = time.perf_counter()
        try:
            out, start = await self.batcher.submit(texts, gone=functools.partial(_disconnected, ctx.request))
        except Overloaded as exc:
            ctx.response.headers["Retry-After"] = str(exc.retry_after_s)
            return _reply(ctx, 503, overloaded_body(exc))
        except Abandoned:  # nobody reads the answer; the metrics count it apart
            ctx.response.status_code = CLIENT_GONE
            return Response(status_code=CLIENT_GONE)
        latency_ms = (time.perf_counter() - started) * 1000.0
        truncated = (
            out.truncated[start : start + len(texts)].tolist()
            if out.truncated is not None
            else [False] * len(texts)
        )
        self._truncated += sum(truncated)
        labels = out.labels
        predictions = [
            {
                "prediction_id": new_prediction_id(),
                "label": labels[int(row.argmax())],
                "scores": dict(zip(labels, row.tolist(), strict=True)),
            }
            for row in out.probs[start : start + len(texts)]
        ]
        if self.serve.log_predictions:
            self._log(texts, predictions, out, start, latency_ms, truncated)
        ctx.response.headers[VERSION_HEADER] = str(out.version.version)
        body = {
            "model": out.version.model_name,
            "model_version": out.version.version,
            "predictions": predictions,
        }
        return Response(json.dumps(body).encode(), media_type="application/json")

    def _log(
        self,
        texts: list[str],
        predictions: list[dict[str, Any]],
        out: BatchOutput,
        start: int,
        latency_ms: float,
        truncated: list[bool],
    ) -> None:
        now = datetime.now(UTC)
        rate = self.serve.embedding_sample_rate
        rows = []
        for i, (text, pred, cut) in enumerate(zip(texts, predictions, truncated, strict=True)):
            embedding = None
            if out.embeddings is not None and (rate >= 1.0 or random.random() < rate):
                embedding = out.embeddings[start + i].tobytes()
            rows.append(
                NewPrediction(
                    id=pred["prediction_id"],
                    created_at=now,
                    text=text,
                    text_hash=text_hash(text),
                    label=pred["label"],
                    scores=pred["scores"],
                    model_name=out.version.model_name,
                    model_version=out.version.version,
                    latency_ms=latency_ms,
                    embedding=embedding,
                    truncated=cut,
                    runtime=out.runtime,
                )
            )
        self.log.offer(rows)

    def _no_champion(self) -> dict[str, Any]:
        reason = self.watcher.last_error or f"model '{self.model_name}' has no champion yet"
        return error_body(
            ErrorCode.UNAVAILABLE,
            f"no model is serving: {reason}; create one with "
            "`driftline bootstrap --data FILE --text-col C --label-col C`",
        )

    @bentoml.api(route="/feedback", output_spec=FeedbackResponse)
    async def feedback(
        self, items: list[FeedbackItem], ctx: bentoml.Context
    ) -> FeedbackResponse | JSONResponse:
        """Labels for earlier predictions (``prediction_id``) or new labeled texts (``text``). All or nothing.

        Needs a bearer token with role labeler or above (labels drive retraining and promotion), unless
        ``DRIFTLINE_OPEN_FEEDBACK=true``; the token's name goes in each label's metadata (``labeled_by``)."""
        labeled_by: dict[str, str] = {}
        if not self.settings.open_feedback:
            header = ctx.request.headers.get("authorization")
            try:
                actor = await asyncio.to_thread(authorize_header, self.registry, header, Role.LABELER)
            except DriftlineError as exc:
                return _reply(ctx, exc.http_status, exc.to_dict())
            labeled_by = {"labeled_by": actor}
        problem: Problem | None = check_feedback(
            items, max_items=self.serve.max_feedback_items, max_chars=self.serve.max_text_chars
        )
        if problem is not None:
            return _reply(ctx, 422, problem.body())
        new = [
            NewLabel(
                label=i.label,
                prediction_id=i.prediction_id,
                text=i.text,
                model_name=self.model_name,
                domain=i.domain,
                source="feedback",
                metadata=dict(labeled_by),
            )
            for i in items
        ]
        try:
            known = await asyncio.to_thread(self._label_set)
            try:
                stored = await asyncio.to_thread(self.registry.add_labels, new, allowed_labels=known)
            except NotFoundError:
                # The ids may still be in the prediction log's buffer: write it out, then try again.
                await asyncio.to_thread(self.log.flush, 5.0)
                try:
                    stored = await asyncio.to_thread(self.registry.add_labels, new, allowed_labels=known)
                except NotFoundError as exc:
                    # ... or in another replica's buffer (behind a load balancer, /predict and /feedback
                    # may reach different replicas): its writer flushes within its interval. Only ids
                    # minted that recently are waited for; an id never issued is answered at once.
                    wait = min(2 * self.serve.log_flush_interval_s + 0.2, CROSS_REPLICA_WAIT_S)
                    if not any(minted_within(str(i), wait) for i in exc.details.get("unknown", [])):
                        raise
                    await asyncio.sleep(wait)
                    stored = await asyncio.to_thread(self.registry.add_labels, new, allowed_labels=known)
        except DriftlineError as exc:
            return _reply(ctx, exc.http_status, exc.to_dict())
        return FeedbackResponse(accepted=len(stored), label_ids=[label.id for label in stored])

    def _label_set(self) -> tuple[str, ...]:
        current = self.holder.current
        if current is not None:
            return current.labels
        return self.registry.get_version_by_alias(self.model_name, CHAMPION).labels


# bentoml.service made the class a bentoml.Service; mypy types a decorated class as the class itself
# (python/mypy#3135)
_service = cast("bentoml.Service[Driftline]", Driftline)


def _openapi_spec() -> dict[str, Any]:
    """BentoML's OpenAPI document of the service (the control API's paths included)."""
    return _service.openapi_spec.asdict()


# In this order, outermost first: the metrics see every answer the others give.
_service.add_asgi_middleware(
    RouteMetrics, spec=_openapi_spec, mounts={path: app for app, path, _ in _service.mount_apps}
)
_service.add_asgi_middleware(ShedEarly)
_service.add_asgi_middleware(ApiPathGuard)
_service.add_asgi_middleware(DocumentedErrors, spec=_openapi_spec)
_service.add_asgi_middleware(JSONOnly)
_service.add_asgi_middleware(BodyGuard, inputs={api.route: api.input_spec for api in _service.apis.values()})
