"""Settings from the environment (prefix ``DRIFTLINE_``), resolved once and overridable in tests."""

from __future__ import annotations

import functools
from pathlib import Path

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
