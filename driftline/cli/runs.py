"""Drift checks and retraining: one check now (``check``), queued runs and promotion decisions
(``retrain``, ``runs``, ``reports``) and the audited champion moves (``promote``, ``rollback``,
``approve``, ``reject``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from driftline.cli.common import actor, handle_errors, main, open_artifacts, open_registry
from registry.entities import as_dict
from registry.settings import get_settings

if TYPE_CHECKING:
    from monitor.job import MonitorConfig

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
    from monitor.job import run_drift_check

    settings = get_settings()
    record = run_drift_check(
        open_registry(settings),
        open_artifacts(settings),
        settings.model_name,
        check_config(window_size),
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


def check_config(window_size: int) -> MonitorConfig:
    """The check's config from the ``DRIFTLINE_*`` monitor settings, as the scheduler builds its own;
    ``--window`` replaces the window size only when given (its default is the setting's default)."""
    from monitor.settings import MonitorSettings

    given = click.get_current_context().get_parameter_source("window_size") != ParameterSource.DEFAULT
    return MonitorSettings().monitor_config(window_size=window_size if given else None)


# --- runs, decisions, alias moves ------------------------------------------------------------------


@main.command()
@click.option("--reason", default="manual retrain", show_default=True)
@click.option(
    "--mode",
    type=click.Choice(["auto", "manual"]),
    default="auto",
    show_default=True,
    help="manual: a passing challenger waits for `driftline approve`.",
)
@click.option(
    "--search/--no-search",
    default=None,
    help="Search the run's training recipe, or train one recipe [default: the run process's DRIFTLINE_SEARCH].",
)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def retrain(reason: str, mode: str, search: bool | None, as_json: bool) -> None:
    """Queue a manual retraining run (the scheduler's dispatcher starts it)."""
    from contracts import RunSpec
    from registry.entities import RunTrigger

    settings = get_settings()
    registry = open_registry(settings)
    registry.get_model(settings.model_name)
    values: dict[str, Any] = {"reason": reason, "mode": mode, "requested_by": actor()}
    if search is not None:
        values["search"] = {"enabled": search}
    spec = RunSpec.model_validate(values)
    run = registry.create_run(settings.model_name, trigger=RunTrigger.MANUAL, config=spec.to_record())
    click.echo(json.dumps(as_dict(run), indent=1) if as_json else f"queued run {run.id} ({mode})")


@main.command()
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def runs(limit: int, as_json: bool) -> None:
    """List retraining runs, newest first."""
    registry = open_registry(get_settings())
    items = registry.list_runs(limit=limit)
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
        for line in _search_lines(registry, r):
            click.echo(f"          {line}")
    if not items:
        click.echo("no runs yet")


def _search_lines(registry: Any, run: Any) -> list[str]:
    """The recipe search of the run's version in a line or two (none when it made no version)."""
    from registry.errors import NotFoundError
    from retrain.search_records import describe

    if run.candidate_version is None:
        return []
    try:
        version = registry.get_version(run.model_name, run.candidate_version)
    except NotFoundError:
        return []
    summary = (version.metrics.get("train") or {}).get("search")
    return describe(summary) if summary else []


@main.command()
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def reports(limit: int, as_json: bool) -> None:
    """List promotion decisions with their reasons, newest first."""
    items = open_registry(get_settings()).list_decisions(limit=limit)
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
    event = open_registry(settings).set_alias(
        settings.model_name, "champion", version, actor=actor(), reason=reason
    )
    click.echo(f"{event.model_name}/champion: v{event.from_version} -> v{event.to_version}")


@main.command()
@click.option("--reason", required=True)
@handle_errors
def rollback(reason: str) -> None:
    """Point champion back to where its last move came from."""
    settings = get_settings()
    event = open_registry(settings).rollback(settings.model_name, actor=actor(), reason=reason)
    click.echo(f"{event.model_name}/champion: v{event.from_version} -> v{event.to_version}")


def _review(decision_id: int, reason: str, approve: bool) -> None:
    d = open_registry(get_settings()).review_decision(
        decision_id, approve=approve, reviewer=actor(), reason=reason
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
