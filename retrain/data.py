"""Labeled text from CSV / JSONL / Parquet files, checked row by row, and the held-out split.

Every problem is reported as one line naming the file, the column and how many rows are affected,
before anything is written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from registry.errors import InvalidInputError
from registry.texts import text_key

logger = logging.getLogger(__name__)

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
COLUMNS = ["text", "label", "domain", "time"]
_SHOW_ROWS = 5


class DataError(InvalidInputError):
    """A data file that cannot be used as it is; the message names the file, column and rows."""


@dataclass(frozen=True)
class ColumnSpec:
    text: str
    label: str
    time: str | None = None
    domain: str | None = None


@dataclass(frozen=True)
class LabeledData:
    """Checked examples: columns ``text``, ``label``, ``domain`` (str or None), ``time`` (UTC or NaT)."""

    frame: pd.DataFrame
    source: str
    labels: tuple[str, ...]
    dropped_duplicates: int = 0

    def __len__(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    heldout: pd.DataFrame
    method: str


def _rows(mask: Iterable[bool]) -> str:
    idx = [i + 1 for i, bad in enumerate(mask) if bad]
    shown = ", ".join(str(i) for i in idx[:_SHOW_ROWS])
    more = f", ... {len(idx) - _SHOW_ROWS} more" if len(idx) > _SHOW_ROWS else ""
    return f"row{'s' if len(idx) > 1 else ''} {shown}{more}"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NA or value is pd.NaT


def read_table(path: Path, *, cache_dir: Path | None = None) -> pd.DataFrame:
    """Read a CSV / TSV / JSON(L) / Parquet file through ``datasets`` into a DataFrame."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unsupported file type '{path.suffix}' (use one of {', '.join(sorted(FORMATS))})"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")

    import datasets

    kwargs: dict[str, Any] = {"sep": "\t"} if path.suffix.lower() == ".tsv" else {}
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # reading a file is quick; its bar would bury error messages
    try:
        ds = datasets.load_dataset(
            fmt,
            data_files=str(path),
            split="train",
            cache_dir=str(cache_dir) if cache_dir else None,
            **kwargs,
        )
        return ds.to_pandas()
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's problem
        if fmt == "json":
            # Arrow refuses columns that mix types; pandas keeps them so rows can be named.
            try:
                return pd.read_json(path, lines=path.suffix.lower() == ".jsonl", dtype=False)
            except ValueError:
                pass
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read as {fmt}: {first}") from exc
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()


