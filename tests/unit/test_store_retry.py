"""The store's one retry of a write that lost an insert race (``registry.store.retry_on_conflict``)."""

from __future__ import annotations

import pytest

from registry.errors import ConflictError, NotFoundError
from registry.store import REGISTER_ATTEMPTS, retry_on_conflict


def failing(times: int, error: Exception | None = None):  # type: ignore[no-untyped-def]
    """A write that raises ``error`` (a conflict by default) ``times`` times, then returns its try count."""
    tries: list[int] = []

    def write() -> int:
        tries.append(1)
        if len(tries) <= times:
            raise error or ConflictError(f"conflict {len(tries)}")
        return len(tries)

    return write, tries


def test_a_conflict_is_retried_until_the_write_goes_through() -> None:
    write, _ = failing(REGISTER_ATTEMPTS - 1)
    assert retry_on_conflict(write, what="test") == REGISTER_ATTEMPTS


def test_the_last_conflict_is_raised_after_every_attempt() -> None:
    write, tries = failing(10)
    with pytest.raises(ConflictError, match="conflict 3"):
        retry_on_conflict(write, what="test", attempts=3)
    assert len(tries) == 3


def test_other_errors_are_not_retried() -> None:
    write, tries = failing(1, NotFoundError("gone"))
    with pytest.raises(NotFoundError):
        retry_on_conflict(write, what="test")
    assert len(tries) == 1


def test_backoff_waits_longer_after_each_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("registry.store.base.time.sleep", waits.append)
    write, _ = failing(3)
    assert retry_on_conflict(write, what="test", backoff_s=0.01) == 4
    assert waits == pytest.approx([0.01, 0.02, 0.03])
    write, _ = failing(2)
    retry_on_conflict(write, what="test")
    assert len(waits) == 3  # no back-off: retried at once
