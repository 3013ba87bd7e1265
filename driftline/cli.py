"""``driftline``: the command line. Thin: parses flags, calls the packages, prints results."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import typing
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, Literal

import click

from driftline.processes import DEFAULT_PORT
from driftline.settings import warn_unknown_settings
from registry.entities import Role, as_dict
from registry.errors import DriftlineError, ErrorCode
from registry.labelqueue import LEASE as QUEUE_LEASE
from registry.labelqueue import MAX_LIMIT as MAX_QUEUE_LIMIT
from registry.labelqueue import RANDOM_SHARE as QUEUE_RANDOM_SHARE
from registry.offline import OFFLINE_ENV, go_offline  # noqa: F401  (OFFLINE_ENV: tests read it here)
from registry.permissions import restrict_umask, secure_home
from registry.settings import Settings, get_settings
from retrain.config import AUTO, TrainConfig

logger = logging.getLogger("driftline")

EXIT_INVALID = 2
EXIT_FAILED = 1


def _setup(verbose: bool) -> None:
    get_settings.cache_clear()  # settings are read once per command, from the environment it runs in
    restrict_umask()  # files 0600, folders 0700: see registry/permissions.py
    go_offline()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "fsspec", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warn_unknown_settings()


QUEUE_LEASE_HOURS = QUEUE_LEASE.total_seconds() / 3600


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Driftline errors become one line on stderr and a non-zero exit; nothing else is swallowed."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DriftlineError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(
                EXIT_INVALID
                if exc.code in (ErrorCode.INVALID_INPUT, ErrorCode.ALREADY_EXISTS)
                else EXIT_FAILED
            )

    return wrapper


def _open_registry(settings: Settings):  # type: ignore[no-untyped-def]
    from registry.store import Registry

    return Registry.open(settings)


def _artifacts(settings: Settings):  # type: ignore[no-untyped-def]
    from registry.artifacts import artifact_store

    return artifact_store(settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Driftline: a served text classifier that retrains itself when its data drifts."""
    _setup(verbose)


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

    click.echo(fetch_vader(get_settings().cache_dir / "demo"))


# --- bootstrap ----------------------------------------------------------------------------------


