"""The review console in process (issue 13): every page renders from the records, sign-in gives a signed
HttpOnly SameSite=Strict cookie, approve / reject / rollback need a reviewer's session and the form's CSRF
token and record the token's name, and hostile text in any record is escaped on every page. On SQLite
and (when configured) PostgreSQL; the browser test is tests/e2e/test_console_browser.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from contracts import GateConfig
from registry import entities as e
from registry.artifacts import LocalArtifactStore
from registry.errors import DatabaseError
from registry.orm import AliasEventRow
from registry.store import Registry
from retrain.gate import Comparison, GateResult
from retrain.report import ReportInputs, write_promotion_report
from service.console.pages import guard_state, served_at
from tests.integration.test_registry import spec

XSS = '<script>alert("x")</script><img src=x onerror=alert(1) id=xss>"\'><b id=inj>'


def report_inputs(text: str = "the match went to extra time", label: str = "sports", domain: str = "news"):
    """A small but complete promotion report: a gate result, per-class and per-domain rows, examples."""
    recent = pd.DataFrame(
        {
            "text": [text, "rain all week", "pasta recipe", "a late goal"],
            "label": [label, "weather", "food", "sports"],
            "domain": [domain, "news", None, "news"],
            "champion_pred": ["weather", "weather", "food", "weather"],
            "challenger_pred": [label, "weather", "food", "sports"],
        }
    )
    train = pd.DataFrame({"origin": ["new", "new", "replay"], "label": [label, "weather", "food"]})
    per_class = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    gate = GateResult(
        passed=True,
        reasons=(f"macro-F1 +25.0 pts on 4 recent rows ({XSS})",),
        recent=Comparison(4, 0.5, 0.75, 0.5, 1.0, 0.25, 0.05, 0.4),
        old=None,
        config=GateConfig(),
    )
    return ReportInputs(
        model_name="sentiment",
        run_id=1,
        trigger="drift",
        trigger_detail="embedding drift persisted",
        champion_version=1,
        challenger_version=2,
        status="pending_approval",
        gate=gate,
        counts={"new labels": 3, "replay": 1},
        train=train,
        recent=recent,
        champion_metrics={"per_class": {label: per_class, "weather": per_class}},
        challenger_metrics={"per_class": {label: per_class, "weather": per_class}, "train": {}},
        config={"epochs": 1},
        per_class_counts={label: {"new_train": 1, "replay": 0}},
    )


def add_decision(
    registry: Registry, run_id: int, inputs: ReportInputs, status: e.DecisionStatus
) -> e.PromotionDecision:
    """The decision on v2 against v1 that run ``run_id`` made, with the report at ``runs/<run_id>/``."""
    return registry.add_decision(
        e.NewDecision(
            model_name="sentiment",
            candidate_version=2,
            incumbent_version=1,
            run_id=run_id,
            metrics=inputs.gate.to_dict(),
            passed=True,
            reasons=tuple(inputs.gate.reasons),
            status=status,
            report_uri=f"runs/{run_id}/promotion.html",
        ),
        actor=f"run {run_id}",
    )


def seed(registry: Registry, artifacts: LocalArtifactStore, tmp_path: Path, inputs: ReportInputs) -> dict:
    """v1 champion, v2 candidate of a run queued by a drift check, its pending decision and report."""
    registry.register_version(
        "sentiment",
        spec(1, metrics={"accuracy": 0.6, "macro_f1": 0.5, "n": 40}),
        set_aliases=[e.CHAMPION],
        actor="bootstrap",
        reason="first",
    )
    check, run = registry.add_drift_check(
        e.NewDriftCheck(
            model_name="sentiment",
            model_version=1,
            window_start=datetime(2026, 12, 1, tzinfo=UTC),
            window_end=datetime(2026, 12, 2, tzinfo=UTC),
            reference="abc/reference (40 rows)",
            n_reference=40,
            n_current=150,
            scores={
                "embedding_drift": {"score": 0.81, "threshold": 0.55, "drifted": True, "p_value": 0.001},
                "label_shift": {"score": 0.02, "threshold": 0.1, "drifted": False},
                "window": {"rows": 150, "labeled": 90, "truncated": 0},
                "accuracy_estimates": {
                    "expected_accuracy": {
                        "method": "expected_accuracy",
                        "value": 0.712,
                        "low": 0.681,
                        "high": 0.743,
                        "rows": 150,
                    },
                    "atc": {
                        "method": "atc",
                        "value": 0.52,
                        "low": 0.44,
                        "high": 0.6,
                        "rows": 150,
                        "threshold": 0.634,
                    },
                    "level": 0.95,
                    "disagree": True,
                    "disagree_gap": 0.03,
                },
            },
            drifted=True,
            decision="retrain",
            reason="embedding drift in 2 checks in a row",
            report_uri="drift/1/drift_report.html",
        ),
        queue_run={"reason": "embedding drift in 2 checks in a row"},
    )
    assert run is not None
    registry.register_version(
        "sentiment",
        spec(
            2,
            metrics={
                "accuracy": 0.8,
                "macro_f1": 0.7,
                "n": 40,
                "onnx": {
                    "verified": True,
                    "int8": {"passed": False, "reasons": ["40 held-out rows, fewer than 50"]},
                },
            },
            parent_version=1,
            training_run_id=run.id,
            config={"per_class_counts": {"sports": {"new_train": 10, "replay": 3}}},
        ),
    )
    registry.finish_run(run.id, e.RunStatus.SUCCEEDED)
    out = tmp_path / "report"
    write_promotion_report(out, inputs)
    artifacts.put_report(out, f"runs/{run.id}")
    drift = tmp_path / "drift"
    drift.mkdir()
    (drift / "drift_report.html").write_text("<html><body><p>evidently report</p></body></html>")
    artifacts.put_report(drift, "drift/1")
    decision = add_decision(registry, run.id, inputs, e.DecisionStatus.PENDING_APPROVAL)
    return {"check": check, "run": run, "decision": decision}


@pytest.fixture
def home(registry: Registry, tmp_path: Path) -> Iterator[tuple[Registry, LocalArtifactStore]]:
    from registry.settings import get_settings

    get_settings.cache_clear()
    yield registry, LocalArtifactStore(tmp_path / "artifacts")
    get_settings.cache_clear()


def console_client(registry: Registry, artifacts: LocalArtifactStore) -> TestClient:
    from service.console.app import create_console_app

    app = create_console_app()
    app.state.registry = registry
    app.state.artifacts = artifacts
    return TestClient(app, root_path="/ui", base_url="http://testserver", follow_redirects=False)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient, secret: str) -> None:
    form = client.get("/login")
    answer = client.post("/login", data={"token": secret, "csrf_token": csrf_of(form.text), "next": "/"})
    assert answer.status_code == 303, answer.text


def test_every_page_renders_the_records(home, tmp_path: Path) -> None:
    registry, artifacts = home
    ids = seed(registry, artifacts, tmp_path, report_inputs())
    client = console_client(registry, artifacts)
    d, run, check = ids["decision"].id, ids["run"].id, ids["check"].id

    overview = client.get("/")
    assert overview.status_code == 200
    assert 'Champion <b id="champion-version">v1</b>' in overview.text
    assert f'href="/ui/decisions/{d}"' in overview.text  # waiting for a decision
    assert "embedding_drift" in overview.text and "0.810" in overview.text  # the last check's signals
    assert "default-src 'none'" in overview.headers["content-security-policy"]

    versions = client.get("/models/sentiment")
    assert versions.status_code == 200 and 'src="/ui/models/sentiment/charts/accuracy.svg"' in versions.text
    assert f'href="/ui/runs/{run}">run {run}</a>' in versions.text and "<td>drift</td>" in versions.text
    assert '<td title="40 held-out rows, fewer than 50">torch, onnx</td>' in versions.text  # v2
    assert '<td title="">torch</td>' in versions.text  # v1: no graph
    chart = client.get("/models/sentiment/charts/macro_f1.svg")
    assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml")
    assert chart.content.lstrip().startswith(b"<?xml") and b"<script" not in chart.content
    assert client.get("/models/sentiment/charts/nothing.svg").status_code == 404

    checks = client.get("/checks")
    assert checks.status_code == 200 and "embedding_drift" in checks.text
    detail = client.get(f"/checks/{check}")
    assert detail.status_code == 200 and "0.550" in detail.text  # the threshold beside the score
    assert "Accuracy without labels" in detail.text and "0.681 to 0.743" in detail.text
    assert "threshold 0.634" in detail.text and "The two estimates disagree" in detail.text
    assert 'src="/ui/reports/drift/1/drift_report.html" sandbox="allow-scripts"' in detail.text
    embedded = client.get("/reports/drift/1/drift_report.html")
    assert embedded.status_code == 200 and "evidently report" in embedded.text
    assert embedded.headers["content-security-policy"].startswith("sandbox allow-scripts")

    runs = client.get("/runs")
    assert runs.status_code == 200 and f'href="/ui/decisions/{d}"' in runs.text
    run_page = client.get(f"/runs/{run}")
    assert run_page.status_code == 200 and f'href="/ui/checks/{check}"' in run_page.text
    assert '<td class="n">10</td>' in run_page.text  # rows per label and origin

    review = client.get(f"/decisions/{d}")
    assert review.status_code == 200
    assert "Trigger evidence: drift check" in review.text and "Examples the challenger fixed" in review.text
    assert "+25.0 pts" in review.text and "+5.0 pts to +40.0 pts" in review.text  # the CI
    assert 'id="approve-form"' not in review.text and "Sign in</a> with a reviewer token" in review.text

    timeline = client.get("/models/sentiment/timeline", params={"at": "2000-01-01T00:00:00"})
    assert timeline.status_code == 200 and "no version was champion yet" in timeline.text
    now = client.get("/models/sentiment/timeline", params={"at": datetime.now(UTC).isoformat()})
    assert "<b>v1</b> served" in now.text
    bad = client.get("/models/sentiment/timeline", params={"at": "yesterday"})
    assert bad.status_code == 422 and "&#39;at&#39; must be a date" in bad.text

    assert client.get("/decisions/999").status_code == 404
    assert client.get("/runs/99999999999999999999").status_code == 422  # bounded, not a 500


def test_the_static_report_and_the_review_page_share_the_template(home, tmp_path: Path) -> None:
    registry, artifacts = home
    ids = seed(registry, artifacts, tmp_path, report_inputs())
    static = (Path(artifacts.root) / "reports" / "runs" / str(ids["run"].id) / "promotion.html").read_text()
    page = console_client(registry, artifacts).get(f"/decisions/{ids['decision'].id}").text
    for table in ("comparison", "per-class", "per-domain", "examples"):
        fragment = re.search(rf'<table class="{table}">.*?</table>', static, re.S)
        assert fragment is not None and fragment.group(0) in page, table


def test_sign_in_approve_and_roll_back_record_the_token_name(home, tmp_path: Path) -> None:
    registry, artifacts = home
    ids = seed(registry, artifacts, tmp_path, report_inputs())
    _, secret = registry.tokens.create("alice", "reviewer", created_by="test")
    client = console_client(registry, artifacts)

    form = client.get("/login")
    wrong = client.post("/login", data={"token": "nope", "csrf_token": csrf_of(form.text)})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    answer = client.post(
        "/login", data={"token": secret, "csrf_token": csrf_of(form.text), "next": "/decisions"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/decisions"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and secret.lower() not in cookie

    d = ids["decision"].id
    review = client.get(f"/decisions/{d}")
    assert 'id="approve-form"' in review.text and "signed in as <b>alice</b>" in review.text
    empty = client.post(f"/decisions/{d}/approve", data={"reason": "  ", "csrf_token": csrf_of(review.text)})
    assert empty.status_code == 422 and "a reason is required" in empty.text
    assert registry.get_decision(d).status is e.DecisionStatus.PENDING_APPROVAL
    done = client.post(
        f"/decisions/{d}/approve", data={"reason": "better on news", "csrf_token": csrf_of(review.text)}
    )
    assert done.status_code == 303
    decided = registry.get_decision(d)
    assert decided.status is e.DecisionStatus.APPROVED and decided.reviewer == "alice"
    assert registry.get_version_by_alias("sentiment", e.CHAMPION).version == 2
    timeline = client.get("/models/sentiment/timeline")
    assert '<td class="actor">alice</td>' in timeline.text and "better on news" in timeline.text

    preview = client.get("/models/sentiment/rollback")
    assert "now: v2" in preview.text and "after: v1" in preview.text and "-0.200" in preview.text  # accuracy
    rolled = client.post(
        "/models/sentiment/rollback",
        data={"reason": "regressed on tweets", "expected_version": "2", "csrf_token": csrf_of(preview.text)},
    )
    assert rolled.status_code == 303
    event = registry.list_alias_events("sentiment", e.CHAMPION, limit=1)[0]
    assert (event.from_version, event.to_version, event.actor) == (2, 1, "alice")
    assert event.reason == "regressed on tweets"
    stale = client.post(
        "/models/sentiment/rollback",
        data={"reason": "again", "expected_version": "2", "csrf_token": csrf_of(preview.text)},
    )
    assert stale.status_code == 409  # the champion is v1 now: a preview of v2 moves nothing
    assert registry.get_version_by_alias("sentiment", e.CHAMPION).version == 1


def test_writes_need_a_session_a_reviewer_and_the_csrf_token(home, tmp_path: Path) -> None:
    registry, artifacts = home
    ids = seed(registry, artifacts, tmp_path, report_inputs())
    d = ids["decision"].id
    _, reviewer = registry.tokens.create("bob", "reviewer", created_by="test")
    _, reader = registry.tokens.create("rita", "reader", created_by="test")

    anonymous = console_client(registry, artifacts)
    csrf = csrf_of(anonymous.get("/login").text)
    refused = anonymous.post(f"/decisions/{d}/approve", data={"reason": "sneaky", "csrf_token": csrf})
    assert refused.status_code == 401 and "sign in" in refused.text
    assert (
        anonymous.post("/models/sentiment/rollback", data={"reason": "x", "csrf_token": csrf}).status_code
        == 401
    )

    no_csrf = console_client(registry, artifacts)
    sign_in(no_csrf, reviewer)
    assert no_csrf.post(f"/decisions/{d}/approve", data={"reason": "forged"}).status_code == 403
    forged = no_csrf.post(f"/decisions/{d}/approve", data={"reason": "forged", "csrf_token": "x" * 43})
    assert forged.status_code == 403 and "CSRF" in forged.text

    low = console_client(registry, artifacts)
    sign_in(low, reader)
    page = low.get(f"/decisions/{d}").text
    assert 'id="approve-form"' not in page
    assert (
        low.post(f"/decisions/{d}/reject", data={"reason": "no", "csrf_token": csrf_of(page)}).status_code
        == 403
    )

    assert registry.get_decision(d).status is e.DecisionStatus.PENDING_APPROVAL
    assert registry.get_version_by_alias("sentiment", e.CHAMPION).version == 1

    # a revoked token's session ends at its next request
    registry.tokens.revoke("bob")
    after = no_csrf.get(f"/decisions/{d}")
    assert "signed in as" not in after.text


def test_with_the_registry_down_a_signed_in_page_is_the_error_page_escaped(home, tmp_path: Path) -> None:
    registry, artifacts = home
    _, secret = registry.tokens.create("dana", "reviewer", created_by="test")
    client = console_client(registry, artifacts)
    sign_in(client, secret)

    class Down:
        def __getattr__(self, name: str) -> Any:
            raise DatabaseError(f"database unavailable {XSS}")

    client.app.state.registry = Down()  # type: ignore[attr-defined]
    answer = client.get("/")
    assert answer.status_code == 503 and answer.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "<h1>Error</h1>" in answer.text and "database unavailable &lt;script&gt;" in answer.text
    assert "<script>" not in answer.text and 'id="inj"' not in answer.text


def test_closed_reads_send_pages_to_sign_in(home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.settings import get_settings

    registry, artifacts = home
    seed(registry, artifacts, tmp_path, report_inputs())
    _, reader = registry.tokens.create("rita", "reader", created_by="test")
    monkeypatch.setenv("DRIFTLINE_OPEN_READS", "false")
    get_settings.cache_clear()
    client = console_client(registry, artifacts)
    answer = client.get("/runs")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login?next=/runs"
    assert client.get("/models/sentiment/charts/accuracy.svg").status_code == 303
    sign_in(client, reader)
    assert client.get("/runs").status_code == 200


def test_hostile_text_is_escaped_on_every_page(home, tmp_path: Path) -> None:
    """Texts, labels, domains, reasons and alias names holding markup appear as text, never as markup."""
    registry, artifacts = home
    ids = seed(registry, artifacts, tmp_path, report_inputs(text=XSS, label=XSS, domain=XSS))
    registry.set_alias("sentiment", "candidate", 2, actor="t", reason=XSS)
    with registry._tx() as s:  # an alias name older rules let in: the registry refuses such names now
        s.execute(
            update(AliasEventRow).where(AliasEventRow.alias == "candidate").values(alias=XSS, actor=XSS)
        )
    registry.finish_run(ids["run"].id, e.RunStatus.FAILED, error=XSS)
    client = console_client(registry, artifacts)
    _, secret = registry.tokens.create("carol", "reviewer", created_by="test")
    sign_in(client, secret)
    d, run, check = ids["decision"].id, ids["run"].id, ids["check"].id
    paths = [
        "/",
        "/models/sentiment",
        "/models/sentiment/timeline",
        "/models/sentiment/rollback",
        "/checks",
        f"/checks/{check}",
        "/runs",
        f"/runs/{run}",
        "/decisions",
        f"/decisions/{d}",
    ]
    for path in paths:
        html = client.get(path).text
        for raw in ("<script>alert", "<img src=x", "<b id=inj>", "onerror=alert(1) id=xss>"):
            assert raw not in html, f"{path} shows {raw!r} unescaped"
    review = client.get(f"/decisions/{d}").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in review  # shown, as text
    timeline = client.get("/models/sentiment/timeline").text
    assert "&lt;b id=inj&gt;" in timeline
    static = (Path(artifacts.root) / "reports" / "runs" / str(run) / "promotion.html").read_text()
    assert "<script>alert" not in static and "&lt;script&gt;" in static


def test_served_at_is_the_latest_move_at_or_before_the_time() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)

    def move(i: int, to: int, minutes: int, alias: str = e.CHAMPION) -> e.AliasEvent:
        return e.AliasEvent(i, "m", alias, None, to, "t", "r", None, t0 + timedelta(minutes=minutes))

    events = [move(4, 1, 30), move(3, 9, 25, alias="challenger"), move(2, 2, 20), move(1, 1, 10)]
    assert served_at(events, t0) is None
    assert served_at(events, t0 + timedelta(minutes=10)).to_version == 1
    assert served_at(events, t0 + timedelta(minutes=26)).to_version == 2  # the challenger move is not serving
    assert served_at(events, t0 + timedelta(days=1)).to_version == 1


def test_report_json_holds_what_the_page_shows(tmp_path: Path) -> None:
    write_promotion_report(tmp_path, report_inputs())
    report = json.loads((tmp_path / "promotion.json").read_text())
    assert report["fixed"][0]["challenger"] == "sports" and report["broken"] == []
    assert report["per_domain"][0] == {"domain": "(none)", "rows": 1, "champion": 1.0, "challenger": 1.0}
    assert {"origin": "replay", "label": "food", "rows": 1} in report["by_label"]


def test_the_guard_state_comes_from_the_records(registry: Registry) -> None:
    registry.register_version(
        "sentiment", spec(1), set_aliases=[e.CHAMPION], actor="bootstrap", reason="first"
    )
    registry.register_version("sentiment", spec(2))
    assert guard_state(registry, "sentiment").state == "none"  # v1 replaced nothing
    registry.set_alias("sentiment", e.CHAMPION, 2, actor="run 1", reason="decision 1: passed")
    moved = registry.list_alias_events("sentiment", e.CHAMPION, limit=1)[0].created_at

    def prediction(i: int, version: int, after: bool) -> e.NewPrediction:
        return e.NewPrediction(
            id=f"p{i}",
            created_at=moved + timedelta(seconds=1 if after else -1),
            text=f"text {i}",
            text_hash=f"h{i}",
            label="positive",
            scores={"positive": 1.0},
            model_name="sentiment",
            model_version=version,
            latency_ms=1.0,
        )

    registry.add_predictions(
        [
            prediction(1, 2, True),
            prediction(2, 2, True),
            prediction(3, 2, True),
            prediction(4, 1, True),
            prediction(5, 2, False),
        ]
    )
    registry.add_labels(
        [e.NewLabel(label="positive", prediction_id=p) for p in ("p1", "p2", "p2", "p4", "p5")]
    )
    state = guard_state(registry, "sentiment")
    assert state.state == "watching" and "2 labeled rows served since the promotion" in state.text
    assert registry.count_labeled_predictions("sentiment", 2, since=moved) == len(
        registry.labeled_predictions("sentiment", 2, since=moved)
    )
    registry.rollback("sentiment", actor="guard", reason="guard: v2 is worse than v1", expected_version=2)
    rolled = guard_state(registry, "sentiment")
    assert rolled.state == "rolled back" and "v2 is worse than v1" in rolled.text


def test_the_signing_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    import stat

    from registry.settings import Settings
    from service.console.auth import signing_key

    settings = Settings(home=tmp_path / "h")
    first = signing_key(settings)
    assert len(first) >= 40 and signing_key(settings) == first
    key = tmp_path / "h" / "console.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and list((tmp_path / "h").glob(".console.key.*")) == []
    assert signing_key(Settings(home=tmp_path / "h", console_secret="from-the-setting")) == "from-the-setting"
