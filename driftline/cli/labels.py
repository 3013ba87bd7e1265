"""Labels and predictions: the label queue (``labels queue``), importing labels (``labels import``) and
exporting the prediction log (``predictions export``)."""

from __future__ import annotations

from pathlib import Path

import click

from driftline.cli.common import handle_errors, main, open_registry
from labeling.handout import LEASE_HOURS as QUEUE_LEASE_HOURS
from labeling.handout import MAX_LIMIT as MAX_QUEUE_LIMIT
from labeling.ranking import RANDOM_SHARE as QUEUE_RANDOM_SHARE
from registry.settings import get_settings

# --- labels -------------------------------------------------------------------------------------


@main.group()
def labels() -> None:
    """Labels: the queue of predictions worth labeling, and importing labels in bulk."""


@labels.command("queue")
@click.option("--limit", type=click.IntRange(1, MAX_QUEUE_LIMIT), default=100, show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "label-studio"]),
    default="jsonl",
    show_default=True,
    help="label-studio: a JSON list of Label Studio tasks with the model's prediction pre-selected.",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="File to write (default: stdout).")
@click.option(
    "--random-share",
    type=click.FloatRange(0.0, 1.0),
    default=QUEUE_RANDOM_SHARE,
    show_default=True,
    help="Share of the queue drawn uniformly at random (marked 'random'): an unbiased sample for estimates.",
)
@click.option(
    "--lease-hours",
    type=click.FloatRange(0.0, 720.0, min_open=True),
    default=QUEUE_LEASE_HOURS,
    show_default=True,
    help="How long the items handed out are not offered again.",
)
@click.option("--handed-to", default="cli", show_default=True, help="Recorded as who has the items.")
@handle_errors
def labels_queue(
    limit: int, fmt: str, out: Path | None, random_share: float, lease_hours: float, handed_to: str
) -> None:
    """Hand out the champion's unlabeled predictions a label would teach most (margin sampling with
    diversity over the logged embeddings, plus a random share), leased so they are not offered twice."""
    from driftline.queue import write_handout
    from labeling.handout import hand_out
    from registry.entities import CHAMPION

    settings = get_settings()
    registry = open_registry(settings)
    handout = hand_out(
        registry,
        registry.get_version_by_alias(settings.model_name, CHAMPION),
        limit,
        handed_to=handed_to,
        random_share=random_share,
        lease_hours=lease_hours,
    )
    write_handout(handout, fmt, out)
    where = f" to {out}" if out is not None else ""
    click.echo(
        f"handed out {len(handout.items)} of {handout.candidates} unlabeled predictions of "
        f"{handout.model_name} v{handout.model_version}{where}, leased until {handout.expires_at:%Y-%m-%d %H:%M} UTC "
        f"(hand-out {handout.id})",
        err=True,
    )


@labels.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "label-studio"]),
    default="table",
    show_default=True,
    help="table: CSV / TSV / JSONL / Parquet with the columns below; label-studio: a Label Studio JSON "
    "export of tasks from `driftline labels queue --format label-studio`.",
)
@click.option("--text-col", default=None, help="Column of texts (labels for texts seen anywhere).")
@click.option("--label-col", default=None, help="Column of labels (required for --format table).")
@click.option(
    "--prediction-id-col", default=None, help="Column of prediction ids (labels for logged predictions)."
)
@click.option("--domain-col", default=None)
@click.option("--time-col", default=None, help="When each label was given (default: now).")
@click.option("--source", default="import", show_default=True, help="Recorded as the labels' source.")
@handle_errors
def labels_import(
    path: Path,
    fmt: str,
    text_col: str | None,
    label_col: str | None,
    prediction_id_col: str | None,
    domain_col: str | None,
    time_col: str | None,
    source: str,
) -> None:
    """Import labels from a CSV / TSV / JSONL / Parquet file or a Label Studio export, all or nothing."""
    from driftline.labels_import import import_label_studio, import_labels

    settings = get_settings()
    if fmt == "label-studio":
        count = import_label_studio(
            open_registry(settings), path, model_name=settings.model_name, source=source
        )
        click.echo(f"imported {count} labels from {path}")
        return
    if label_col is None:
        raise click.UsageError("--label-col is required with --format table")
    assert settings.cache_dir is not None  # Settings fills it from home
    count = import_labels(
        open_registry(settings),
        path,
        model_name=settings.model_name,
        text_col=text_col,
        label_col=label_col,
        prediction_id_col=prediction_id_col,
        domain_col=domain_col,
        time_col=time_col,
        source=source,
        cache_dir=settings.cache_dir / "datasets",
    )
    click.echo(f"imported {count} labels from {path}")


# --- predictions ------------------------------------------------------------------------------


@main.group()
def predictions() -> None:
    """The prediction log: export it for a warehouse."""


@predictions.command("export")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="File to write.")
@click.option(
    "--format", "fmt", type=click.Choice(["parquet", "jsonl", "csv"]), default="parquet", show_default=True
)
@click.option(
    "--since", default=None, help="ISO 8601 date or time (UTC unless it says otherwise), inclusive."
)
@click.option("--until", default=None, help="ISO 8601 date or time, exclusive.")
@click.option("--model-name", default=None, help="Only this model's predictions (default: every model).")
@handle_errors
def predictions_export(
    out: Path, fmt: str, since: str | None, until: str | None, model_name: str | None
) -> None:
    """Write logged predictions, oldest first, each with the last label given for it."""
    from driftline.export import export_predictions, parse_time

    settings = get_settings()
    rows = export_predictions(
        open_registry(settings),
        out,
        fmt=fmt,
        since=parse_time(since, "--since"),
        until=parse_time(until, "--until"),
        model_name=model_name,
    )
    click.echo(f"exported {rows} predictions to {out}")
