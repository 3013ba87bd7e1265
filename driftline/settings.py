"""Every settings model of Driftline together (only driftline/ may import them all): the ``DRIFTLINE_*``
variables they read, so that one none of them reads is warned about (pydantic-settings ignores it)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic_settings import BaseSettings

from common.settings_env import known_names, unknown_names, warn_unknown
from registry.settings import Settings
from service.settings import ServeSettings


def settings_models() -> tuple[type[BaseSettings], ...]:
    from monitor.settings import MonitorSettings  # scipy and pandas: imported when asked for only

    return (Settings, ServeSettings, MonitorSettings)


def warn_unknown_settings(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Warn, once per process, about each ``DRIFTLINE_*`` variable of ``environ`` (``os.environ``) that
    no setting reads, naming the closest one that does; returns them."""
    env = os.environ if environ is None else environ
    if not unknown_names(env, known_names((Settings, ServeSettings))):
        return {}  # decided without importing the monitor: most environments set none of its names
    return warn_unknown(env, known_names(settings_models()))
