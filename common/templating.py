"""Pages rendered from records: one Jinja2 environment (autoescaped) shared by the static reports and the
review console, so a report file and the console page that shows it come from the same template.

Templates live in ``common/templates/`` (the report bodies, the base page) and, for the console, in the
service's own folder, which :func:`environment` puts first when given.
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, ChoiceLoader, Environment, PackageLoader, select_autoescape


def pts(value: Any, signed: bool = True) -> str:
    """A fraction as percentage points: 0.031 -> '+3.1 pts'; '-' for a missing value."""
    if not _number(value):
        return "-"
    return f"{value * 100:+.1f} pts" if signed else f"{value * 100:.1f} pts"


def num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; '-' for a missing one (an old report lacks a field)."""
    if isinstance(value, bool) or not _number(value):
        return "-" if value is None or isinstance(value, ChainableUndefined) else str(value)
    return f"{value:.{digits}f}"


def when(value: Any) -> str:
    """A datetime (or its ISO text) to the second, UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + ("" if value.tzinfo is None else " UTC")
    return "-"


def runtimes(onnx: Any) -> str:
    """The runtimes a version may serve on, from its ``metrics["onnx"]`` block: 'torch, onnx, int8'."""
    found = ["torch"]
    if isinstance(onnx, dict) and onnx.get("verified"):
        found.append("onnx")
        if (onnx.get("int8") or {}).get("passed"):
            found.append("int8")
    return ", ".join(found)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


@lru_cache(maxsize=4)
def environment(*packages: str) -> Environment:
    """The environment; ``packages`` name packages whose ``templates/`` folders come before the registry's.

    Undefined values chain (``report.gate.old.rows`` on a report without ``old`` renders empty) so that
    reports written by an older Driftline still render; everything is escaped unless marked safe.
    """
    loaders = [PackageLoader(p, "templates") for p in packages] + [PackageLoader("common", "templates")]
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pts=pts, num=num, when=when, runtimes=runtimes)
    return env


def render(template: str, **context: Any) -> str:
    """A registry template (a static report) rendered with ``context``."""
    return environment().get_template(template).render(**context)
