"""Driftline's own Prometheus metrics, added to BentoML's at ``/metrics``.

Created on first use, inside the serving worker: BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` after the
service module is imported, and ``prometheus_client`` must see it when it first loads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServiceMetrics:
    model_version: Any
    swaps: Any
    refused_versions: Any
    log_depth: Any
    log_capacity: Any
    log_dropped: Any
    log_written: Any
    log_write_errors: Any
    texts_truncated: Any
    requests_shed: Any
    requests_abandoned: Any
    texts_computed: Any
    runtime: Any
    onnx_fallbacks: Any
    estimated_accuracy: Any
    estimates_disagree: Any


@functools.cache
def get_metrics() -> ServiceMetrics:
    from prometheus_client import Counter, Gauge

    return ServiceMetrics(
        **_model_metrics(Counter, Gauge), **_log_metrics(Counter, Gauge), **_request_metrics(Counter)
    )


def _model_metrics(counter: type, gauge: type) -> dict[str, Any]:
    """What serves: the champion's version and runtime, swaps, refusals, its accuracy estimates."""
    return dict(
        model_version=gauge(
            "driftline_model_version",
            "Registry version of the model now serving",
            ["model"],
            multiprocess_mode="livemax",
        ),
        swaps=counter("driftline_model_swaps", "Hot swaps to a new champion"),
        refused_versions=counter("driftline_model_refused", "New champions refused (checksum or load error)"),
        runtime=gauge(
            "driftline_model_runtime",
            "1 for the runtime serving the champion (torch, onnx or onnx-int8), 0 for the others",
            ["model", "runtime"],
            multiprocess_mode="livemax",
        ),
        onnx_fallbacks=counter(
            "driftline_onnx_fallbacks",
            "Versions served on PyTorch because their ONNX graph was missing, unverified or differed here",
        ),
        estimated_accuracy=gauge(
            "driftline_estimated_accuracy",
            "The latest drift check's label-free estimate of the champion's accuracy on its window "
            "(method: expected_accuracy or atc; bound: estimate, low or high of its interval)",
            ["model", "version", "method", "bound"],
            multiprocess_mode="livemax",
        ),
        estimates_disagree=gauge(
            "driftline_accuracy_estimates_disagree",
            "1 when the latest drift check's two accuracy estimates disagree (calibration broke), else 0",
            ["model", "version"],
            multiprocess_mode="livemax",
        ),
    )


def _log_metrics(counter: type, gauge: type) -> dict[str, Any]:
    """The prediction log: rows held in memory, written, dropped, failed writes."""
    return dict(
        log_depth=gauge(
            "driftline_prediction_log_queue_depth",
            "Prediction-log rows in memory, not yet durable (waiting or being written): what a crash loses",
            multiprocess_mode="livesum",
        ),
        log_capacity=gauge(
            "driftline_prediction_log_queue_capacity",
            "Most prediction-log rows held in memory (DRIFTLINE_LOG_QUEUE_SIZE per worker); more are dropped",
            multiprocess_mode="livesum",
        ),
        log_dropped=counter(
            "driftline_prediction_log_dropped",
            "Prediction-log rows dropped, by reason: buffer_full, refused (by the database), shutdown",
            ["reason"],
        ),
        log_written=counter("driftline_prediction_log_written", "Prediction-log rows written"),
        log_write_errors=counter("driftline_prediction_log_write_errors", "Failed prediction-log writes"),
    )


def _request_metrics(counter: type) -> dict[str, Any]:
    """Predictions: texts computed and truncated, requests shed and abandoned."""
    return dict(
        texts_truncated=counter(
            "driftline_texts_truncated",
            "Texts longer than the model's max_length tokens: the model read their head",
        ),
        requests_shed=counter(
            "driftline_requests_shed",
            "Predictions refused 503 with Retry-After: the wait for the model was over DRIFTLINE_MAX_QUEUE_WAIT_MS",
        ),
        requests_abandoned=counter(
            "driftline_requests_abandoned",
            "Predictions whose client went away before their batch started: not computed, not logged",
        ),
        texts_computed=counter("driftline_texts_computed", "Texts the model has run on (batched)"),
    )