def _label_value(value: Any) -> str | None:
    """Labels are strings or integers; ``None`` marks a value that is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return None


def check_labeled(
    raw: pd.DataFrame,
    source: str,
    columns: ColumnSpec,
    *,
    allowed_labels: Sequence[str] | None = None,
    domains: Sequence[str] = (),
    min_classes: int = 2,
) -> LabeledData:
    """Check and normalise a table of labeled text; raise :class:`DataError` on the first problem."""
    wanted = [c for c in (columns.text, columns.label, columns.time, columns.domain) if c]
    for col in wanted:
        if col not in raw.columns:
            raise DataError(f"{source}: no column '{col}' (columns: {', '.join(map(str, raw.columns))})")
    if raw.empty:
        raise DataError(f"{source}: no rows")

    if domains:
        if not columns.domain:
            raise DataError(f"{source}: a domain filter needs --domain-col")
        keep = raw[columns.domain].astype("string").isin(list(domains)).fillna(False).to_numpy(dtype=bool)
        if not keep.any():
            present = sorted(raw[columns.domain].dropna().astype(str).unique())[:20]
            raise DataError(
                f"{source}: column '{columns.domain}' has no rows in domain(s) {list(domains)} "
                f"(values: {', '.join(present)})"
            )
        raw = raw.loc[keep].reset_index(drop=True)

    texts = raw[columns.text].tolist()
    empty = [_is_missing(t) or (isinstance(t, str) and not t.strip()) for t in texts]
    if any(empty):
        raise DataError(
            f"{source}: column '{columns.text}' has {sum(empty)} of {len(texts)} rows with empty or missing text "
            f"({_rows(empty)})"
        )
    non_string = [not isinstance(t, str) for t in texts]
    if any(non_string):
        raise DataError(
            f"{source}: column '{columns.text}' has {sum(non_string)} of {len(texts)} rows that are not strings "
            f"({_rows(non_string)})"
        )

    raw_labels = raw[columns.label].tolist()
    missing = [_is_missing(v) or (isinstance(v, str) and not v.strip()) for v in raw_labels]
    if any(missing):
        raise DataError(
            f"{source}: column '{columns.label}' has {sum(missing)} of {len(raw_labels)} rows without a label "
            f"({_rows(missing)})"
        )
    labels = [_label_value(v) for v in raw_labels]
    bad_type = [v is None for v in labels]
    if any(bad_type):
        raise DataError(
            f"{source}: column '{columns.label}' has {sum(bad_type)} of {len(labels)} rows whose label is not "
            f"a string or an integer ({_rows(bad_type)})"
        )
    if allowed_labels is not None:
        unknown_mask = [v not in set(allowed_labels) for v in labels]
        if any(unknown_mask):
            unknown = sorted({v for v, bad in zip(labels, unknown_mask, strict=True) if bad})
            raise DataError(
                f"{source}: column '{columns.label}' has {sum(unknown_mask)} rows with unknown labels "
                f"{unknown[:10]} (known: {', '.join(allowed_labels)}; {_rows(unknown_mask)})"
            )
    classes = sorted(set(labels))  # type: ignore[arg-type]
    if len(classes) < min_classes:
        raise DataError(
            f"{source}: column '{columns.label}' has {len(classes)} class{'es' if len(classes) != 1 else ''} "
            f"({', '.join(repr(c) for c in classes)}) in {len(labels)} rows; at least {min_classes} are needed"
        )

    frame = pd.DataFrame({"text": texts, "label": labels})
    if columns.domain:
        frame["domain"] = [None if _is_missing(v) else str(v) for v in raw[columns.domain].tolist()]
    else:
        frame["domain"] = None
    if columns.time:
        times = pd.to_datetime(raw[columns.time], utc=True, errors="coerce")
        bad_time = times.isna().to_numpy()
        if bad_time.any():
            raise DataError(
                f"{source}: column '{columns.time}' has {int(bad_time.sum())} of {len(times)} rows that are not "
                f"dates or times ({_rows(bad_time)})"
            )
        frame["time"] = times.reset_index(drop=True)
    else:
        frame["time"] = pd.NaT
    label_set = tuple(allowed_labels) if allowed_labels is not None else tuple(classes)
    return dedupe(LabeledData(frame=frame, source=source, labels=label_set))


def load_labeled_file(
    path: Path,
    columns: ColumnSpec,
    *,
    allowed_labels: Sequence[str] | None = None,
    domains: Sequence[str] = (),
    cache_dir: Path | None = None,
) -> LabeledData:
    return check_labeled(
        read_table(path, cache_dir=cache_dir),
        str(path),
        columns,
        allowed_labels=allowed_labels,
        domains=domains,
    )


def dedupe(data: LabeledData) -> LabeledData:
    """Keep one row per text: the latest (by time when known, else by file order)."""
    frame = data.frame.copy()
    frame["_key"] = frame["text"].map(text_key)
    frame["_order"] = np.arange(len(frame))
    if frame["time"].notna().all():
        frame = frame.sort_values(["time", "_order"], kind="stable")
    kept = frame.drop_duplicates("_key", keep="last").sort_values("_order").drop(columns=["_key", "_order"])
    dropped = len(frame) - len(kept)
    if dropped:
        logger.info("%s: dropped %d duplicate texts", data.source, dropped)
    return LabeledData(
        frame=kept.reset_index(drop=True),
        source=data.source,
        labels=data.labels,
        dropped_duplicates=data.dropped_duplicates + dropped,
    )


def split_heldout(data: LabeledData, *, test_size: float, seed: int, min_rows: int = 10) -> Split:
    """Hold out ``test_size`` of the rows: the latest ones when times are known, else a seeded
    stratified sample. De-duplication has already made sure no text is on both sides."""
    if not 0.0 < test_size < 1.0:
        raise InvalidInputError(f"test size {test_size} must be between 0 and 1")
    frame = data.frame
    if len(frame) < min_rows:
        raise DataError(
            f"{data.source}: {len(frame)} usable rows; at least {min_rows} are needed to hold some out"
        )
    n_test = max(1, round(len(frame) * test_size))
    if frame["time"].notna().all():
        ordered = frame.sort_values("time", kind="stable")
        return Split(
            ordered.iloc[:-n_test].reset_index(drop=True),
            ordered.iloc[-n_test:].reset_index(drop=True),
            "time",
        )
    return seeded_split(frame, n_test, seed=seed)


def seeded_split(frame: pd.DataFrame, n_test: int, *, seed: int) -> Split:
    """Set ``n_test`` rows aside: stratified by label when every class has two rows and the share
    can hold one of each (so rare classes are on both sides), else a plain seeded random sample."""
    from sklearn.model_selection import train_test_split

    counts = frame["label"].value_counts()
    stratify = frame["label"] if counts.min() >= 2 and n_test >= len(counts) else None
    train, test = train_test_split(frame, test_size=n_test, random_state=seed, stratify=stratify)
    return Split(
        train.reset_index(drop=True),
        test.reset_index(drop=True),
        "stratified" if stratify is not None else "random",
    )


def snapshot_digest(frame: pd.DataFrame) -> str:
    """A stable sha256 of examples (text, label, domain, time), independent of file format."""
    digest = hashlib.sha256()
    for text, label, domain, when in frame[["text", "label", "domain", "time"]].itertuples(index=False):
        stamp = None if pd.isna(when) else pd.Timestamp(when).isoformat()
        digest.update(json.dumps([text, label, domain, stamp], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()
