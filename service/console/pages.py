"""The console's pages: overview, versions with metric charts, the alias timeline with "what served at
T" and rollback, drift checks, runs, and the promotion review with approve / reject.

Every page reads the registry through the same store as the control API; every write goes through the
same store method as its API route, with the signed-in token's name as the actor. Reads follow
``DRIFTLINE_OPEN_READS``; writes need a reviewer's session and the form's CSRF token. What a page works out
from the records (the guard's state, a rollback's plan, a check's signals) is in ``service.console.views``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from common.templating import environment
from registry import entities as e
from registry.entities import CHAMPION, DecisionStatus, Role
from registry.errors import DriftlineError, ErrorCode, InvalidInputError, NotFoundError
from registry.settings import get_settings
from registry.store import Registry
from service.api import reports
from service.api.deps import ArtifactsDep, RegistryDep
from service.api.params import Id
from service.console import auth
from service.console.charts import chartable_metrics, metric_svg
from service.console.views import (
    guard_state,
    is_number,
    is_signal,
    metric_changes,
    parse_time,
    rollback_plan,
    seconds_between,
    served_at,
    signals_of,
)

router = APIRouter(include_in_schema=False)  # pages, not API: kept out of the OpenAPI documents

MAX_REASON_CHARS = 2000
ReasonField = Annotated[str, Form(max_length=MAX_REASON_CHARS)]
CsrfField = Annotated[str, Form(alias=auth.CSRF_FIELD, max_length=200)]

# Console pages are markup and images of the console's own; report files (Evidently's pages run script)
# get a sandbox of their own instead (see ``report_file``).
PAGE_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
REPORT_POLICY = "sandbox allow-scripts; frame-ancestors 'self'"


def base_path(request: Request) -> str:
    """Where the console is mounted (``/ui`` in the service), for links."""
    return request.scope.get("root_path", "").rstrip("/")


def page(
    request: Request, registry: Registry, template: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """Render a console template with what every page needs: links, who is signed in, the CSRF token."""
    reviewer = auth.current_reviewer(request, registry)
    return render_page(
        request,
        template,
        status,
        reviewer=reviewer,
        may_decide=reviewer is not None and reviewer.may(Role.REVIEWER),
        csrf=auth.csrf_token(request),
        csrf_field=auth.CSRF_FIELD,
        flash=request.session.pop("flash", None),
        open_reads=get_settings().open_reads,
        q=quote,
        **context,
    )


def render_page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A console template rendered with ``context`` (escaped) and the console's links, under its policy;
    no registry read: what :func:`page` adds to it needs one."""
    body = environment("service.console").get_template(template).render(base=base_path(request), **context)
    return HTMLResponse(body, status_code=status, headers={"Content-Security-Policy": PAGE_POLICY})


def may_read(request: Request, registry: Registry) -> None:
    """With ``DRIFTLINE_OPEN_READS=false`` a page needs a session of role reader or above."""
    if not get_settings().open_reads:
        auth.require(request, registry, Role.READER)


def redirect(request: Request, path: str, flash: str | None = None) -> RedirectResponse:
    if flash:
        request.session["flash"] = flash
    return RedirectResponse(base_path(request) + path, status_code=303)


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidInputError("a reason is required: say why, for the audit log", field="reason")
    return reason


# --- sign-in ---------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, registry: RegistryDep, next: str = Query("/", max_length=500)
) -> HTMLResponse:
    return page(request, registry, "login.html.j2", next=_local(next))


