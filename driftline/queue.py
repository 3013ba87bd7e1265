"""Writing a label-queue hand-out as JSON lines, CSV or Label Studio tasks."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from labeling.formats import item_record, label_studio_tasks
from registry.entities import Handout


def render(handout: Handout, fmt: str) -> str:
    if fmt == "label-studio":
        return json.dumps(label_studio_tasks(handout), ensure_ascii=False, indent=1) + "\n"
    records = [item_record(item) for item in handout.items]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt == "csv":
        labels = list(handout.items[0].scores) if handout.items else []
        buffer = io.StringIO()
        columns = [
            "rank",
            "prediction_id",
            "text",
            "predicted_label",
            "margin",
            "strategy",
            *[f"score_{label}" for label in labels],
            "model_version",
            "created_at",
        ]
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow({**r, **{f"score_{k}": v for k, v in r["scores"].items()}})
        return buffer.getvalue()
    raise ValueError(f"unknown format {fmt!r}: use jsonl, csv or label-studio")


def write_handout(handout: Handout, fmt: str, out: Path | None) -> None:
    text = render(handout, fmt)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
