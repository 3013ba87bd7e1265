"""What the console's pages show, worked out from records: the guard's state, the champion at a moment,
what a rollback would do, a drift check's signals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from registry import entities as e
from registry.entities import CHAMPION, GUARD_ACTOR
from registry.errors import InvalidInputError
from registry.store import Registry
from service.console.charts import chartable_metrics


@dataclass(frozen=True)
class GuardState:
    state: str  # "watching", "rolled back", "none"
    text: str


def guard_state(registry: Registry, model_name: str) -> GuardState:
    """What the post-promotion guard is doing for the latest champion move, from the records alone."""
    events = registry.list_alias_events(model_name, CHAMPION, limit=1)
    if not events:
        return GuardState("none", "no champion yet")
    event = events[0]
    if event.actor == GUARD_ACTOR:
        return GuardState(
            "rolled back", f"rolled v{event.from_version} back to v{event.to_version}: {event.reason}"
        )
    if event.from_version is None or event.from_version == event.to_version or event.to_version is None:
        return GuardState("none", f"v{event.to_version} replaced no other version: nothing to compare")
    labeled = registry.count_labeled_predictions(model_name, event.to_version, since=event.created_at)
    return GuardState(
        "watching",
        f"v{event.to_version} against v{event.from_version}, the version it replaced: {labeled} labeled rows "
        "served since the promotion (the guard ends after DRIFTLINE_GUARD_WATCH_LABELS without harm)",
    )


def served_at(events: list[e.AliasEvent], at: datetime) -> e.AliasEvent | None:
    """The champion move in force at ``at``: the latest one made at or before it (None: no champion yet)."""
    moves = [ev for ev in events if ev.alias == CHAMPION and utc(ev.created_at) <= at]
    return max(moves, key=lambda ev: (utc(ev.created_at), ev.id), default=None)


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one (SQLite's) is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str) -> datetime:
    """A moment typed into the timeline's form (``2026-12-03 14:30``, ISO, an offset optional), in UTC."""
    try:
        moment = datetime.fromisoformat(
            text.strip().replace(" ", "T", 1) if "T" not in text else text.strip()
        )
    except ValueError:
        raise InvalidInputError(
            f"'at' must be a date and time such as 2026-12-03T14:30:00 (UTC unless it says otherwise), not "
            f"{text[:60]!r}",
            field="at",
        ) from None
    return utc(moment)


@dataclass(frozen=True)
class RollbackPlan:
    current: e.ModelVersion
    target: e.ModelVersion
    since: e.AliasEvent  # the move that made ``current`` champion


def rollback_plan(registry: Registry, name: str) -> RollbackPlan | None:
    """What a rollback would do now: the champion back to the version before its latest move."""
    alias = registry.get_alias(name, CHAMPION)
    events = registry.list_alias_events(name, CHAMPION, limit=1)
    if alias is None or not events or events[0].from_version is None:
        return None
    return RollbackPlan(
        registry.get_version(name, alias.version),
        registry.get_version(name, events[0].from_version),
        events[0],
    )


def metric_changes(plan: RollbackPlan) -> list[tuple[str, Any, Any, float | None]]:
    """Each metric either version has: (name, now, after the rollback, the change where both are numbers)."""
    rows = []
    for key in chartable_metrics([plan.current.metrics, plan.target.metrics]):
        now, then = plan.current.metrics.get(key), plan.target.metrics.get(key)
        rows.append((key, now, then, then - now if is_number(now) and is_number(then) else None))
    return rows


def is_signal(score: Any) -> bool:
    """A drift check's score entry is a signal when it has a threshold (others: policy, window facts)."""
    return isinstance(score, dict) and "threshold" in score


def signals_of(check: e.DriftCheck) -> list[dict[str, Any]]:
    """The check's signals (every score entry with a threshold), drifted first."""
    out = [{"name": name, **value} for name, value in check.scores.items() if is_signal(value)]
    return sorted(out, key=lambda s: (not s.get("drifted"), s["name"]))


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """How long from ``start`` to ``end``; None until both happened."""
    return None if start is None or end is None else (utc(end) - utc(start)).total_seconds()


def is_number(value: Any) -> TypeGuard[int | float]:
    """A metric's value that can be charted or subtracted (a bool is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
