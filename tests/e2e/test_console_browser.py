"""The review console in a real browser (issue 13): headless Chromium against a real `driftline up`.

A reviewer signs in with a named token, opens the pending decision, approves it with a reason, sees the
champion move in the alias timeline under the token's name, and rolls back from the page; a POST without
a session and one without the CSRF token are refused. Hostile text in every kind of record shows as text
on every page: no dialog opens and no element is injected. Screenshots go to $CONSOLE_SCREENSHOT_DIR
(the README's come from here)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from monitor.evidently_report import evidently_drift
from registry import entities as e
from registry.artifacts import open_artifact_store
from registry.orm import AliasEventRow
from registry.settings import Settings
from registry.store import Registry
from retrain.report import write_promotion_report
from tests.browser import chromium, screenshot
from tests.e2e.served import free_port, start_up
from tests.integration.test_console import XSS, add_decision, report_inputs
from tests.models import copy_home

REVIEWER = "ann-reviewer"


@dataclass(frozen=True)
class Console:
    url: str  # http://127.0.0.1:PORT/ui
    home: Path
    secret: str  # the reviewer token's secret
    decision: int  # pending: v2 against the champion v1


def _decision(registry: Registry, artifacts, tmp_path: Path, inputs, status: e.DecisionStatus) -> int:
    """A decision on v2 against v1 with its run and promotion report."""
    run = registry.create_run(
        "sentiment", trigger=e.RunTrigger.DRIFT, config={"reason": inputs.trigger_detail}
    )
    registry.finish_run(run.id, e.RunStatus.SUCCEEDED)
    write_promotion_report(tmp_path / f"report-{run.id}", inputs)
    artifacts.put_report(tmp_path / f"report-{run.id}", f"runs/{run.id}")
    return add_decision(registry, run.id, inputs, status).id


def _check(
    registry: Registry,
    reason: str,
    signals: dict,
    reference: str = "v1 reference (300 rows)",
    report: str | None = None,
) -> int:
    check, _ = registry.add_drift_check(
        e.NewDriftCheck(
            model_name="sentiment",
            model_version=1,
            window_start=datetime(2026, 12, 1, tzinfo=UTC),
            window_end=datetime(2026, 12, 2, tzinfo=UTC),
            reference=reference,
            n_reference=300,
            n_current=150,
            scores=signals,
            drifted=any(s.get("drifted") for s in signals.values()),
            decision="none",
            reason=reason,
            report_uri=report,
        )
    )
    return check.id


def _evidently_report(artifacts, tmp_path: Path) -> str:
    """A real Evidently drift report (the monitor's own code, on shifted random embeddings)."""
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {
            "text": ["a short text"] * 80,
            "predicted": rng.choice(["food", "sports"], 80),
            "embedding": list(rng.normal(size=(80, 8))),
        }
    )
    window = SimpleNamespace(
        texts=["a longer text than before"] * 80,
        predicted=list(rng.choice(["food", "sports"], 80)),
        embeddings=rng.normal(1.0, 1.0, size=(80, 8)),
        embedding_rows=None,
    )
    evidently_drift(reference, window, report_dir=tmp_path / "evidently")
    artifacts.put_report(tmp_path / "evidently", "drift/seeded")
    return "drift/seeded/drift_report.html"


def _open(home: Path) -> tuple[Registry, object]:
    settings = Settings(home=home)
    return Registry.open(settings), open_artifact_store(settings.artifact_root)


def _seed(home: Path, tmp_path: Path) -> tuple[str, int]:
    """A reviewer token, a drift check and a pending decision with its report."""
    registry, artifacts = _open(home)
    _, secret = registry.tokens.create(REVIEWER, "reviewer", created_by="test")
    _check(
        registry,
        "embedding drift: 1 check in a row (2 needed); labels so far: 40",
        {
            "embedding_drift": {"score": 0.71, "threshold": 0.55, "drifted": True, "p_value": 0.0004},
            "label_share_drift": {"score": 0.04, "threshold": 0.1, "drifted": False},
            "text_length_drift": {"score": 0.06, "threshold": 0.2, "drifted": False},
        },
        report=_evidently_report(artifacts, tmp_path),
    )
    pending = _decision(registry, artifacts, tmp_path, report_inputs(), e.DecisionStatus.PENDING_APPROVAL)
    registry.close()
    return secret, pending


def _seed_hostile(home: Path, tmp_path: Path) -> tuple[int, int]:
    """Records whose every text field is hostile: report texts, labels and domains, a check's reason,
    reference and signal names, a label, an alias move's reason and an alias name."""
    registry, artifacts = _open(home)
    hostile = report_inputs(text=XSS, label=XSS, domain=XSS)
    decision = _decision(registry, artifacts, tmp_path, hostile, e.DecisionStatus.REJECTED)
    check = _check(registry, XSS, {XSS: {"score": 0.9, "threshold": 0.5, "drifted": True, XSS: XSS}}, XSS)
    registry.add_labels([e.NewLabel(label=XSS, text=XSS, domain=XSS, model_name="sentiment")])
    registry.set_alias("sentiment", "shadow", 3, actor="test", reason=XSS)
    with registry._tx() as s:  # an alias name from before names were checked
        s.execute(update(AliasEventRow).where(AliasEventRow.alias == "shadow").values(alias=XSS))
    registry.close()
    return check, decision


