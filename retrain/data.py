"""Labeled text from CSV / JSONL / Parquet files, checked row by row, and the held-out split.

Every problem is reported as one line naming the file, the column and how many rows are affected,
before anything is written anywhere.

Label rules (any user's data): a label is a string, case-sensitive, with surrounding whitespace
stripped; it may hold spaces, punctuation and any script ("très bien", "N/A", "5 ★"). Integer labels
become their string form ("3"); a column may mix integers and strings. CSV cells are read as written
(``01`` stays ``"01"``, ``N/A`` stays ``"N/A"``: only an empty cell is missing); JSON and Parquet keep
their types (a JSON ``1`` and ``"01"`` are then two labels, ``"1"`` and ``"01"``). Labels that differ
only in case or inner spacing ("Spam" and "spam") are refused as ambiguous. A file has 2 to
``MAX_CLASSES`` classes and labels of at most ``MAX_LABEL_CHARS`` characters. Texts, labels and
domains are cleaned with :func:`common.texts.clean_text` (NUL and lone surrogates become U+FFFD).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.texts import REPLACEMENT, clean_text, text_key
from registry.errors import InvalidInputError

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
MAX_CLASSES = 50  # classes a model may have (the output head, per-class reports and gates stay readable)
MAX_LABEL_CHARS = 200  # the registry stores labels and domains as String(200)
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


def _csv_options(path: Path, sep: str) -> dict[str, Any]:
    """Read every CSV column as the text written: ``01`` stays ``"01"`` (not the number 1), a column
    mixing ``3`` and ``spam`` keeps both as strings in every chunk, and only an empty cell is missing
    (``N/A``, ``NA`` and ``null`` are values: labels may be spelled so)."""
    import datasets

    header = pd.read_csv(path, sep=sep, nrows=0).columns
    return {
        "features": datasets.Features({str(name): datasets.Value("string") for name in header}),
        "keep_default_na": False,
        "na_values": [""],
    }


def _has_nul(path: Path, chunk: int = 1 << 20) -> bool:
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            if b"\0" in block:
                return True
    return False


def _read_csv_with_nul(path: Path, sep: str) -> pd.DataFrame:
    """pandas' CSV parser ends a cell at a NUL byte (the rest of the text is lost): such a file is
    decoded here with each NUL read as U+FFFD, then parsed with the same as-written options."""
    try:
        decoded = path.read_bytes().decode("utf-8").replace("\0", REPLACEMENT)
        return pd.read_csv(io.StringIO(decoded), sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read as csv: {first}") from exc


def _read_json(path: Path) -> pd.DataFrame:
    """JSON lines through Arrow's reader (the one ``datasets`` uses), typed as written. Where Arrow
    refuses the file (a column mixing integers and strings, a lone surrogate, a top-level array), Python's
    parser reads it instead. ``datasets``' own fallback is not used: it re-parses with pandas, whose type
    inference turns a string "01" into the number 1 and could do so to a text."""
    import pyarrow as pa
    import pyarrow.json as pa_json

    try:
        return pa_json.read_json(path).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        return _read_json_python(path)
    except (ValueError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read as json: {first}") from exc


def _read_json_python(path: Path) -> pd.DataFrame:
    """Python's parser keeps every value as written (a lone ``\\ud800`` included, for
    :func:`clean_text` to replace)."""
    text = path.read_text(encoding="utf-8")
    records: Any = None
    if path.suffix.lower() != ".jsonl":
        try:
            records = json.loads(text)
        except json.JSONDecodeError:
            records = None  # a .json file may hold JSON lines too
    if records is None:
        # split on "\n" only: a JSON string may hold U+2028 and other characters str.splitlines() cuts at
        records = [json.loads(line) for line in text.split("\n") if line.strip()]
    if not isinstance(records, list | dict):
        raise ValueError("the top level is neither a list of records nor an object of columns")
    return pd.DataFrame(records)


def read_table(path: Path, *, cache_dir: Path | None = None) -> pd.DataFrame:
    """Read a CSV / TSV / JSON(L) / Parquet file into a DataFrame (CSV and Parquet through ``datasets``,
    JSON through Arrow's reader: see :func:`_read_json`).

    CSV / TSV columns come back as strings exactly as written (see :func:`_csv_options`); JSON and
    Parquet columns keep their types."""
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
    if fmt == "csv" and _has_nul(path):
        return _read_csv_with_nul(path, kwargs.get("sep", ","))
    if fmt == "json":
        return _read_json(path)
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # reading a file is quick; its bar would bury error messages
    try:
        if fmt == "csv":
            kwargs.update(_csv_options(path, kwargs.get("sep", ",")))
        ds = datasets.load_dataset(
            fmt,
            data_files=str(path),
            split="train",
            cache_dir=str(cache_dir) if cache_dir else None,
            **kwargs,
        )
        return ds.to_pandas()
    except Exception as exc:  # any parser failure is the file's problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read as {fmt}: {first}") from exc
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()


def _label_value(value: Any) -> str | None:
    """Labels are strings or integers; ``None`` marks a value that is neither. Strings are cleaned
    (:func:`clean_text`) and stripped; case and inner spacing are kept."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return clean_text(value).strip() or None
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return None


def _spelling(label: str) -> str:
    """The form two spellings of one label share: case folded, inner whitespace collapsed."""
    return " ".join(label.split()).casefold()


def _refuse_spelling_variants(labels: Sequence[str], source: str, column: str) -> None:
    """Refuse labels that differ only in case or inner spacing ("Spam" / "spam", "not spam" /
    "not  spam"): labels are case-sensitive, so such a file would train two classes for one meaning."""
    spellings: dict[str, dict[str, None]] = {}
    for label in labels:
        spellings.setdefault(_spelling(label), {})[label] = None
    clashes = [list(variants) for variants in spellings.values() if len(variants) > 1]
    if not clashes:
        return
    variants = clashes[0]
    named = " and ".join(f"{v!r} ({_rows([label == v for label in labels])})" for v in variants[:3])
    more = f"; {len(clashes) - 1} more label(s) have the same problem" if len(clashes) > 1 else ""
    raise DataError(
        f"{source}: column '{column}' spells one label {len(variants)} ways that differ only in case or "
        f"spacing: {named}; labels are case-sensitive: use one spelling{more}"
    )


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
        raw = _in_domains(raw, source, columns, domains)
    texts = _checked_texts(raw[columns.text].tolist(), source, columns.text)
    labels = _checked_labels(raw[columns.label].tolist(), source, columns.label, allowed_labels)
    classes = _checked_classes(labels, source, columns.label, allowed_labels, min_classes)
    frame = pd.DataFrame({"text": texts, "label": labels})
    frame["domain"] = (
        _checked_domains(raw[columns.domain].tolist(), source, columns.domain) if columns.domain else None
    )
    frame["time"] = _checked_times(raw[columns.time], source, columns.time) if columns.time else pd.NaT
    label_set = tuple(allowed_labels) if allowed_labels is not None else tuple(classes)
    return dedupe(LabeledData(frame=frame, source=source, labels=label_set))


def _refuse_rows(bad: Sequence[bool], source: str, column: str, what: str, hint: str = "") -> None:
    """Refuse the file if any row is ``bad``: how many, out of how many, and which."""
    if any(bad):
        raise DataError(
            f"{source}: column '{column}' has {sum(bad)} of {len(bad)} rows {what} ({_rows(bad)}){hint}"
        )


def _in_domains(raw: pd.DataFrame, source: str, columns: ColumnSpec, domains: Sequence[str]) -> pd.DataFrame:
    """The rows of ``domains`` only; none is an error that names the domains there are."""
    if not columns.domain:
        raise DataError(f"{source}: a domain filter needs --domain-col")
    keep = raw[columns.domain].astype("string").isin(list(domains)).fillna(False).to_numpy(dtype=bool)
    if not keep.any():
        present = sorted(raw[columns.domain].dropna().astype(str).unique())[:20]
        raise DataError(
            f"{source}: column '{columns.domain}' has no rows in domain(s) {list(domains)} "
            f"(values: {', '.join(present)})"
        )
    return raw.loc[keep].reset_index(drop=True)


def _checked_texts(texts: list[Any], source: str, column: str) -> list[str]:
    """Every text a non-empty string, cleaned (:func:`clean_text`)."""
    _refuse_rows(
        [_is_missing(t) or (isinstance(t, str) and not t.strip()) for t in texts],
        source,
        column,
        "with empty or missing text",
    )
    _refuse_rows([not isinstance(t, str) for t in texts], source, column, "that are not strings")
    return [clean_text(t) for t in texts]


def _checked_labels(
    values: list[Any], source: str, column: str, allowed_labels: Sequence[str] | None
) -> list[str]:
    """Every label present, a string or an integer (as its string), short, spelled one way, and of
    ``allowed_labels`` when given."""
    _refuse_rows(
        [_is_missing(v) or (isinstance(v, str) and not v.strip()) for v in values],
        source,
        column,
        "without a label",
    )
    labels = [_label_value(v) for v in values]
    _refuse_rows([v is None for v in labels], source, column, "whose label is not a string or an integer")
    checked = [v for v in labels if v is not None]  # all of them, past the check above
    _refuse_rows(
        [len(v) > MAX_LABEL_CHARS for v in checked],
        source,
        column,
        f"with a label longer than {MAX_LABEL_CHARS} characters",
        "; is it the text column?",
    )
    _refuse_spelling_variants(checked, source, column)
    if allowed_labels is not None:
        unknown_mask = [v not in set(allowed_labels) for v in checked]
        if any(unknown_mask):
            unknown = sorted({v for v, bad in zip(checked, unknown_mask, strict=True) if bad})
            raise DataError(
                f"{source}: column '{column}' has {sum(unknown_mask)} rows with unknown labels "
                f"{unknown[:10]} (known: {', '.join(allowed_labels)}; {_rows(unknown_mask)})"
            )
    return checked


def _checked_classes(
    labels: list[str], source: str, column: str, allowed_labels: Sequence[str] | None, min_classes: int
) -> list[str]:
    """The classes of ``labels``, sorted: from ``min_classes`` to ``MAX_CLASSES`` of them."""
    classes = sorted(set(labels))
    if len(classes) > MAX_CLASSES:
        raise DataError(
            f"{source}: column '{column}' has {len(classes)} classes in {len(labels)} rows; at most "
            f"{MAX_CLASSES} are supported (first ones: {', '.join(repr(c) for c in classes[:5])}, ...)"
        )
    if allowed_labels is not None and len(allowed_labels) > MAX_CLASSES:
        raise DataError(
            f"{source}: the label set has {len(allowed_labels)} labels; at most {MAX_CLASSES} are supported"
        )
    if len(classes) < min_classes:
        raise DataError(
            f"{source}: column '{column}' has {len(classes)} class{'es' if len(classes) != 1 else ''} "
            f"({', '.join(repr(c) for c in classes)}) in {len(labels)} rows; at least {min_classes} are needed"
        )
    return classes


def _checked_domains(values: list[Any], source: str, column: str) -> list[str | None]:
    """Each row's domain, cleaned, or None where missing; none longer than ``MAX_LABEL_CHARS``."""
    domains = [None if _is_missing(v) else clean_text(str(v)) for v in values]
    _refuse_rows(
        [v is not None and len(v) > MAX_LABEL_CHARS for v in domains],
        source,
        column,
        f"with a domain longer than {MAX_LABEL_CHARS} characters",
    )
    return domains


def _checked_times(values: pd.Series, source: str, column: str) -> pd.Series:
    """Each row's time in UTC; a value that is not a date or a time is refused."""
    times = pd.to_datetime(values, utc=True, errors="coerce")
    _refuse_rows(times.isna().tolist(), source, column, "that are not dates or times")
    return times.reset_index(drop=True)


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
