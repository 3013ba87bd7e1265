"""The timeline figure of a replay: served accuracy per window over the stream's domains, each drift
check's embedding-drift score, and the runs and promotions, placed on the stream."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from driftline.summary import StreamSummary


def write_timeline(summary: StreamSummary, path: Path) -> Path:
    """Served accuracy per window, the embedding-drift score of each check, run and promotion marks,
    domain bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.2), dpi=110)
    colors = ["#e8f0fe", "#fef3e0", "#e6f4ea", "#fce8e6", "#f3e8fd"]
    for i, (name, d) in enumerate(summary.domains.items()):
        ax.axvspan(d["first_row"], d["last_row"] + 1, color=colors[i % len(colors)], zorder=0)
        ax.text((d["first_row"] + d["last_row"]) / 2, 1.02, name, ha="center", va="bottom", fontsize=9)
    mids = [(w["start"] + w["end"]) / 2 for w in summary.windows]
    ax.plot(mids, [w["accuracy"] for w in summary.windows], "o-", color="#1a73e8", label="served accuracy")
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, max(summary.rows, 1))
    ax.set_xlabel("stream row")
    ax.set_ylabel("accuracy (window)")
    for r in summary.runs:
        ax.axvline(r["row"], color="#f29900", linestyle="--", linewidth=1.2)
    for d in summary.decisions:
        promoted = d["status"] in ("promoted", "approved")
        ax.axvline(d["row"], color="#188038" if promoted else "#d93025", linewidth=2)
        ax.text(
            d["row"], 0.04, f" v{d['candidate_version']} {d['status']}", rotation=90, fontsize=8, va="bottom"
        )
    drift = ax.twinx()
    points = [c for c in summary.checks if c["embedding_auc"] is not None]
    drift.scatter(
        [c["row"] for c in points],
        [c["embedding_auc"] for c in points],
        c=["#d93025" if c["drifted"] else "#9aa0a6" for c in points],
        s=14,
        label="drift check (embedding AUC; red: drift)",
    )
    drift.set_ylim(0.4, 1.05)
    drift.set_ylabel("embedding drift AUC")
    handles = [
        plt.Line2D([], [], color="#1a73e8", marker="o", label="served accuracy per window"),
        plt.Line2D([], [], color="#d93025", marker="o", linestyle="", label="drift check, drift seen"),
        plt.Line2D([], [], color="#9aa0a6", marker="o", linestyle="", label="drift check, no drift"),
        plt.Line2D([], [], color="#f29900", linestyle="--", label="run queued"),
        plt.Line2D([], [], color="#188038", label="promotion"),
    ]
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=5, fontsize=8, frameon=False
    )
    ax.set_title("Driftline: served accuracy, drift checks, retraining and promotions", fontsize=11, pad=18)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
