"""The records of models: the database schema (``db``), the demo data (``data``), a first model
(``bootstrap``), its versions (``models``) and the log of alias moves (``audit``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from contracts.search import BOOTSTRAP_TRIALS
from driftline.cli.common import handle_errors, main, open_artifacts, open_registry
from driftline.cli.options import train_options
from registry.entities import as_dict
from registry.errors import DriftlineError, ErrorCode
from registry.settings import get_settings

# --- db -----------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema: upgrade, show the current revision."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@handle_errors
def db_upgrade(revision: str) -> None:
    """Bring the database to the latest schema (or to --revision)."""
    from registry.db import current_revision, make_engine, upgrade

    settings = get_settings()
    engine = make_engine(settings.database_url)
    before = current_revision(engine)
    upgrade(engine, revision)
    click.echo(f"database schema: {before or 'empty'} -> {current_revision(engine)}")


@db.command("current")
@handle_errors
def db_current() -> None:
    """Print the database's schema revision and the one this code needs."""
    from registry.db import current_revision, head_revision, make_engine

    engine = make_engine(get_settings().database_url)
    click.echo(f"current: {current_revision(engine) or 'none'}  required: {head_revision()}")


# --- data -----------------------------------------------------------------------------------------


@main.group()
def data() -> None:
    """Data sets: fetch the demo data."""


@data.command("fetch-demo")
@handle_errors
def data_fetch_demo() -> None:
    """Download the VADER sentences (by package name) and write them as CSV; print its path."""
    from driftline.demo_data import fetch_vader

    cache_dir = get_settings().cache_dir
    assert cache_dir is not None  # Settings fills it from home
    click.echo(fetch_vader(cache_dir / "demo"))


# --- bootstrap ----------------------------------------------------------------------------------


@main.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path),
    required=True,
    help="CSV / TSV / JSONL / Parquet file of labeled text.",
)
@click.option("--text-col", required=True)
@click.option("--label-col", required=True)
@click.option("--domain-col", default=None)
@click.option("--time-col", default=None, help="If given, the latest rows are held out.")
@click.option("--domain", "domains", multiple=True, help="Keep only rows of this domain (repeatable).")
@click.option(
    "--labels",
    "label_set",
    default=None,
    help="Comma-separated label set; rows with other labels are refused.",
)
@click.option(
    "--model-name", default=None, help="Registry model name [default: DRIFTLINE_MODEL_NAME or 'sentiment']."
)
@click.option("--force", is_flag=True, help="Register a new champion even if the model has one.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--search/--no-search",
    default=None,
    help="Search the training recipe (several trials, the best on validation rows kept) "
    "[default: DRIFTLINE_SEARCH, true]; --no-search trains the given recipe once.",
)
@click.option(
    "--search-trials", type=click.IntRange(1, 500), default=BOOTSTRAP_TRIALS, show_default=True, help="Trials at most."
)
@click.option(
    "--search-budget",
    type=click.FloatRange(min=1),
    default=None,
    help="Wall-clock cap of the search in seconds [default: 5x the first trial's time, at least 60 s].",
)
@click.option(
    "--search-space",
    default=None,
    help='The search space as JSON, narrowing or widening the defaults, e.g. \'{"learning_rate": [2e-5, 1e-4]}\'.',
)
@train_options
@handle_errors
def bootstrap(
    data_path: Path,
    text_col: str,
    label_col: str,
    domain_col: str | None,
    time_col: str | None,
    domains: tuple[str, ...],
    label_set: str | None,
    model_name: str | None,
    force: bool,
    as_json: bool,
    search: bool | None,
    search_trials: int,
    search_budget: float | None,
    search_space: str | None,
    **train: Any,
) -> None:
    """Fine-tune a first model on labeled data and make it the champion."""
    from contracts.train import TrainConfig
    from retrain.bootstrap import BootstrapRequest
    from retrain.bootstrap import bootstrap as run_bootstrap
    from retrain.data import ColumnSpec

    settings = get_settings()
    request = BootstrapRequest(
        data=data_path,
        columns=ColumnSpec(text=text_col, label=label_col, time=time_col, domain=domain_col),
        train=TrainConfig(**train),
        model_name=model_name or settings.model_name,
        domains=domains,
        labels=_parse_labels(label_set),
        force=force,
        search=_search_config(search if search is not None else settings.search, search_trials, search_budget, search_space),
    )
    registry = open_registry(settings)
    assert settings.cache_dir is not None  # Settings fills it from home
    result = run_bootstrap(
        request, registry, open_artifacts(settings), cache_dir=settings.cache_dir / "datasets"
    )
    if result.length_choice is not None and not as_json:
        click.echo(result.length_choice.describe())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "version": as_dict(result.version),
                    "run_id": result.run_id,
                    "seconds": round(result.seconds, 1),
                    "search": result.search,
                },
                indent=1,
            )
        )
        return
    _print_bootstrap(result)


