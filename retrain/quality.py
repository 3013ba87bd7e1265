"""Is a newly trained model any good? A check against the majority-class baseline, on the same rows.

A model can reach a respectable accuracy by predicting (almost) always the most frequent class: on a
stream with 77 % positive reviews it scores 0.77 and learns nothing. Its macro-F1 gives it away, next
to the macro-F1 that the majority-class predictor gets on the same held-out rows. A held-out set too
small, or with too few rows of a class, cannot tell either way: that is said too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

ONE_CLASS_SHARE = 0.95  # a model that gives one label to this share of the held-out rows or more
NEAR_BASELINE = 0.05  # macro-F1 within this of the majority-class baseline's
MIN_ROWS = 50  # held-out rows below which nothing can be told
MIN_CLASS_ROWS = 5  # held-out rows of a class below which its F1 means little

ADVICE = (
    "more labeled rows, above all of the rare classes",
    "class weighting (--class-weighting balanced)",
    "a larger --max-length when the texts are long (or 'auto')",
    "more epochs (--epochs)",
)


def majority_baseline(y_true: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy and macro-F1 of always predicting the most frequent true label of ``y_true``."""
    from sklearn.metrics import f1_score

    counts = Counter(y_true)
    if not counts:
        return {"label": None, "accuracy": float("nan"), "macro_f1": float("nan")}
    label, n = counts.most_common(1)[0]
    macro_f1 = f1_score(
        list(y_true), [label] * len(y_true), labels=list(labels), average="macro", zero_division=0
    )
    return {"label": label, "accuracy": n / len(y_true), "macro_f1": float(macro_f1)}


def assess(
    predicted: Sequence[str], y_true: Sequence[str], labels: Sequence[str], macro_f1: float
) -> dict[str, Any]:
    """The ``quality`` block recorded on a version: the baseline next to the model's figures, whether the
    model is degenerate, why, and what to try."""
    n = len(y_true)
    baseline = majority_baseline(y_true, labels)
    shares = Counter(predicted)
    top_label, top_count = shares.most_common(1)[0] if shares else (None, 0)
    top_share = top_count / n if n else float("nan")
    classes = Counter(y_true)
    reasons: list[str] = []
    if n and len(classes) > 1 and top_share >= ONE_CLASS_SHARE:
        reasons.append(f"it predicts '{top_label}' for {top_share:.0%} of the held-out rows")
    if n and not np.isnan(baseline["macro_f1"]) and macro_f1 <= baseline["macro_f1"] + NEAR_BASELINE:
        reasons.append(
            f"its macro-F1 {macro_f1:.3f} is within {NEAR_BASELINE:.2f} of always predicting "
            f"'{baseline['label']}' ({baseline['macro_f1']:.3f} on the same rows)"
        )
    thin = [label for label in labels if classes.get(label, 0) < MIN_CLASS_ROWS]
    too_small = n < MIN_ROWS
    undecided: list[str] = []
    if too_small:
        undecided.append(f"only {n} held-out rows (fewer than {MIN_ROWS}): its figures say little")
    if thin:
        undecided.append(
            f"fewer than {MIN_CLASS_ROWS} held-out rows of {', '.join(repr(t) for t in thin)}: "
            "their F1 says little"
        )
    return {
        "degenerate": bool(reasons),
        "reasons": reasons,
        "too_small_to_tell": undecided,
        "baseline": baseline,
        "top_predicted": {"label": top_label, "share": top_share},
        "advice": list(ADVICE) if reasons else [],
    }


def warning_lines(quality: dict[str, Any]) -> list[str]:
    """What the CLI prints about a version's ``quality`` block (nothing for a sound model)."""
    lines = []
    if quality.get("degenerate"):
        lines.append("WARNING: this model is degenerate: " + "; ".join(quality["reasons"]) + ".")
        lines.append("  try: " + "; ".join(quality["advice"]) + ".")
    for note in quality.get("too_small_to_tell") or []:
        lines.append(f"note: {note}")
    baseline = quality.get("baseline") or {}
    if baseline.get("label") is not None:
        lines.append(
            f"  baseline (always '{baseline['label']}'): accuracy {baseline['accuracy']:.3f}, "
            f"macro-F1 {baseline['macro_f1']:.3f}"
        )
    return lines
