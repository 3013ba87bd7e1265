"""Replay sessions: a labeled file through a fresh Driftline (``replay``), and the whole loop on the
demo data (``demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from driftline.cli.common import handle_errors, main, quiet_training_logs
from driftline.cli.options import MaxLength
from registry.settings import get_settings

# --- replay -------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--data", "data_path", type=click.Path(path_type=Path), required=True, help="CSV / TSV / JSONL / Parquet."
)
@click.option("--text-col", required=True)
@click.option("--label-col", required=True)
@click.option("--time-col", default=None, help="Order rows by this column (file order otherwise).")
@click.option("--domain-col", default=None, help="Report accuracy per value of this column.")
@click.option(
    "--bootstrap-rows", type=int, default=1000, show_default=True, help="Rows that train version 1."
)
@click.option("--bootstrap-until", default=None, help="Instead: rows before this time train version 1.")
@click.option("--window", type=int, default=500, show_default=True, help="Rows per reported window.")
@click.option("--label-delay", type=int, default=100, show_default=True, help="A label arrives N rows later.")
@click.option("--label-fraction", type=float, default=1.0, show_default=True, help="Share of rows labeled.")
@click.option(
    "--label-budget",
    type=float,
    default=None,
    help="Instead: label at most this share of the rows, the ones --label-strategy picks.",
)
@click.option(
    "--label-strategy",
    type=click.Choice(["random", "queue"]),
    default="random",
    show_default=True,
    help="queue: the rows the service's label queue hands out (GET /api/label-queue); random: any.",
)
@click.option("--check-every", type=int, default=250, show_default=True, help="Rows between drift checks.")
@click.option(
    "--policy", type=click.Choice(["drift", "never", "every-window"]), default="drift", show_default=True
)
@click.option("--base-model", default="minilm-l6", show_default=True, help="Local HF folder or 'minilm-l6'.")
@click.option("--num-hidden-layers", type=int, default=None, help="Keep only the first N encoder layers.")
@click.option("--epochs", type=float, default=None, help="Fine-tuning epochs (v1 and runs).")
@click.option(
    "--max-length",
    type=MaxLength(),
    default="auto",
    show_default=True,
    help="Tokens per text for v1 (runs keep v1's): 'auto' picks 64/128/256/512 from the bootstrap rows.",
)
@click.option("--limit", type=int, default=None, help="Replay at most N rows after the bootstrap.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--realtime", is_flag=True, help="The scheduler checks on its own clock; rows go at --rate per second."
)
@click.option("--rate", type=float, default=40.0, show_default=True, help="Rows per second with --realtime.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("replay-out"), show_default=True)
@handle_errors
def replay(
    data_path: Path,
    base_model: str,
    num_hidden_layers: int | None,
    epochs: float | None,
    max_length: int | str,
    **options: Any,
) -> None:
    """Replay a labeled file through a fresh Driftline (service + scheduler in OUT/workspace): the first
    rows train version 1, the rest go to /predict in order, labels follow --label-delay rows later.
    Writes OUT/metrics.json, OUT/timeline.png and OUT/index.html."""
    from driftline.session import SessionConfig, run_session

    train: dict[str, Any] = {"base_model": base_model, "max_length": max_length}
    if num_hidden_layers is not None:
        train["num_hidden_layers"] = num_hidden_layers
    if epochs is not None:
        train["epochs"] = epochs
    quiet_training_logs()
    config = SessionConfig(data=data_path, train=train, **options)
    run_session(config, say=lambda line: click.echo(line))


# --- demo ---------------------------------------------------------------------------------------


@main.command()
@click.option("--rows-per-domain", type=int, default=None, help="Rows replayed from each drifted domain.")
@click.option("--bootstrap-rows", type=int, default=None, help="Training rows for v1.")
@click.option("--rate", type=float, default=None, help="Rows per second sent to /predict.")
@click.option(
    "--search/--no-search",
    default=False,
    show_default=True,
    help="v1 and each run search their training recipe (several times longer); off: one recipe each.",
)
@handle_errors
def demo(rows_per_domain: int | None, bootstrap_rows: int | None, rate: float | None, search: bool) -> None:
    """The whole loop in a fresh workspace (./.driftline/demo): bootstrap v1 on movie reviews, serve it,
    replay amazon -> tweets -> NYT sentences over HTTP with late labels, let the scheduler detect drift,
    retrain, gate and promote; then print a summary and write a timeline and an index of every report."""
    import dataclasses

    from driftline.demo import DemoConfig, run_demo

    overrides: dict[str, Any] = {
        "rows_per_domain": rows_per_domain,
        "bootstrap_rows": bootstrap_rows,
        "rate": rate,
        "search": search,
    }
    config = dataclasses.replace(DemoConfig(), **{k: v for k, v in overrides.items() if v is not None})
    quiet_training_logs()
    run_demo(get_settings().home, config, say=lambda line: click.echo(line))
