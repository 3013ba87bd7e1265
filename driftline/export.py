"""`driftline predictions export`: the prediction log, oldest first, to Parquet, JSON lines or CSV, for a
warehouse. Streamed in batches (a table of millions never sits in memory); written to a temporary file
beside the target and renamed at the end, so a crash half-way leaves no half-written file."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from registry.errors import InvalidInputError
from registry.store import Registry

FORMATS = ("parquet", "jsonl", "csv")
SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("model_name", pa.string()),
        ("model_version", pa.int64()),
        ("text", pa.string()),
        ("predicted", pa.string()),
        ("scores", pa.string()),  # JSON object: label -> calibrated probability
        ("latency_ms", pa.float64()),
        ("truncated", pa.bool_()),
        ("true_label", pa.string()),  # the last label given for it, if any
    ]
)


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or time (UTC unless it says otherwise), or None."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(
            f"{option} must be an ISO 8601 date or time such as 2026-12-01 or 2026-12-01T08:00, not {value!r}",
            field=option,
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def export_predictions(
    registry: Registry,
    out: Path,
    *,
    fmt: str = "parquet",
    since: datetime | None = None,
    until: datetime | None = None,
    model_name: str | None = None,
    batch_size: int = 10_000,
) -> int:
    """Write the predictions in ``[since, until)`` to ``out``; returns how many rows."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}", field="format")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    rows = 0
    writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None
    try:
        with open(partial, "wb") as fh:
            if fmt == "parquet":
                writer = pq.ParquetWriter(fh, SCHEMA)
            elif fmt == "csv":
                writer = pa_csv.CSVWriter(fh, SCHEMA)
            store = registry.prediction_log
            for batch in store.batches(
                since=since, until=until, model_name=model_name, batch_size=batch_size
            ):
                for record in batch:
                    record["scores"] = json.dumps(record["scores"], sort_keys=True)
                    if record["created_at"].tzinfo is None:
                        record["created_at"] = record["created_at"].replace(tzinfo=UTC)
                if writer is None:  # JSON lines
                    for record in batch:
                        line = {**record, "created_at": record["created_at"].isoformat()}
                        fh.write(
                            (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
                        )
                else:
                    writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))
                rows += len(batch)
            if writer is not None:
                writer.close()
                writer = None
        os.replace(partial, out)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    return rows