class _MaxLength(click.ParamType):
    """``--max-length``: ``auto`` or a whole number of tokens."""

    name = "auto|INTEGER"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or str(value).strip().lower() == AUTO:
            return value if isinstance(value, int) else AUTO
        try:
            return int(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor an integer", param, ctx)


def option_type(hint: Any) -> Any:
    """The click type of a field's type: its own for str, int and float (``X | None`` as ``X``), and
    :class:`_MaxLength` for ``int | Literal["auto"]``."""
    kinds = set(typing.get_args(hint)) - {type(None)} or {hint}
    if kinds == {int, Literal[AUTO]}:
        return _MaxLength()
    if len(kinds) == 1 and (kind := kinds.pop()) in (str, int, float):
        return kind
    raise TypeError(f"TrainConfig: no command-line type for {hint!r}: give the field option=False")


def field_option(field: dataclasses.Field[Any], hint: Any) -> Callable[[Any], Any]:
    """``--<field-name>``, from the field's metadata: ``help``, ``choices``, ``option_default``."""
    default = field.metadata.get("option_default", field.default)
    choices = field.metadata.get("choices")
    return click.option(
        "--" + field.name.replace("_", "-"),
        type=click.Choice(list(choices)) if choices else option_type(hint),
        default=default,
        show_default=None if default is None else True,
        help=field.metadata.get("help"),
    )


def _train_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command with an option for each field of TrainConfig the command line takes."""
    hints = typing.get_type_hints(TrainConfig)
    for field in reversed(dataclasses.fields(TrainConfig)):  # decorators apply bottom-up
        if field.metadata.get("option", True):
            fn = field_option(field, hints[field.name])(fn)
    return fn


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
@_train_options
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
    **train: Any,
) -> None:
    """Fine-tune a first model on labeled data and make it the champion."""
    from retrain.bootstrap import BootstrapRequest
    from retrain.bootstrap import bootstrap as run_bootstrap
    from retrain.config import TrainConfig
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
    )
    registry = _open_registry(settings)
    result = run_bootstrap(request, registry, _artifacts(settings), cache_dir=settings.cache_dir / "datasets")
    if result.length_choice is not None and not as_json:
        click.echo(result.length_choice.describe())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "version": as_dict(result.version),
                    "run_id": result.run_id,
                    "seconds": round(result.seconds, 1),
                },
                indent=1,
            )
        )
        return
    _print_bootstrap(result)


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
    registry = _open_registry(get_settings())
    names = [name] if name else [m.name for m in registry.list_models()]
    rows = []
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
    registry = _open_registry(get_settings())
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


# --- drift check ----------------------------------------------------------------------------------


@main.command()
@click.option(
    "--window",
    "window_size",
    type=int,
    default=500,
    show_default=True,
    help="Latest logged predictions of the champion to compare with its reference.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the check as JSON.")
@handle_errors
def check(window_size: int, as_json: bool) -> None:
    """Run one drift check now: print its scores, decision and reason (and queue a run if it says so)."""
    from monitor.job import MonitorConfig, run_drift_check

    settings = get_settings()
    record = run_drift_check(
        _open_registry(settings),
        _artifacts(settings),
        settings.model_name,
        MonitorConfig(window_size=window_size),
    )
    if as_json:
        out = {"check": as_dict(record.check), "run": as_dict(record.run) if record.run else None}
        click.echo(json.dumps(out, indent=1, default=str))
        return
    c = record.check
    click.echo(
        f"drift check {c.id}: {c.model_name} v{c.model_version}, {c.n_current} logged predictions vs "
        f"{c.n_reference} reference rows"
    )
    for name, value in c.scores.items():
        if not isinstance(value, dict) or "threshold" not in value:  # not a signal: policy, window, estimates
            continue
        score = value.get("score")
        shown = "n/a" if score is None else f"{score:.3f}"
        click.echo(
            f"  {name:<26}{shown:>8}  threshold {value['threshold']:.3f}  {'DRIFT' if value['drifted'] else ''}"
        )
    estimates = c.scores.get("accuracy_estimates")
    if estimates:
        shown = ", ".join(
            f"{label} {e['value']:.3f} ({e['low']:.3f} to {e['high']:.3f})"
            for label, e in (("expected", estimates["expected_accuracy"]), ("ATC", estimates["atc"]))
            if e.get("value") is not None
        )
        verdict = "they DISAGREE: calibration broke" if estimates.get("disagree") else "they agree"
        click.echo(f"  accuracy without labels: {shown}; {verdict}")
    facts = c.scores.get("window") or {}
    if facts.get("truncated"):
        click.echo(
            f"  {facts['truncated']} of {facts['rows']} texts ({facts['truncated_share']:.0%}) were longer than "
            "the model's max_length tokens: it read their head"
        )
    click.echo(f"decision: {c.decision}: {c.reason}")
    if record.run is not None:
        click.echo(f"queued run {record.run.id}")
    click.echo(f"report: {settings.artifact_root}/reports/{c.report_uri}")


@main.command()
@handle_errors
def scheduler() -> None:
    """Run the scheduler process: drift checks on an interval, reaping of dead runs (one leader at a time)."""
    from monitor.scheduler import MonitorScheduler
    from monitor.settings import MonitorSettings

    settings = get_settings()
    secure_home(settings)
    runner = MonitorScheduler(
        _open_registry(settings), _artifacts(settings), settings.model_name, MonitorSettings()
    )
    # SIGTERM (`driftline up` stopping it, or its parent-death signal) stops it as Ctrl-C does: the
    # leader lease is released, and the next scheduler need not wait for it to expire
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        runner.start(blocking=True)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        runner.stop()


# --- runs, decisions, alias moves ------------------------------------------------------------------


def _actor() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


@main.command()
@click.option("--reason", default="manual retrain", show_default=True)
@click.option(
    "--mode",
    type=click.Choice(["auto", "manual"]),
    default="auto",
    show_default=True,
    help="manual: a passing challenger waits for `driftline approve`.",
)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def retrain(reason: str, mode: str, as_json: bool) -> None:
    """Queue a manual retraining run (the scheduler's dispatcher starts it)."""
    from registry.entities import RunTrigger

    settings = get_settings()
    registry = _open_registry(settings)
    registry.get_model(settings.model_name)
    run = registry.create_run(
        settings.model_name,
        trigger=RunTrigger.MANUAL,
        config={"reason": reason, "mode": mode, "requested_by": _actor()},
    )
    click.echo(json.dumps(as_dict(run), indent=1) if as_json else f"queued run {run.id} ({mode})")


@main.command()
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def runs(limit: int, as_json: bool) -> None:
    """List retraining runs, newest first."""
    items = _open_registry(get_settings()).list_runs(limit=limit)
    if as_json:
        click.echo(json.dumps([as_dict(r) for r in items], indent=1))
        return
    for r in items:
        made = f"v{r.candidate_version}" if r.candidate_version else "-"
        retry = f"  retry not before {r.not_before.isoformat()[:19]}" if r.not_before else ""
        click.echo(
            f"run {r.id:>4}  {r.status.value:<10} {r.trigger.value:<9} {made:<5} attempts {r.attempts}  "
            f"{r.created_at.isoformat()[:19]}  {r.error or ''}{retry}"
        )
    if not items:
        click.echo("no runs yet")


@main.command()
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def reports(limit: int, as_json: bool) -> None:
    """List promotion decisions with their reasons, newest first."""
    items = _open_registry(get_settings()).list_decisions(limit=limit)
    if as_json:
        click.echo(json.dumps([as_dict(d) for d in items], indent=1))
        return
    for d in items:
        click.echo(
            f"decision {d.id}: {d.model_name} v{d.candidate_version} vs v{d.incumbent_version}: "
            f"{d.status.value} (run {d.run_id})"
        )
        for reason in d.reasons:
            click.echo(f"  - {reason}")
    if not items:
        click.echo("no promotion decisions yet")


@main.command()
@click.argument("version", type=int)
@click.option("--reason", required=True)
@handle_errors
def promote(version: int, reason: str) -> None:
    """Make VERSION the champion (an audited alias move)."""
    settings = get_settings()
    event = _open_registry(settings).set_alias(
        settings.model_name, "champion", version, actor=_actor(), reason=reason
    )
    click.echo(f"{event.model_name}/champion: v{event.from_version} -> v{event.to_version}")


@main.command()
@click.option("--reason", required=True)
@handle_errors
def rollback(reason: str) -> None:
    """Point champion back to where its last move came from."""
    settings = get_settings()
    event = _open_registry(settings).rollback(settings.model_name, actor=_actor(), reason=reason)
    click.echo(f"{event.model_name}/champion: v{event.from_version} -> v{event.to_version}")


def _review(decision_id: int, reason: str, approve: bool) -> None:
    d = _open_registry(get_settings()).review_decision(
        decision_id, approve=approve, reviewer=_actor(), reason=reason
    )
    click.echo(f"decision {d.id}: {d.status.value}")


@main.command()
@click.argument("decision_id", type=int)
@click.option("--reason", required=True)
@handle_errors
def approve(decision_id: int, reason: str) -> None:
    """Approve a promotion waiting for approval (the champion moves)."""
    _review(decision_id, reason, True)


@main.command()
@click.argument("decision_id", type=int)
@click.option("--reason", required=True)
@handle_errors
def reject(decision_id: int, reason: str) -> None:
    """Refuse a promotion waiting for approval."""
    _review(decision_id, reason, False)


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
    from registry.entities import CHAMPION

    settings = get_settings()
    registry = _open_registry(settings)
    handout = registry.hand_out_labels(
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
            _open_registry(settings), path, model_name=settings.model_name, source=source
        )
        click.echo(f"imported {count} labels from {path}")
        return
    if label_col is None:
        raise click.UsageError("--label-col is required with --format table")
    count = import_labels(
        _open_registry(settings),
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
        _open_registry(settings),
        out,
        fmt=fmt,
        since=parse_time(since, "--since"),
        until=parse_time(until, "--until"),
        model_name=model_name,
    )
    click.echo(f"exported {rows} predictions to {out}")


# --- tokens -------------------------------------------------------------------------------------


@main.group()
def tokens() -> None:
    """Named API tokens with roles (reader < labeler < reviewer < admin). The command line talks to the
    database directly, so it acts as admin; tokens it makes are recorded as created by 'cli'."""


@tokens.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    required=True,
    help="reader: GETs where reads are closed; labeler: /feedback; reviewer: promote, rollback, approve, "
    "reject, runs, checks; admin: everything.",
)
@handle_errors
def tokens_create(name: str, role: str) -> None:
    """Create the token NAME (its name is the actor recorded on what it does) and print its secret once."""
    from registry.tokens import TokenStore

    token, secret = TokenStore(_open_registry(get_settings())).create(name, role, created_by="cli")
    click.echo(f"created token '{token.name}' with role {token.role.value}; its secret:")
    click.echo(secret)
    click.echo(
        "store it now: it is not shown again (only its hash is kept). Send it as "
        "'Authorization: Bearer <secret>'."
    )


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def tokens_list(as_json: bool) -> None:
    """List the tokens (never their secrets), oldest first, revoked ones included."""
    from registry.tokens import TokenStore

    items = TokenStore(_open_registry(get_settings())).list()
    if as_json:
        click.echo(json.dumps([as_dict(t) for t in items], indent=1))
        return
    if not items:
        click.echo("no tokens yet: create one with `driftline tokens create NAME --role reviewer`")
        return
    click.echo(f"{'NAME':<24}{'ROLE':<10}{'CREATED':<21}{'BY':<12}REVOKED")
    for t in items:
        revoked = t.revoked_at.isoformat()[:19] if t.revoked_at else "-"
        click.echo(
            f"{t.name:<24}{t.role.value:<10}{t.created_at.isoformat()[:19]:<21}{t.created_by:<12}{revoked}"
        )


@tokens.command("revoke")
@click.argument("name")
@handle_errors
def tokens_revoke(name: str) -> None:
    """Revoke the token NAME: a running service refuses it within a few seconds (its lookup cache)."""
    from registry.tokens import CACHE_TTL_S, TokenStore

    token = TokenStore(_open_registry(get_settings())).revoke(name)
    click.echo(
        f"revoked token '{token.name}' (role {token.role.value}); a running service refuses it within "
        f"{CACHE_TTL_S:g} s"
    )


# --- up -----------------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--no-scheduler", is_flag=True, help="Serve only; run `driftline scheduler` elsewhere.")
@handle_errors
def up(host: str, port: int, no_scheduler: bool) -> None:
    """Serve the registry's champion and run the scheduler, on embedded defaults (SQLite + local artifacts
    under ./.driftline).

    Bootstraps nothing: it serves what the registry holds, and picks up a champion created later.
    """
    from driftline.processes import run_up

    sys.exit(run_up(get_settings(), host=host, port=port, scheduler=not no_scheduler))


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
    type=_MaxLength(),
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
    for noisy in ("retrain", "registry", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = SessionConfig(data=data_path, train=train, **options)
    run_session(config, say=lambda line: click.echo(line))


# --- demo ---------------------------------------------------------------------------------------


@main.command()
@click.option("--rows-per-domain", type=int, default=None, help="Rows replayed from each drifted domain.")
@click.option("--bootstrap-rows", type=int, default=None, help="Training rows for v1.")
@click.option("--rate", type=float, default=None, help="Rows per second sent to /predict.")
@handle_errors
def demo(rows_per_domain: int | None, bootstrap_rows: int | None, rate: float | None) -> None:
    """The whole loop in a fresh workspace (./.driftline/demo): bootstrap v1 on movie reviews, serve it,
    replay amazon -> tweets -> NYT sentences over HTTP with late labels, let the scheduler detect drift,
    retrain, gate and promote; then print a summary and write a timeline and an index of every report."""
    import dataclasses

    from driftline.demo import DemoConfig, run_demo

    overrides = {"rows_per_domain": rows_per_domain, "bootstrap_rows": bootstrap_rows, "rate": rate}
    config = dataclasses.replace(DemoConfig(), **{k: v for k, v in overrides.items() if v is not None})
    for noisy in ("retrain", "registry", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run_demo(get_settings().home, config, say=lambda line: click.echo(line))


if __name__ == "__main__":  # pragma: no cover
    main()
