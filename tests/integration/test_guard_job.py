"""The guard job on a real registry with real 1-layer models: a promoted version that serves worse
than the one it replaced is rolled back by actor 'guard', with the evidence and a report; a promotion
that does no harm is watched and then left alone."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.guard import GuardConfig, GuardStatus
from orchestration.guard_job import GUARD_ACTOR, CachedScorer, guard_champion
from registry.artifacts import LocalArtifactStore
from registry.entities import CHAMPION
from registry.settings import Settings
from registry.store import Registry
from tests.models import serve_and_label
from tests.textgen import topic_rows

CONFIG = GuardConfig(min_labels=30, window_labels=60, watch_labels=120)  # looks at 30, 60, 90, 120


def _open(home: Path) -> tuple[Registry, LocalArtifactStore]:
    settings = Settings(home=home)
    return Registry.open(settings), LocalArtifactStore(settings.artifact_root)


def test_a_harmful_promotion_is_rolled_back_with_its_evidence(served_home: Path) -> None:
    registry, artifacts = _open(served_home)
    registry.set_alias("sentiment", CHAMPION, 2, actor="run 7", reason="decision 3: passed the gate")
    rows = topic_rows(90, seed=21, labels=("food", "weather"))  # v2 favours 'sports': mostly wrong here
    serve_and_label(served_home, [r["text"] for r in rows[:20]], [r["label"] for r in rows[:20]])
    scorer = CachedScorer(artifacts)

    waiting = guard_champion(registry, artifacts, "sentiment", CONFIG, scorer)
    assert waiting is not None and waiting.verdict.status is GuardStatus.WAITING
    assert registry.get_version_by_alias("sentiment", CHAMPION).version == 2

    serve_and_label(served_home, [r["text"] for r in rows[20:]], [r["label"] for r in rows[20:]])
    outcome = guard_champion(registry, artifacts, "sentiment", CONFIG, scorer)
    assert outcome is not None and outcome.verdict.status is GuardStatus.ROLLBACK
    assert outcome.verdict.look == 90 and outcome.verdict.judged == 60 and outcome.verdict.labeled == 90
    assert outcome.verdict.replaced_accuracy > outcome.verdict.champion_accuracy + 0.3
    assert registry.get_version_by_alias("sentiment", CHAMPION).version == 1
    move = registry.list_alias_events("sentiment", CHAMPION, limit=1)[0]
    assert (move.actor, move.from_version, move.to_version) == (GUARD_ACTOR, 2, 1)
    assert move.reason.startswith("guard: v2 is worse than v1 by more than 1.0 pts, significantly")
    report = Path(artifacts.root) / "reports" / move.report_uri  # type: ignore[operator]
    assert "rolled back to v1" in report.read_text()
    evidence = json.loads(report.with_name("guard.json").read_text())
    assert evidence["verdict"]["status"] == "rollback" and evidence["disagreements"]

    # the guard's own move is not guarded again, and another look changes nothing
    assert guard_champion(registry, artifacts, "sentiment", CONFIG, scorer) is None
    registry.close()


def test_a_promotion_that_does_no_harm_is_watched_then_left_alone(served_home: Path) -> None:
    registry, artifacts = _open(served_home)
    registry.set_alias("sentiment", CHAMPION, 2, actor="run 7", reason="decision 3: passed the gate")
    rows = topic_rows(130, seed=5, labels=("sports",))  # v2's favourite: it is as right as v1
    serve_and_label(served_home, [r["text"] for r in rows], [r["label"] for r in rows])
    outcome = guard_champion(registry, artifacts, "sentiment", CONFIG, CachedScorer(artifacts))
    assert outcome is not None and outcome.verdict.status is GuardStatus.CLEARED
    assert outcome.verdict.look == 120 and outcome.rollback is None
    assert registry.get_version_by_alias("sentiment", CHAMPION).version == 2
    # a watch that is over is not judged again
    ended = {outcome.event_id}
    assert guard_champion(registry, artifacts, "sentiment", CONFIG, CachedScorer(artifacts), ended=ended) is None
    registry.close()
