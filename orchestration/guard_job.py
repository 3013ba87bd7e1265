"""The post-promotion guard's job: the thin part the scheduler's leader runs before each drift check.

It finds the latest champion move, loads the labeled rows the new champion served since, scores them
with the replaced version (in the scheduler's process, off the request path: the service does no extra
work), asks the pure decision (:func:`monitor.guard.judge`), and on harm moves ``champion`` back with
actor ``guard``, the evidence in the reason and a report, like any other move.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.templating import environment
from monitor.guard import GuardConfig, GuardStatus, GuardVerdict, judge
from registry.artifacts import ArtifactStore
from registry.entities import CHAMPION, GUARD_ACTOR, AliasEvent, ModelVersion
from registry.errors import ConflictError
from registry.store import Registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardOutcome:
    event_id: int  # the champion move judged
    champion: int
    replaced: int
    promoted_at: datetime
    verdict: GuardVerdict
    rollback: AliasEvent | None = None


Scorer = Callable[[ModelVersion, Sequence[str], Sequence[str]], list[str]]
"""``scorer(version, prediction_ids, texts)``: the label ``version`` gives each text."""


def last_guarded_move(registry: Registry, model_name: str) -> AliasEvent | None:
    """The champion move the guard watches: the latest one, if it came from another version and was not
    the guard's own rollback."""
    events = registry.list_alias_events(model_name, CHAMPION, limit=1)
    if not events:
        return None
    event = events[0]
    if event.from_version is None or event.actor == GUARD_ACTOR or event.from_version == event.to_version:
        return None
    return event


def guard_champion(
    registry: Registry,
    artifacts: ArtifactStore,
    model_name: str,
    config: GuardConfig,
    scorer: Scorer,
    *,
    ended: frozenset[int] | set[int] = frozenset(),
) -> GuardOutcome | None:
    """Judge the latest promotion of ``model_name``; roll it back on harm. None when there is nothing
    to guard (no promotion, the guard's own rollback, a move in ``ended`` (ids of champion moves whose
    watch is over), or the champion moved since)."""
    event = last_guarded_move(registry, model_name)
    if event is None or event.from_version is None or event.to_version is None or event.id in ended:
        return None
    champion = registry.get_version_by_alias(model_name, CHAMPION)
    if champion.version != event.to_version:
        return None
    replaced = registry.get_version(model_name, event.from_version)
    rows = registry.labeled_predictions(
        model_name, champion.version, since=event.created_at, limit=config.watch_labels
    )
    labels = [label for _, label in rows]
    served = [p.label for p, _ in rows]
    upto = max([look for look in config.looks() if look <= len(rows)], default=0)
    start = max(0, upto - config.window)
    judged = rows[
        start:upto
    ]  # the latest look's window: only there are the replaced version's answers needed
    replaced_pred = scorer(replaced, [p.id for p, _ in judged], [p.text for p, _ in judged]) if judged else []
    verdict = judge(
        labels[:upto],
        served[:upto],
        [""] * start + replaced_pred,  # rows before the window are not judged
        config,
        names=(f"v{champion.version}", f"v{replaced.version}"),
        labeled=len(rows),
    )
    outcome = GuardOutcome(event.id, champion.version, replaced.version, event.created_at, verdict)
    if verdict.status is not GuardStatus.ROLLBACK:
        logger.debug("guard %s v%s: %s", model_name, champion.version, verdict.reason)
        return outcome
    report_uri = _write_report(artifacts, model_name, outcome, judged, replaced_pred)
    try:
        move = registry.rollback(
            model_name,
            actor=GUARD_ACTOR,
            reason=f"guard: {verdict.reason}",
            expected_version=champion.version,
            report_uri=report_uri,
        )
    except ConflictError as exc:  # the champion moved while the guard judged: nothing to undo
        logger.info("guard %s v%s: not rolled back: %s", model_name, champion.version, exc.message)
        return outcome
    logger.warning(
        "guard %s: rolled back v%s to v%s: %s", model_name, champion.version, replaced.version, verdict.reason
    )
    return GuardOutcome(event.id, champion.version, replaced.version, event.created_at, verdict, move)


def _write_report(
    artifacts: ArtifactStore,
    model_name: str,
    outcome: GuardOutcome,
    rows: Sequence[tuple[Any, str]],
    replaced_pred: Sequence[str],
) -> str:
    """The evidence, for a person: JSON and a page (every row the two models disagree on)."""
    disagreements = [
        {"prediction_id": p.id, "text": p.text[:500], "label": label, "champion": p.label, "replaced": old}
        for (p, label), old in zip(rows, replaced_pred, strict=True)
        if p.label != old
    ]
    facts = {
        "model_name": model_name,
        "champion_version": outcome.champion,
        "replaced_version": outcome.replaced,
        "promoted_at": outcome.promoted_at.isoformat(),
        "verdict": outcome.verdict.to_dict(),
        "disagreements": disagreements,
    }
    name = f"guard/{model_name}-v{outcome.champion}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    with tempfile.TemporaryDirectory(prefix="driftline-guard-") as tmp:
        Path(tmp, "guard.json").write_text(json.dumps(facts, indent=1, default=str))
        Path(tmp, "guard.html").write_text(environment().get_template("guard.html.j2").render(**facts))
        artifacts.put_report(Path(tmp), name)
    return f"{name}/guard.html"


class CachedScorer:
    """Scores rows with a registered version, loaded once and kept (one version at a time), and
    remembers each prediction id's answer: the guard's looks re-judge the same first rows."""

    def __init__(self, artifacts: ArtifactStore, *, batch_size: int = 32) -> None:
        self.artifacts = artifacts
        self.batch_size = batch_size
        self._version: tuple[str, int] | None = None
        self._loaded: Any = None
        self._answers: dict[str, str] = {}

    def __call__(
        self, version: ModelVersion, prediction_ids: Sequence[str], texts: Sequence[str]
    ) -> list[str]:
        from runtime.inference import predict_labels
        from runtime.modelio import load_version

        key = (version.model_name, version.version)
        if key != self._version:
            self._loaded = load_version(self.artifacts, version)
            self._version, self._answers = key, {}
        missing = [i for i, pid in enumerate(prediction_ids) if pid not in self._answers]
        if missing:
            answers = predict_labels(self._loaded, [texts[i] for i in missing], batch_size=self.batch_size)
            self._answers.update({prediction_ids[i]: a for i, a in zip(missing, answers, strict=True)})
        return [self._answers[pid] for pid in prediction_ids]

    def release(self) -> None:
        """Forget the loaded version (the guard has nothing to watch)."""
        self._version, self._loaded, self._answers = None, None, {}
