"""What every aggregate of the store shares: the engine and clock, the one transaction scope
(``registry.db.transaction``), the retry of writes that lose an insert race, and the checks and row
lookups more than one aggregate needs."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from registry.db import session_factory, transaction
from registry.errors import ConflictError, InvalidInputError, NotFoundError
from registry.orm import RegisteredModelRow, utcnow

logger = logging.getLogger(__name__)

REGISTER_ATTEMPTS = 8
ID_CHUNK = 500  # ids per IN (...) list: well within every backend's limit on bound parameters

T = TypeVar("T")


class StoreBase:
    """An engine, its sessions and the clock that stamps records; each aggregate of :class:`Registry`
    (``registry.store``) builds on it."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)
        self._clock = clock

    def now(self) -> datetime:
        """The time by the store's clock: what it stamps records with (a test may shift it)."""
        return self._clock()

    def close(self) -> None:
        self.engine.dispose()

    def _tx(self) -> AbstractContextManager[Session]:
        return transaction(self._sessions)


def retry_on_conflict(
    write: Callable[[], T], *, what: str, attempts: int = REGISTER_ATTEMPTS, backoff_s: float = 0.0
) -> T:
    """Run ``write`` (one transaction) again when a unique constraint refuses it (:class:`ConflictError`):
    a concurrent writer inserted the same key between our read and our insert, and the next attempt reads
    what it wrote. Gives up after ``attempts``, re-raising the last conflict; waits ``backoff_s`` times
    the attempt number between attempts."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except ConflictError:
            if attempt == attempts:
                raise
            logger.debug("%s: lost an insert race, retrying (%d)", what, attempt)
            if backoff_s:
                time.sleep(backoff_s * attempt)
    raise ValueError(f"attempts must be at least 1, got {attempts}")


def chunks(values: Sequence[str], size: int = ID_CHUNK) -> Iterator[Sequence[str]]:
    """``values`` ``size`` at a time: the lists of one ``IN (...)`` each."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def check_name(what: str, value: str, pattern: str | None = None, rule: str = "") -> None:
    """1 to 100 characters (the width of every name column) and, with ``pattern``, matching it (``rule``
    says the same in words); the error's ``field`` is ``what`` in snake case."""
    field = what.replace(" ", "_")
    if not value or not value.strip() or len(value) > 100:
        raise InvalidInputError(f"{what} {value!r} must be 1 to 100 characters", field=field)
    if pattern is not None and re.fullmatch(pattern, value) is None:
        raise InvalidInputError(f"{what} {value!r} is not allowed: it must be {rule}", field=field)


def model_row(s: Session, name: str, *, lock: bool = False) -> RegisteredModelRow:
    """The model's row; ``lock`` takes its row lock, so writers that count its records serialize."""
    row = s.get(RegisteredModelRow, name, with_for_update=True if lock else None)
    if row is None:
        raise NotFoundError(f"model '{name}' does not exist")
    return row
