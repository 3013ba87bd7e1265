"""Server-rendered charts: one metric across a model's versions, as SVG (matplotlib, no JavaScript).

The console serves each chart as its own ``image/svg+xml`` response shown with ``<img>``: an image
cannot run script, and the chart holds only numbers and version labels.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure

_lock = threading.Lock()  # matplotlib's text layout caches are not thread-safe


def chartable_metrics(metrics_per_version: Sequence[dict]) -> list[str]:
    """Top-level numeric metrics any version has (``n``, the row count, is left out), in first-seen order."""
    seen: dict[str, None] = {}
    for metrics in metrics_per_version:
        for key, value in metrics.items():
            if key != "n" and isinstance(value, int | float) and not isinstance(value, bool):
                seen.setdefault(key, None)
    return list(seen)


def metric_svg(
    metric: str, versions: Sequence[int], values: Sequence[float | None], champion: int | None
) -> bytes:
    """A line of ``metric`` per version (gaps where a version lacks it); the champion's point marked."""
    points = [(v, y) for v, y in zip(versions, values, strict=True) if y is not None and not math.isnan(y)]
    with _lock:
        fig = Figure(figsize=(4.2, 2.4), dpi=100)
        ax = fig.subplots()
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", color="#3465a4", linewidth=1.5)
            for x, y in points:
                if x == champion:
                    ax.plot([x], [y], marker="o", markersize=11, markerfacecolor="none", color="#176b2c")
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("version", fontsize=8)
        ax.set_xticks(list(versions))
        ax.set_xticklabels([f"v{v}" for v in versions], fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