def _search_config(enabled: bool, trials: int, budget: float | None, space: str | None) -> Any:
    """The bootstrap's search settings; a bad ``--search-space`` is refused naming the field."""
    from pydantic import ValidationError

    from contracts.run import describe_errors
    from contracts.search import SearchConfig, SearchSpace

    try:
        parsed = SearchSpace.model_validate_json(space) if space else SearchSpace()
    except ValidationError as exc:
        raise DriftlineError(
            f"--search-space: {describe_errors(exc.errors())}", code=ErrorCode.INVALID_INPUT
        ) from None
    return SearchConfig(enabled=enabled, max_trials=trials, budget_s=budget, space=parsed)


def _parse_labels(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    labels = tuple(v.strip() for v in value.split(",") if v.strip())
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise DriftlineError(
            f"--labels {value!r}: give at least 2 distinct labels", code=ErrorCode.INVALID_INPUT
        )
    return labels


def _print_bootstrap(result: Any) -> None:
    v, m = result.version, result.metrics
    click.echo("")
    click.echo(
        f"{v.model_name} v{v.version} is the champion (run {result.run_id}, {result.seconds:.0f} s; "
        f"{result.n_train} training rows, {m['train']['examples_per_second']:.1f} examples/s)"
    )
    click.echo(_metrics_table(m))
    if result.search:
        from retrain.search_records import describe

        for line in describe(result.search):
            click.echo(line)
    from retrain.quality import warning_lines

    for line in warning_lines(m.get("quality") or {}):
        click.echo(line)


def _metrics_table(m: dict[str, Any]) -> str:
    lines = [
        f"held-out: {m['n']} rows   accuracy {m['accuracy']:.3f}   macro-F1 {m['macro_f1']:.3f}   "
        f"ECE {m['ece']:.3f}",
        f"  {'class':<12}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}",
    ]
    for label, c in m["per_class"].items():
        lines.append(
            f"  {label:<12}{c['precision']:>10.3f}{c['recall']:>8.3f}{c['f1']:>8.3f}{c['support']:>9d}"
        )
    return "\n".join(lines)


# --- models and audit -------------------------------------------------------------------------------


@main.command()
@click.option("--name", default=None, help="Only this model.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def models(name: str | None, as_json: bool) -> None:
    """List model versions with their aliases and held-out metrics."""
    registry = open_registry(get_settings())
    names = [name] if name else [m.name for m in registry.list_models()]
    rows: list[dict[str, Any]] = []
    for model_name in names:
        aliases: dict[int, list[str]] = {}
        for alias in registry.list_aliases(model_name):
            aliases.setdefault(alias.version, []).append(alias.alias)
        for v in registry.list_versions(model_name):
            rows.append(
                {
                    "name": v.model_name,
                    "version": v.version,
                    "aliases": sorted(aliases.get(v.version, [])),
                    "metrics": v.metrics,
                    "labels": list(v.labels),
                    "base_model": v.base_model,
                    "parent_version": v.parent_version,
                    "artifact_sha256": v.artifact_sha256,
                    "created_at": v.created_at.isoformat(),
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(
            "no models yet: create one with `driftline bootstrap --data FILE --text-col C --label-col C`"
        )
        return
    click.echo(f"{'NAME':<16}{'VERSION':>8}  {'ALIASES':<22}{'ACCURACY':>9}{'MACRO-F1':>9}  CREATED")
    for r in rows:
        metrics = r["metrics"]
        click.echo(
            f"{r['name']:<16}{r['version']:>8}  {','.join(r['aliases']) or '-':<22}"
            f"{metrics.get('accuracy', float('nan')):>9.3f}{metrics.get('macro_f1', float('nan')):>9.3f}  "
            f"{r['created_at'][:19]}"
        )


@main.command()
@click.option("--name", default=None, help="Only this model.")
@click.option("--alias", default=None, help="Only this alias.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def audit(name: str | None, alias: str | None, limit: int, as_json: bool) -> None:
    """Show the append-only log of alias moves (promotions, rollbacks), newest first."""
    registry = open_registry(get_settings())
    events = registry.list_alias_events(name, alias, limit=limit)
    if as_json:
        click.echo(json.dumps([as_dict(ev) for ev in events], indent=1))
        return
    if not events:
        click.echo("no alias events yet")
        return
    for ev in events:
        frm = f"v{ev.from_version}" if ev.from_version is not None else "-"
        click.echo(
            f"{ev.created_at.isoformat()[:19]}  {ev.model_name}/{ev.alias}: {frm} -> v{ev.to_version}  "
            f"by {ev.actor}: {ev.reason}"
        )