@router.post("/login")
def login(
    request: Request,
    registry: RegistryDep,
    token: Annotated[str, Form(max_length=500)],
    csrf: CsrfField = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    auth.check_csrf(request, csrf)
    try:
        reviewer = auth.sign_in(request, registry, token)
    except DriftlineError as exc:
        return page(request, registry, "login.html.j2", status=401, next=_local(next), error=exc.message)
    return redirect(request, _local(next), f"signed in as {reviewer.name} ({reviewer.role.value})")


@router.post("/logout")
def logout(request: Request, registry: RegistryDep, csrf: CsrfField = "") -> Response:
    auth.check_csrf(request, csrf)
    auth.sign_out(request)
    return redirect(request, "/", "signed out")


def _local(path: str) -> str:
    """A path inside the console to return to after sign-in (never another site)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path or any(ord(c) < 32 for c in path):
        return "/"
    return path


# --- overview --------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, registry: RegistryDep) -> HTMLResponse:
    may_read(request, registry)
    pending_checks = registry.list_check_requests(e.CheckRequestStatus.PENDING, limit=1000)
    models = []
    for model in registry.list_models():
        alias = registry.get_alias(model.name, CHAMPION)
        champion = registry.get_version(model.name, alias.version) if alias else None
        runs = registry.list_runs(model.name, limit=200)
        last_check = next(iter(registry.list_drift_checks(model.name, limit=1)), None)
        models.append(
            {
                "model": model,
                "alias": alias,
                "champion": champion,
                "check": last_check,
                "signals": signals_of(last_check) if last_check else [],
                "pending": [
                    d
                    for d in registry.list_decisions(model.name, limit=200)
                    if d.status is DecisionStatus.PENDING_APPROVAL
                ],
                "active_runs": [r for r in runs if not r.status.finished],
                "guard": guard_state(registry, model.name),
                "labels_since": registry.count_labels(model.name, since=champion.created_at)
                if champion
                else None,
                "predictions": registry.count_predictions(model.name),
                "check_requests": sum(r.model_name == model.name for r in pending_checks),
            }
        )
    return page(request, registry, "overview.html.j2", models=models)


# --- versions --------------------------------------------------------------------------------------


@router.get("/models/{name}", response_class=HTMLResponse)
def versions(request: Request, name: str, registry: RegistryDep) -> HTMLResponse:
    may_read(request, registry)
    registry.get_model(name)
    listed = registry.list_versions(name)
    aliases: dict[int, list[str]] = {}
    for alias in registry.list_aliases(name):
        aliases.setdefault(alias.version, []).append(alias.alias)
    runs = {r.id: r for r in registry.list_runs(name, limit=1000)}
    champion = registry.get_alias(name, CHAMPION)
    return page(
        request,
        registry,
        "versions.html.j2",
        name=name,
        versions=listed,
        aliases=aliases,
        runs=runs,
        champion=champion.version if champion else None,
        metrics=chartable_metrics([v.metrics for v in listed]),
    )


@router.get("/models/{name}/charts/{metric}.svg")
def chart(request: Request, name: str, metric: str, registry: RegistryDep) -> Response:
    may_read(request, registry)
    listed = sorted(registry.list_versions(name), key=lambda v: v.version)
    if metric not in chartable_metrics([v.metrics for v in listed]):
        raise NotFoundError(f"model '{name}' has no metric '{metric[:100]}' to chart", field="metric")
    champion = registry.get_alias(name, CHAMPION)
    svg = metric_svg(
        metric,
        [v.version for v in listed],
        [v.metrics.get(metric) if is_number(v.metrics.get(metric)) else None for v in listed],
        champion.version if champion else None,
    )
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


# --- alias timeline and rollback -------------------------------------------------------------------


@router.get("/models/{name}/timeline", response_class=HTMLResponse)
def timeline(
    request: Request, name: str, registry: RegistryDep, at: str | None = Query(None, max_length=64)
) -> HTMLResponse:
    may_read(request, registry)
    registry.get_model(name)
    events = registry.list_alias_events(name, limit=1000)
    moment = parse_time(at) if at else None
    return page(
        request,
        registry,
        "timeline.html.j2",
        name=name,
        events=events,
        at=at or "",
        moment=moment,
        served=served_at(events, moment) if moment else None,
        rollback=rollback_plan(registry, name),
    )


@router.get("/models/{name}/rollback", response_class=HTMLResponse)
def rollback_preview(request: Request, name: str, registry: RegistryDep) -> HTMLResponse:
    may_read(request, registry)
    registry.get_model(name)
    plan = rollback_plan(registry, name)
    rows = metric_changes(plan) if plan is not None else []
    return page(request, registry, "rollback.html.j2", name=name, plan=plan, rows=rows)


@router.post("/models/{name}/rollback")
def rollback(
    request: Request,
    name: str,
    registry: RegistryDep,
    reason: ReasonField = "",
    expected_version: Annotated[Id | None, Form()] = None,
    csrf: CsrfField = "",
) -> Response:
    reviewer = auth.require(request, registry, Role.REVIEWER)
    auth.check_csrf(request, csrf)
    event = registry.rollback(
        name, actor=reviewer.name, reason=_reason(reason), expected_version=expected_version
    )
    return redirect(
        request,
        f"/models/{quote(name)}/timeline",
        f"rolled back: champion v{event.from_version} -> v{event.to_version}",
    )


# --- drift checks ----------------------------------------------------------------------------------


@router.get("/checks", response_class=HTMLResponse)
def checks(
    request: Request, registry: RegistryDep, model: str | None = Query(None, max_length=100)
) -> HTMLResponse:
    may_read(request, registry)
    listed = registry.list_drift_checks(model, limit=200)
    return page(
        request,
        registry,
        "checks.html.j2",
        checks=listed,
        signals={c.id: signals_of(c) for c in listed},
        model=model,
    )


@router.get("/checks/{check_id}", response_class=HTMLResponse)
def check(request: Request, check_id: Id, registry: RegistryDep) -> HTMLResponse:
    may_read(request, registry)
    found = registry.get_drift_check(check_id)
    queued = [r for r in registry.list_runs(found.model_name, limit=1000) if r.drift_check_id == check_id]
    # the policy's state, the window (the accuracy estimates have their own table)
    details = {k: v for k, v in found.scores.items() if not is_signal(v) and k != "accuracy_estimates"}
    return page(
        request,
        registry,
        "check.html.j2",
        check=found,
        signals=signals_of(found),
        details=details,
        runs=queued,
    )


# --- runs ------------------------------------------------------------------------------------------


@router.get("/runs", response_class=HTMLResponse)
def runs(
    request: Request, registry: RegistryDep, model: str | None = Query(None, max_length=100)
) -> HTMLResponse:
    may_read(request, registry)
    listed = registry.list_runs(model, limit=200)
    decided = {d.run_id: d for d in registry.list_decisions(model, limit=1000) if d.run_id is not None}
    return page(request, registry, "runs.html.j2", runs=listed, decisions=decided, model=model)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run(request: Request, run_id: Id, registry: RegistryDep) -> HTMLResponse:
    may_read(request, registry)
    found = registry.get_run(run_id)
    version = None
    if found.candidate_version is not None:
        try:
            version = registry.get_version(found.model_name, found.candidate_version)
        except NotFoundError:
            version = None
    decisions = [d for d in registry.list_decisions(found.model_name, limit=1000) if d.run_id == run_id]
    counts = (version.config.get("per_class_counts") or {}) if version else {}
    origins = sorted({origin for per in counts.values() for origin in per})
    return page(
        request,
        registry,
        "run.html.j2",
        run=found,
        version=version,
        decisions=decisions,
        counts=counts,
        origins=origins,
        duration=seconds_between(found.started_at, found.finished_at),
        waited=seconds_between(found.created_at, found.started_at),
    )


# --- promotion decisions ---------------------------------------------------------------------------


@router.get("/decisions", response_class=HTMLResponse)
def decisions(
    request: Request, registry: RegistryDep, model: str | None = Query(None, max_length=100)
) -> HTMLResponse:
    may_read(request, registry)
    listed = registry.list_decisions(model, limit=200)
    listed.sort(key=lambda d: (d.status is not DecisionStatus.PENDING_APPROVAL, -d.id))
    return page(request, registry, "decisions.html.j2", decisions=listed, model=model)


def read_report_json(artifacts: Any, report_uri: str | None) -> dict[str, Any] | None:
    """The JSON beside a report page (``runs/3/promotion.html`` -> ``runs/3/promotion.json``), or None."""
    if not report_uri or not report_uri.endswith(".html"):
        return None
    try:
        body = reports.get_report(report_uri[: -len(".html")] + ".json", artifacts).body
        # starlette types the body bytes | memoryview; one built from bytes, as here, keeps them
        found = json.loads(bytes(body))
    except (DriftlineError, ValueError):
        return None
    return found if isinstance(found, dict) else None


@router.get("/decisions/{decision_id}", response_class=HTMLResponse)
def decision(
    request: Request, decision_id: Id, registry: RegistryDep, artifacts: ArtifactsDep
) -> HTMLResponse:
    may_read(request, registry)
    found = registry.get_decision(decision_id)
    run_record = _maybe(registry.get_run, found.run_id)
    evidence = _maybe(registry.get_drift_check, run_record.drift_check_id if run_record else None)
    return page(
        request,
        registry,
        "decision.html.j2",
        decision=found,
        run=run_record,
        evidence=evidence,
        evidence_signals=signals_of(evidence) if evidence else [],
        report=read_report_json(artifacts, found.report_uri),
        pending=found.status is DecisionStatus.PENDING_APPROVAL,
    )


def _maybe(get: Any, key: int | None) -> Any:
    if key is None:
        return None
    try:
        return get(key)
    except NotFoundError:
        return None


def _review(
    request: Request, decision_id: int, registry: Registry, reason: str, csrf: str, approve: bool
) -> Response:
    reviewer = auth.require(request, registry, Role.REVIEWER)
    auth.check_csrf(request, csrf)
    done = registry.review_decision(
        decision_id, approve=approve, reviewer=reviewer.name, reason=_reason(reason)
    )
    said = (
        f"v{done.candidate_version} is champion now"
        if approve
        else f"v{done.candidate_version} stays unpromoted"
    )
    return redirect(
        request, f"/decisions/{decision_id}", f"decision {decision_id} {done.status.value}: {said}"
    )


@router.post("/decisions/{decision_id}/approve")
def approve(
    request: Request, decision_id: Id, registry: RegistryDep, reason: ReasonField = "", csrf: CsrfField = ""
) -> Response:
    return _review(request, decision_id, registry, reason, csrf, approve=True)


@router.post("/decisions/{decision_id}/reject")
def reject(
    request: Request, decision_id: Id, registry: RegistryDep, reason: ReasonField = "", csrf: CsrfField = ""
) -> Response:
    return _review(request, decision_id, registry, reason, csrf, approve=False)


# --- report files ----------------------------------------------------------------------------------


@router.get("/reports/{path:path}")
def report_file(request: Request, path: str, registry: RegistryDep, artifacts: ArtifactsDep) -> Response:
    """A report file (drift report, promotion or guard report), sandboxed: its scripts run in an opaque
    origin that cannot read the console's cookie or pages."""
    may_read(request, registry)
    found = reports.get_report(path, artifacts)
    found.headers["Content-Security-Policy"] = REPORT_POLICY
    return found


ERROR_TITLES = {
    ErrorCode.NOT_FOUND: "Not found",
    ErrorCode.UNAUTHENTICATED: "Sign in needed",
    ErrorCode.PERMISSION_DENIED: "Not allowed",
    ErrorCode.CONFLICT: "Conflict",
    ErrorCode.INVALID_INPUT: "Invalid input",
}
