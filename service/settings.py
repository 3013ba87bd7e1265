"""Serving settings (prefix ``DRIFTLINE_``), read once per process."""

from __future__ import annotations

import functools
import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_", extra="ignore")

    # request limits: memory guards, not model limits (the tokenizer cuts each text to the model's
    # max_length tokens, keeping the head); a body over max_body_bytes is answered 413 unread
    max_texts_per_request: int = Field(64, ge=1)
    max_text_chars: int = Field(100_000, ge=1)
    max_feedback_items: int = Field(1000, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # batching: a batch starts as soon as the model is free and takes whatever is waiting, up to
    # max_batch_size texts; when the model is idle it waits at most max_latency_ms for company
    max_batch_size: int = Field(64, ge=1)
    max_latency_ms: float = Field(0.0, ge=0)
    # overload: while others are queued, a request that would wait longer than this for the model (the
    # rest of the batch running and the texts queued, at the recent seconds per text) is answered 503
    # with Retry-After at once instead of queued. An admitted one is answered within about twice this
    # (its wait, then its batch, no larger than the queue). 500 ms is under one full batch of MiniLM-L6
    # on 2 cores: at 4x capacity the answers' p99 stays under 2 s, and most come within a 1 s client
    # timeout; with 1000 ms most came too late for such clients (docs/results.md, "Overload and soak";
    # python -m bench.overload).
    max_queue_wait_ms: float = Field(500.0, gt=0)
    # batches in flight at once, each in its own thread; torch threads per batch = cores // workers
    inference_workers: int = Field(1, ge=1)
    torch_threads: int | None = Field(None, ge=1)
    device: str = "cpu"
    # which runtime serves: "auto" (ONNX Runtime when the version carries a verified graph, else PyTorch),
    # "torch", "onnx" (like auto, but a version without a verified graph is logged as an error), or
    # "int8" (the version's int8 graph where its accuracy check passed, else as auto)
    runtime: Literal["auto", "torch", "onnx", "int8"] = "auto"
    torchscript: bool = True  # trace the forward pass (checked against eager; falls back on any doubt)
    # prediction log: answers are sent before their rows are durable; what a crash can lose is what
    # is in memory then (driftline_prediction_log_queue_depth), never more than log_queue_size rows
    log_predictions: bool = True
    embedding_sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    log_queue_size: int = Field(20_000, ge=1)
    log_batch_size: int = Field(500, ge=1)
    log_flush_interval_s: float = Field(0.5, gt=0)
    # hot swap
    poll_interval_s: float = Field(3.0, gt=0)


def threads_per_worker(settings: ServeSettings) -> int:
    return settings.torch_threads or max(1, _cores() // settings.inference_workers)


@functools.lru_cache(maxsize=1)
def get_serve_settings() -> ServeSettings:
    return ServeSettings()
