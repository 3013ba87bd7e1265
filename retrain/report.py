"""The promotion report: one self-contained HTML page (and its JSON) per decision, for a person to review."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from retrain.gate import Comparison, GateResult


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


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _comparison(c: Comparison | None, name: str) -> list[Any]:
    if c is None:
        return [name, "-", "-", "-", "-", "-"]
    return [
        name,
        c.rows,
        f"{c.champion_macro_f1:.3f}",
        f"{c.challenger_macro_f1:.3f}",
        f"{c.difference * 100:+.1f} pts",
        f"{c.ci_low * 100:+.1f} to {c.ci_high * 100:+.1f} pts",
    ]


def _examples(recent: pd.DataFrame, fixed: bool, limit: int = 5) -> list[list[Any]]:
    right_now = recent["challenger_pred"] == recent["label"]
    right_before = recent["champion_pred"] == recent["label"]
    mask = right_now & ~right_before if fixed else right_before & ~right_now
    rows = recent[mask].head(limit)
    return [
        [t[:200], y, a, b]
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
    return f"<p>Training: {html.escape('; '.join(parts))}</p>"


PER_CLASS_HEADERS = [
    "class",
    "recent rows",
    "champion P",
    "champion R",
    "champion F1",
    "challenger P",
    "challenger R",
    "challenger F1",
    "trained (new)",
    "trained (replay)",
]


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


def _per_class_table(rows: list[dict[str, Any]]) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    return _table(
        PER_CLASS_HEADERS,
        [
            [
                row["label"],
                row["support"],
                *(fmt(row["champion"][k]) for k in ("precision", "recall", "f1")),
                *(fmt(row["challenger"][k]) for k in ("precision", "recall", "f1")),
                row["rows"].get("new_train", "-"),
                row["rows"].get("replay", "-"),
            ]
            for row in rows
        ],
    )


def _ignored_labels(unknown: dict[str, int]) -> str:
    if not unknown:
        return ""
    named = ", ".join(f"{label} ({n})" for label, n in unknown.items())
    return (
        f"<p>Ignored: {sum(unknown.values())} new labels outside the champion's label set: "
        f"{html.escape(named)}</p>"
    )


def write_promotion_report(out_dir: Path, r: ReportInputs) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    per_class = per_class_rows(r)
    domains = r.recent.assign(
        champion_ok=r.recent["champion_pred"] == r.recent["label"],
        challenger_ok=r.recent["challenger_pred"] == r.recent["label"],
    ).groupby(r.recent["domain"].fillna("(none)"))
    per_domain = [
        [d, len(g), f"{g['champion_ok'].mean():.3f}", f"{g['challenger_ok'].mean():.3f}"] for d, g in domains
    ]
    data_rows = [[k, v] for k, v in r.counts.items()]
    by_label = r.train.groupby(["origin", "label"]).size().reset_index(name="rows").values.tolist()
    verdict = "passed" if r.gate.passed else "failed"
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(r.model_name)} v{r.challenger_version} vs v{r.champion_version}: {
        html.escape(r.status)
    }</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}th{{background:#f4f4f4}}.s{{font-size:1.3em}}</style>
</head><body>
<h1>{html.escape(r.model_name)}: challenger v{r.challenger_version} vs champion v{r.champion_version}</h1>
<p class="s">Decision: <b>{html.escape(r.status)}</b> (gate {verdict})</p>
<ul>{"".join(f"<li>{html.escape(reason)}</li>" for reason in r.gate.reasons)}</ul>
<h2>What triggered it</h2><p>Run {r.run_id}, trigger <b>{html.escape(r.trigger)}</b>: {
        html.escape(r.trigger_detail)
    }</p>
<h2>Metrics, same rows for both models</h2>
{
        _table(
            [
                "set",
                "rows",
                "champion macro-F1",
                "challenger macro-F1",
                "difference",
                "95% CI of the difference",
            ],
            [
                _comparison(r.gate.recent, "recent held-out"),
                _comparison(r.gate.old, "champion's evaluation set"),
            ],
        )
    }
<h3>Per class (recent held-out: precision, recall, F1; rows trained on)</h3>{_per_class_table(per_class)}
<h3>Per domain (recent held-out, accuracy)</h3>{
        _table(["domain", "rows", "champion", "challenger"], per_domain)
    }
<h2>Data</h2>{_table(["what", "rows"], data_rows)}{_ignored_labels(r.unknown_labels)}{
        _training(r.challenger_metrics.get("train", {}))
    }{_table(["origin", "label", "rows"], by_label)}
<h2>Examples the challenger fixed</h2>{
        _table(["text", "label", "champion", "challenger"], _examples(r.recent, True))
    }
<h2>Examples the challenger broke</h2>{
        _table(["text", "label", "champion", "challenger"], _examples(r.recent, False))
    }
<h2>Configuration</h2><pre>{html.escape(json.dumps(r.config, indent=1, default=str))}</pre>
</body></html>"""
    (out_dir / "promotion.html").write_text(page)
    (out_dir / "promotion.json").write_text(
        json.dumps(
            {
                "model": r.model_name,
                "run_id": r.run_id,
                "trigger": r.trigger,
                "trigger_detail": r.trigger_detail,
                "champion_version": r.champion_version,
                "challenger_version": r.challenger_version,
                "status": r.status,
                "gate": r.gate.to_dict(),
                "counts": r.counts,
                "per_class": per_class,
                "unknown_labels": r.unknown_labels,
                "per_domain": per_domain,
                "train": r.challenger_metrics.get("train", {}),
                "config": r.config,
            },
            indent=1,
            default=str,
        )
    )
    return out_dir / "promotion.html"
