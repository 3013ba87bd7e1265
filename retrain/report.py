"""The promotion report: one self-contained HTML page (and its JSON) per decision, for a person to review."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from common.templating import render
from retrain.gate import GateResult


@dataclass(frozen=True)
class ReportInputs:
    model_name: str
    run_id: int
    trigger: str
    trigger_detail: str
    champion_version: int
    challenger_version: int
    status: str
    gate: GateResult
    counts: dict[str, int]
    train: pd.DataFrame
    recent: pd.DataFrame  # with columns champion_pred, challenger_pred
    champion_metrics: dict[str, Any]
    challenger_metrics: dict[str, Any]
    config: dict[str, Any]
    # label -> rows in each set ("new_train", "replay", "recent_heldout", "old_heldout"): RunData.per_class
    per_class_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    unknown_labels: dict[str, int] = field(
        default_factory=dict
    )  # labels outside the label set -> rows ignored


def _examples(recent: pd.DataFrame, fixed: bool, limit: int = 5) -> list[dict[str, Any]]:
    right_now = recent["challenger_pred"] == recent["label"]
    right_before = recent["champion_pred"] == recent["label"]
    mask = right_now & ~right_before if fixed else right_before & ~right_now
    rows = recent[mask].head(limit)
    return [
        {"text": t[:500], "label": y, "champion": a, "challenger": b}
        for t, y, a, b in zip(
            rows["text"], rows["label"], rows["champion_pred"], rows["challenger_pred"], strict=True
        )
    ]


def _training(train: dict[str, Any]) -> str:
    """One line on how the challenger was trained: validation, early stop, weighting, resume."""
    if "epochs_run" not in train:
        return ""
    best = train.get("best_val_macro_f1")
    parts = [
        f"{train['epochs_run']:g} epochs, {train.get('steps', '?')} steps"
        + (" (stopped early)" if train.get("stopped_early") else ""),
        f"best validation macro-F1 {best:.3f}, accuracy {train['best_val_accuracy']:.3f}"
        if best is not None
        else str(train.get("validation", "no validation")),
        f"class weighting {train.get('weighting', 'none')}",
    ]
    if train.get("resumed_from"):
        parts.append(f"resumed from {train['resumed_from']}")
    return "; ".join(parts)


def per_class_rows(r: ReportInputs) -> list[dict[str, Any]]:
    """One record per class: precision / recall / F1 of both models on the recent held-out rows, and
    how many rows of the class each set held (so a class missing from the new labels shows)."""
    rows = []
    for label, challenger in r.challenger_metrics["per_class"].items():
        champion = r.champion_metrics["per_class"].get(label, {})
        counts = r.per_class_counts.get(label, {})
        rows.append(
            {
                "label": label,
                "support": challenger["support"],
                "champion": {k: champion.get(k) for k in ("precision", "recall", "f1")},
                "challenger": {k: challenger[k] for k in ("precision", "recall", "f1")},
                "rows": dict(counts),
            }
        )
    return rows


def per_domain_rows(recent: pd.DataFrame) -> list[dict[str, Any]]:
    """Accuracy of both models per domain of the recent held-out rows (rows without one: '(none)')."""
    scored = recent.assign(
        champion_ok=recent["champion_pred"] == recent["label"],
        challenger_ok=recent["challenger_pred"] == recent["label"],
    )
    return [
        {
            "domain": str(domain),
            "rows": len(group),
            "champion": float(group["champion_ok"].mean()),
            "challenger": float(group["challenger_ok"].mean()),
        }
        for domain, group in scored.groupby(recent["domain"].fillna("(none)"))
    ]


def report_context(r: ReportInputs) -> dict[str, Any]:
    """Everything the report shows, JSON-ready: written as promotion.json, rendered into promotion.html
    (``common/templates/promotion.html.j2``) and by the review console from the same template."""
    by_label = r.train.groupby(["origin", "label"]).size().reset_index(name="rows")
    context = {
        "model": r.model_name,
        "run_id": r.run_id,
        "trigger": r.trigger,
        "trigger_detail": r.trigger_detail,
        "champion_version": r.champion_version,
        "challenger_version": r.challenger_version,
        "status": r.status,
        "gate": r.gate.to_dict(),
        "counts": r.counts,
        "per_class": per_class_rows(r),
        "unknown_labels": r.unknown_labels,
        "per_domain": per_domain_rows(r.recent),
        "by_label": by_label.to_dict(orient="records"),
        "fixed": _examples(r.recent, True),
        "broken": _examples(r.recent, False),
        "train": r.challenger_metrics.get("train", {}),
        "training": _training(r.challenger_metrics.get("train", {})),
        "onnx": {k: v for k, v in (r.challenger_metrics.get("onnx") or {}).items() if k != "seconds"},
        "quality": r.challenger_metrics.get("quality") or {},
        "config": r.config,
    }
    return json.loads(json.dumps(context, default=str))  # what the JSON file holds, numpy types included


def write_promotion_report(out_dir: Path, r: ReportInputs) -> Path:
    """promotion.json and promotion.html in ``out_dir`` (a folder the run then copies to the reports)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    context = report_context(r)
    (out_dir / "promotion.json").write_text(json.dumps(context, indent=1))
    (out_dir / "promotion.html").write_text(render("promotion.html.j2", report=context))
    return out_dir / "promotion.html"