@pytest.fixture(scope="module")
def console(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp_path = tmp_path_factory.mktemp("console")
    home = copy_home(served_template, tmp_path / "home")
    secret, pending = _seed(home, tmp_path)
    port = free_port()
    env = {**os.environ, "DRIFTLINE_POLL_INTERVAL_S": "0.3"}
    env.pop("DRIFTLINE_API_TOKEN", None)
    proc = start_up(home, port, tmp_path / "up.log", env)
    try:
        yield Console(f"http://127.0.0.1:{port}/ui", home, secret, pending)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _champion(home: Path) -> int:
    registry = Registry.open(Settings(home=home))
    try:
        return registry.get_version_by_alias("sentiment", e.CHAMPION).version
    finally:
        registry.close()


def test_sign_in_approve_see_the_move_and_roll_back(console: Console, tmp_path: Path) -> None:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(console.url + "/")
        assert page.locator(f'a[href="/ui/decisions/{console.decision}"]').count() == 1  # waiting
        screenshot(page, tmp_path, "console-overview")

        page.goto(console.url + "/login")
        page.fill('input[name="token"]', console.secret)
        page.click('#login-form button[type="submit"]')
        assert REVIEWER in page.locator("#signed-in").inner_text()
        cookie = next(c for c in context.cookies() if c["name"] == "driftline_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # without the CSRF token, even with the session cookie: refused, nothing moves
        forged = context.request.post(
            f"{console.url}/decisions/{console.decision}/approve", form={"reason": "forged"}
        )
        assert forged.status == 403 and "CSRF" in forged.text()
        # without a session at all: refused
        bare = httpx.post(
            f"{console.url}/decisions/{console.decision}/approve",
            data={"reason": "anonymous", "csrf_token": "x"},
        )
        assert bare.status_code == 401
        assert _champion(console.home) == 1

        page.goto(f"{console.url}/decisions/{console.decision}")
        assert page.locator("#approve-form").is_visible()
        screenshot(page, tmp_path, "console-decision")
        page.click("#approve-form button")  # the reason is required: the browser keeps the form
        assert page.url.endswith(f"/decisions/{console.decision}") and _champion(console.home) == 1
        page.fill("#approve-form textarea", "better on the new domain, no class worse")
        page.click("#approve-form button")
        assert "approved" in page.locator("#flash").inner_text()
        assert REVIEWER in page.locator("#reviewer").inner_text()
        assert _champion(console.home) == 2

        page.goto(console.url + "/models/sentiment/timeline")
        latest = page.locator("#timeline tbody tr").first
        assert latest.locator("td.actor").inner_text() == REVIEWER
        assert "better on the new domain" in latest.inner_text()
        screenshot(page, tmp_path, "console-timeline")

        page.click("#rollback-link")
        assert "now: v2" in page.locator("#preview").inner_text()
        screenshot(page, tmp_path, "console-rollback")
        page.fill("#rollback-form textarea", "rolling back from the browser test")
        page.click("#rollback-form button")
        assert "rolled back" in page.locator("#flash").inner_text()
        first = page.locator("#timeline tbody tr").first
        assert first.locator("td.actor").inner_text() == REVIEWER and "v2" in first.inner_text()
        assert _champion(console.home) == 1

        page.goto(console.url + "/models/sentiment")
        assert page.locator(".charts img").count() >= 1
        assert all(page.evaluate("[...document.images].map(i => i.naturalWidth > 0)"))  # the SVGs load
        screenshot(page, tmp_path, "console-versions")

        page.goto(console.url + "/checks")
        page.click("#checks tbody a")
        assert "embedding_drift" in page.locator("table.signals").inner_text()
        report = page.frame_locator("iframe.report").locator("body")
        report.get_by_text("Drift", exact=False).first.wait_for(timeout=30_000)  # Evidently's script ran
        screenshot(page, tmp_path, "console-check")
        context.close()


def test_hostile_text_shows_as_text_and_never_runs(console: Console, tmp_path: Path) -> None:
    hostile_check, hostile_decision = _seed_hostile(console.home, tmp_path)
    pages = [
        "/",
        "/models/sentiment",
        "/models/sentiment/timeline",
        "/checks",
        f"/checks/{hostile_check}",
        "/runs",
        "/decisions",
        f"/decisions/{hostile_decision}",
        "/login",
    ]
    with chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(console.url + "/login")
        page.fill('input[name="token"]', console.secret)
        page.click('#login-form button[type="submit"]')
        for path in pages:
            page.goto(console.url + path)
            assert page.locator("#xss, #inj").count() == 0, f"{path}: an element was injected"
            assert page.locator("script").count() == 0, f"{path}: a script element is on the page"
            html = page.content()
            assert "<script>alert" not in html and "<img src=x" not in html, path
        page.goto(f"{console.url}/decisions/{hostile_decision}")
        assert re.search(r'<script>alert\("x"\)</script>', page.locator("main").inner_text())  # as text
        page.goto(f"{console.url}/checks/{hostile_check}")
        assert '<script>alert("x")</script>' in page.locator("main").inner_text()
        page.wait_for_timeout(300)
        assert dialogs == []
        context.close()
