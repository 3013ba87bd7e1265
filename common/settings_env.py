"""``DRIFTLINE_*`` variables as the settings models read them: each model's names, an environment built
from field names (a misspelt name or a refused value fails there, where pydantic-settings would ignore
the variable), and a warning, once, for a variable that no model reads.

The models live in their packages (registry, service, monitor); whoever knows all of them passes them in.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

PREFIX = "DRIFTLINE_"
# DRIFTLINE_* variables read outside the settings models: known, never warned about.
OTHER_NAMES = frozenset(
    {
        "DRIFTLINE_TEST_DATABASE_URL",  # the PostgreSQL server of the tests and bench/predlog.py
        "DRIFTLINE_RUN_ID",  # set on a run's Kubernetes pod (orchestration/k8s.py), for whoever reads the pod
        "DRIFTLINE_PORT",  # deploy/compose.yaml: the proxy's published port
        "DRIFTLINE_TRAIN_THREADS",  # deploy/compose.yaml: the scheduler's OMP_NUM_THREADS
    }
)

S = TypeVar("S", bound=BaseSettings)
logger = logging.getLogger(__name__)
_warned: set[str] = set()  # a process says it once per variable, however often its settings are read


def env_names(model: type[BaseSettings]) -> dict[str, str]:
    """Every variable ``model`` reads, to the field it sets: ``<prefix><FIELD>``, or the field's aliases
    (the first is the one to write). Upper case: pydantic-settings ignores the case."""
    prefix = str(model.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias or info.alias
        if isinstance(alias, AliasChoices):
            choices = [choice for choice in alias.choices if isinstance(choice, str)]
        else:
            choices = [alias] if isinstance(alias, str) else [f"{prefix}{name}"]
        names.update({choice.upper(): name for choice in choices})
    return names


def known_names(models: Iterable[type[BaseSettings]]) -> set[str]:
    """The variables ``models`` read, and those read outside them."""
    return {name for model in models for name in env_names(model)} | OTHER_NAMES


def closest(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1)
    return matches[0] if matches else None


def to_env(model: type[BaseSettings], **values: Any) -> dict[str, str]:
    """``values``, by field name, as the environment ``model`` reads them; a name that is not a field
    (the closest one is named) or a value the field refuses raises ValueError, in one line."""
    fields = model.model_fields
    for name in values:
        if name not in fields:
            hint = closest(name, fields)
            raise ValueError(
                f"{model.__name__} has no setting {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")
            )
    try:
        from_values(model, values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{model.__name__}.{where}: {first['msg']} (got {first.get('input')!r})") from None
    first_name: dict[str, str] = {}
    for env, name in env_names(model).items():
        first_name.setdefault(name, env)
    return {first_name[name]: env_value(value) for name, value in values.items()}


def from_values(model: type[S], values: Mapping[str, Any]) -> S:
    """``model`` from ``values`` and its defaults alone, never this process's environment or files."""
    values_only = type(model.__name__, (model,), {"settings_customise_sources": classmethod(_init_only)})
    return values_only(**values)


def _init_only(cls: Any, settings_cls: Any, init_settings: Any, **_other_sources: Any) -> tuple[Any, ...]:
    return (init_settings,)


def env_value(value: Any) -> str:
    """One value as pydantic-settings parses it back: booleans as true/false, containers as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value)
    return str(value)


def unknown_names(environ: Iterable[str], known: Collection[str]) -> dict[str, str | None]:
    """Each ``DRIFTLINE_*`` name in ``environ`` that is not ``known``, with the closest known name."""
    tails = {name[len(PREFIX) :]: name for name in known if name.startswith(PREFIX)}
    unknown = [name for name in environ if name.upper().startswith(PREFIX) and name.upper() not in known]
    # compared without the prefix, which every name shares (it would make any two look alike)
    hints = {name: closest(name.upper()[len(PREFIX) :], tails) for name in unknown}
    return {name: tails[hint] if hint else None for name, hint in hints.items()}


def warn_unknown(environ: Iterable[str], known: Collection[str]) -> dict[str, str | None]:
    """Log a warning, once per process, for each unknown ``DRIFTLINE_*`` name; returns them all."""
    unknown = unknown_names(environ, known)
    for name, hint in unknown.items():
        if name not in _warned:
            _warned.add(name)
            logger.warning(
                "%s is set, but no Driftline setting has that name%s",
                name,
                f": did you mean {hint}?" if hint else "",
            )
    return unknown
