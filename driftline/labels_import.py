"""Bulk label import: the same checks and the same all-or-nothing write as ``POST /feedback``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from registry.entities import CHAMPION, NewLabel
from registry.errors import InvalidInputError, NotFoundError
from registry.store import Registry
from retrain.data import ColumnSpec, DataError, check_labeled, read_table


def import_labels(
    registry: Registry,
    path: Path,
    *,
    model_name: str,
    label_col: str,
    text_col: str | None = None,
    prediction_id_col: str | None = None,
    domain_col: str | None = None,
    time_col: str | None = None,
    source: str = "import",
    cache_dir: Path | None = None,
    raw: pd.DataFrame | None = None,
) -> int:
    """Labels from the table at ``path`` (or ``raw``, already read from it), all or nothing."""
    if (text_col is None) == (prediction_id_col is None):
        raise InvalidInputError(
            "give --text-col (labels for texts) or --prediction-id-col (labels for predictions)"
        )
    try:
        known = registry.get_version_by_alias(model_name, CHAMPION).labels
    except NotFoundError as exc:
        raise InvalidInputError(
            f"model '{model_name}' has no champion, so its label set is unknown: run `driftline bootstrap` first"
        ) from exc
    if raw is None:
        raw = read_table(path, cache_dir=cache_dir)
    if prediction_id_col is not None:
        if prediction_id_col not in raw.columns:
            raise DataError(
                f"{path}: no column '{prediction_id_col}' (columns: {', '.join(map(str, raw.columns))})"
            )
        raw = raw.assign(_text=raw[prediction_id_col])  # ids go through the same per-row checks as texts
        text_col = "_text"
    assert text_col is not None
    data = check_labeled(
        raw,
        str(path),
        ColumnSpec(text=text_col, label=label_col, time=time_col, domain=domain_col),
        allowed_labels=known,
        min_classes=1,
    )
    items = [
        NewLabel(
            label=row.label,
            prediction_id=row.text if prediction_id_col else None,
            text=None if prediction_id_col else row.text,
            model_name=model_name,
            domain=row.domain,
            source=source,
            created_at=None if pd.isna(row.time) else pd.Timestamp(row.time).to_pydatetime(),
        )
        for row in data.frame.itertuples(index=False)
    ]
    return len(registry.add_labels(items, allowed_labels=known))


def import_label_studio(
    registry: Registry, path: Path, *, model_name: str, source: str = "label-studio"
) -> int:
    """Import the labels of a Label Studio JSON export of tasks made by ``driftline labels queue``: each
    annotated task's last annotation not cancelled, for the prediction id its data carries; all or
    nothing, with the same checks as any import."""
    import json

    from labeling.formats import label_studio_labels

    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON file: {exc}") from exc
    try:
        pairs = label_studio_labels(tasks, str(path))
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    if not pairs:
        raise DataError(f"{path}: no annotated task (nothing to import)")
    frame = pd.DataFrame(pairs, columns=["prediction_id", "label"])
    return import_labels(
        registry,
        path,
        model_name=model_name,
        label_col="label",
        prediction_id_col="prediction_id",
        source=source,
        raw=frame,
    )
