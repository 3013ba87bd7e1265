"""What the console's pages work out from records, without a registry or a page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from registry.errors import InvalidInputError
from service.console.views import (
    RollbackPlan,
    is_number,
    metric_changes,
    parse_time,
    seconds_between,
    signals_of,
)


def test_a_typed_moment_is_read_in_utc() -> None:
    assert parse_time("2026-12-03 14:30") == datetime(2026, 12, 3, 14, 30, tzinfo=UTC)
    assert parse_time(" 2026-12-03T15:30:00+01:00 ") == datetime(2026, 12, 3, 14, 30, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="'at' must be a date and time") as refused:
        parse_time("yesterday")
    assert refused.value.details == {"field": "at"}


def test_seconds_between_naive_and_aware_moments() -> None:
    start = datetime(2026, 1, 1, 12, 0)  # naive, as SQLite gives it: UTC
    end = datetime(2026, 1, 1, 13, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert seconds_between(start, end) == 30.0
    assert seconds_between(start, None) is None and seconds_between(None, end) is None


def test_a_rollback_lists_each_metric_with_its_change_where_both_are_numbers() -> None:
    def version(metrics: dict[str, Any]) -> Any:
        return SimpleNamespace(metrics=metrics)

    plan = RollbackPlan(
        version({"accuracy": 0.9, "n": 100, "macro_f1": 0.8, "flag": True}),
        version({"accuracy": 0.85, "ece": 0.05}),
        SimpleNamespace(),  # type: ignore[arg-type]
    )
    rows = metric_changes(plan)
    assert [r[0] for r in rows] == ["accuracy", "macro_f1", "ece"]  # ``n`` and bools are no chartable metric
    assert rows[0][:3] == ("accuracy", 0.9, 0.85) and rows[0][3] == pytest.approx(-0.05)
    assert rows[1] == ("macro_f1", 0.8, None, None) and rows[2] == ("ece", None, 0.05, None)
    assert is_number(3) and is_number(0.5) and not is_number(True) and not is_number("1")


def test_a_checks_signals_are_the_entries_with_a_threshold_drifted_first() -> None:
    check: Any = SimpleNamespace(
        scores={
            "text_length": {"value": 0.1, "threshold": 0.2, "drifted": False},
            "embedding": {"value": 0.4, "threshold": 0.3, "drifted": True},
            "policy": {"cooldown": True},
            "window": 30,
        }
    )
    assert [s["name"] for s in signals_of(check)] == ["embedding", "text_length"]
    assert signals_of(check)[0] == {"name": "embedding", "value": 0.4, "threshold": 0.3, "drifted": True}
