"""The records a replay reads and writes: the stream's rows, what the service answered for each, the
holds while runs trained, what it refused, and the log of it all. Their own module so that the preflight
count and the summary read them without importing the replay's HTTP machinery (``driftline.replay``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class StreamRow:
    text: str
    label: str
    domain: str | None = None


@dataclass(frozen=True)
class ServedRow:
    index: int
    domain: str | None
    label: str
    predicted: str
    version: int
    at: float  # seconds since the replay started
    labeled: bool


@dataclass
class Hold:
    """Traffic held while a run trained: from which row, how long, and what came of it."""

    run_ids: list[int]
    row: int
    started: float
    ended: float = 0.0
    champion_before: int | None = None
    champion_after: int | None = None

    @property
    def swapped(self) -> bool:
        return self.champion_after is not None and self.champion_after != self.champion_before


@dataclass(frozen=True)
class Refused:
    """A stream row (or its label) the service refused, with the reason, row-specific numbers folded."""

    index: int
    reason: str


@dataclass
class ReplayLog:
    served: list[ServedRow] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    labels_sent: int = 0  # labels the service accepted
    queue_asks: int = 0  # hand-outs asked of the label queue (label_strategy "queue")
    queue_items: int = 0  # items they held that were rows of this replay
    checks: list[dict[str, Any]] = field(default_factory=list)  # check requests made (deterministic mode)
    seconds: float = 0.0
    interrupted: bool = False  # the stream was not replayed to its end (see ended_early)
    ended_early: str | None = None  # why: Ctrl-C, a 5xx, a lost connection, ...
    refused_rows: list[Refused] = field(default_factory=list)  # rows /predict refused: not served
    refused_labels: list[Refused] = field(default_factory=list)  # labels /feedback refused
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
