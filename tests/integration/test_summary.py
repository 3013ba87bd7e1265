"""A replay's summary: served accuracy per window / domain / version, the registry's checks, runs and
decisions placed on the stream by time, a timeline PNG and an index page whose links open."""

from __future__ import annotations

import html
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftline.replay_types import Hold, ReplayLog, ServedRow
from driftline.summary import score_promotions, summarize, write_index
from driftline.timeline import write_timeline
from registry.entities import DecisionStatus, NewDecision, NewDriftCheck, RunStatus
from registry.settings import Settings
from registry.store import Registry


def _log(start: datetime) -> ReplayLog:
    """60 rows, one per second: domain a served by v1 (half right), domain b by v1 then v2 (all right)."""
    served = []
    for i in range(60):
        domain, version = ("a", 1) if i < 30 else ("b", 1 if i < 40 else 2)
        right = version == 2 or i % 2 == 0
        served.append(ServedRow(i, domain, "pos", "pos" if right else "neg", version, float(i), True))
    return ReplayLog(served=served, holds=[Hold([1], 40, 35.0, 38.0, 1, 2)], labels_sent=60, started_at=start)


def test_summary_places_records_on_the_stream_and_links_reports(served_home: Path, tmp_path: Path) -> None:
    settings = Settings(home=served_home)
    start = datetime.now(UTC) - timedelta(minutes=5)

    def at(seconds: float) -> Registry:
        """The registry, with its clock at ``seconds`` into the replay."""
        return Registry(Registry.open(settings).engine, clock=lambda: start + timedelta(seconds=seconds))

    report_dir = Path(settings.artifact_root) / "reports" / "drift" / "c1"
    report_dir.mkdir(parents=True)
    (report_dir / "drift_report.html").write_text("<html>drift</html>")
    check, run = at(33.5).add_drift_check(
        NewDriftCheck(
            model_name="sentiment",
            model_version=1,
            window_start=start,
            window_end=start,
            reference="ref",
            n_reference=10,
            n_current=30,
            scores={"embedding_drift": {"score": 0.91, "threshold": 0.55, "drifted": True}},
            drifted=True,
            decision="retrain",
            reason="drift on embedding_drift for 2 checks: retrain queued",
            report_uri="drift/c1/drift_report.html",
        ),
        queue_run={"reason": "drift"},
    )
    assert run is not None
    Registry.open(settings).claim_run(run.id)
    Registry.open(settings).finish_run(run.id, RunStatus.SUCCEEDED)
    at(36.5).add_decision(
        NewDecision(
            model_name="sentiment",
            candidate_version=2,
            incumbent_version=1,
            run_id=run.id,
            metrics={},
            passed=True,
            reasons=("macro-F1 +0.30",),
            status=DecisionStatus.PROMOTED,
            report_uri="runs/1/promotion.html",
        )
    )

    summary = summarize(settings, _log(start), window=20, seconds=60.0)

    assert summary.rows == 60 and summary.labels_sent == 60
    assert [round(w["accuracy"], 2) for w in summary.windows] == [0.5, 0.5, 1.0]
    assert summary.domains["a"]["accuracy"] == 0.5
    assert summary.domains["b"]["by_version"] == {
        1: {"n": 10, "accuracy": 0.5},
        2: {"n": 20, "accuracy": 1.0},
    }
    (c,) = summary.checks
    assert (
        c["id"] == check.id
        and c["row"] == 34
        and c["signals"] == ["embedding_drift"]
        and c["embedding_auc"] == 0.91
    )
    (r,) = [r for r in summary.runs if r["id"] == run.id]
    assert r["status"] == "succeeded" and r["drift_check_id"] == check.id
    (d,) = summary.promotions
    assert d["row"] == 37 and d["candidate_version"] == 2
    assert summary.holds == [{"row": 40, "seconds": 3.0, "runs": [1], "swapped_to": 2}]
    assert summary.counts == {
        "checks": 1,
        "drift_alarms": 1,
        "runs": 1,
        "runs_label_growth": 0,
        "promotions": 1,
        "rejections": 0,
        "runs_skipped": 0,
        "runs_failed": 0,
    }
    assert summary.recovery == {
        "drift_check": check.id,
        "drift_row": 34,
        "promotion": d["id"],
        "promoted_version": 2,
        "promotion_row": 37,
        "rows": 3,
        "seconds": 3.0,
    }
    assert 0.0 < summary.macro_f1 < 1.0 and summary.windows[2]["macro_f1"] == 1.0
    text = "\n".join(summary.lines())
    assert "v1: 0.500 (10)  v2: 1.000 (20)" in text and "promoted" in text

    (scored,) = score_promotions(settings, [f"text {i}" for i in range(60)], summary, _log(start))
    assert scored["promoted"] == 2 and scored["replaced"] == 1 and scored["rows"] == 20
    assert scored["promoted_accuracy"] == 1.0 and 0.0 <= scored["replaced_accuracy"] <= 1.0  # v1, really run
    assert "after the promotion of v2: on the 20 rows it served" in "\n".join(summary.lines())

    png = write_timeline(summary, tmp_path / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    index = write_index(summary, settings, tmp_path).read_text()
    assert 'src="timeline.png"' in index
    hrefs = [part.split('"')[0] for part in index.split('href="')[1:]]
    (href,) = [h for h in hrefs if not h.startswith("http://")]  # the reports, on disk
    assert (tmp_path / href).resolve() == (report_dir / "drift_report.html").resolve()
    assert "<code>reports/runs/1/promotion.html</code>" in index  # not on disk here: named, not linked
    # the service has stopped: the page says how to open the console on this workspace again
    assert hrefs[:2] == ["http://127.0.0.1:3000/ui/", "http://127.0.0.1:3000/ui/decisions"]
    assert f"<code>DRIFTLINE_HOME={html.escape(shlex.quote(str(served_home.absolute())))} " in index
    assert " up --no-scheduler</code>" in index
