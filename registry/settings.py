"""Settings from the environment (prefix ``DRIFTLINE_``), resolved once and overridable in tests."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where Driftline keeps its records and files.

    Every field can be set as ``DRIFTLINE_<FIELD>`` (``DRIFTLINE_DATABASE_URL``, ...). With nothing
    set, everything lives under ``./.driftline/``: a SQLite file and a local artifact folder.
    """

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_", extra="ignore")

    home: Path = Path(".driftline")
    database_url: str = ""
    artifact_root: str = ""
    cache_dir: Path | None = None
    # the artifact root's fsspec options as a JSON object, e.g. for an S3-compatible store
    # {"key": "...", "secret": "...", "client_kwargs": {"endpoint_url": "http://minio:9000"}}; kept secret
    # (it may hold credentials). Without it, s3fs reads the usual AWS_* variables and files.
    artifact_storage_options: SecretStr | None = None
    model_name: str = "sentiment"
    api_token: SecretStr | None = None  # an admin token (actor 'api-token'); named ones: `driftline tokens`
    # POST /feedback without a token (else it needs a labeler token): an explicit opt-in, off by default
    open_feedback: bool = False
    # GETs of the control API without a token; false: every read needs a reader token or above
    open_reads: bool = True
    # what one token holder may queue through the control API at once, per model: POST /api/runs and
    # POST /api/checks answer 409 past these
    max_pending_manual_runs: int = Field(3, ge=1, description="manual runs queued or running per model")
    max_pending_check_requests: int = Field(3, ge=1, description="drift-check requests pending per model")
    # the review console (/ui): the key that signs its session cookies (else a random one kept in
    # <home>/console.key, 0600: set this where replicas do not share a home), how long a sign-in lasts,
    # and whether the cookie is sent over HTTPS only (set true behind TLS)
    console_secret: SecretStr | None = None
    console_session_hours: float = Field(
        8.0, gt=0, le=24 * 30, description="how long a console sign-in lasts"
    )
    console_secure_cookie: bool = False
    # export each new version's forward pass to ONNX (verified against PyTorch) so it may serve on ONNX
    # Runtime (DRIFTLINE_RUNTIME); false: versions carry no graph and serve on PyTorch
    onnx_export: bool = True
    # also quantize each verified graph to int8 and keep it if its accuracy check passes on the held-out rows
    # (runtime.onnxrt.int8_check): accuracy and macro-F1 within int8_margin of fp32. It serves only
    # where DRIFTLINE_RUNTIME=int8
    onnx_int8: bool = True
    int8_margin: float = Field(
        0.005, ge=0, le=0.2, description="largest accuracy or macro-F1 loss (a fraction) int8 may have"
    )
    # where a training job's recipe search keeps its study (retrain.search): unset, a SQLite file in the
    # job's working folder; an Optuna storage URL (PostgreSQL with a schema of its own, e.g.
    # postgresql://host/db?options=-csearch_path%3Ddriftline_search) lets several worker processes share it.
    # Never the registry's own schema: Optuna keeps its own alembic_version table.
    search_storage: SecretStr | None = None
    # whether training jobs search their recipe when their spec does not say (a run spec's "search", or
    # `driftline bootstrap --search/--no-search`); false: one recipe, as before the search existed
    search: bool = True

    def storage_options(self) -> dict[str, Any]:
        """``DRIFTLINE_ARTIFACT_STORAGE_OPTIONS`` parsed (``{}`` when unset)."""
        if (
            self.artifact_storage_options is None
            or not self.artifact_storage_options.get_secret_value().strip()
        ):
            return {}
        try:
            options = json.loads(self.artifact_storage_options.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"DRIFTLINE_ARTIFACT_STORAGE_OPTIONS is not JSON: {exc}") from None
        if not isinstance(options, dict):
            raise ValueError("DRIFTLINE_ARTIFACT_STORAGE_OPTIONS must be a JSON object of fsspec options")
        return options

    @model_validator(mode="after")
    def _check_storage_options(self) -> Settings:
        self.storage_options()  # a malformed value fails at start-up, naming the setting
        return self

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'driftline.db'}"
        if not self.artifact_root:
            self.artifact_root = str(self.home / "artifacts")
        if self.cache_dir is None:
            self.cache_dir = self.home / "cache"
        return self


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()
