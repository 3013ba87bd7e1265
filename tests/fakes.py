"""Small builders shared by tests."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestration.launch import SubprocessLauncher
from registry.entities import NewPrediction


def prediction_id(n: int) -> str:
    return f"{n:032x}"


def prediction_rows(n: int, start: int = 0, *, model_name: str = "m") -> list[NewPrediction]:
    """``n`` logged predictions with ids ``prediction_id(start) ...``."""
    now = datetime.now(UTC)
    return [
        NewPrediction(
            id=prediction_id(start + i),
            created_at=now,
            text=f"text {start + i}",
            text_hash="h",
            label="a",
            scores={"a": 1.0},
            model_name=model_name,
            model_version=1,
            latency_ms=1.0,
        )
        for i in range(n)
    ]


class SleepLauncher(SubprocessLauncher):
    """A subprocess launcher whose child is ``sleep 60`` instead of a training run: tests kill it
    (as the OOM killer would) and watch what the dispatcher does."""

    def command(self, run_id: int) -> list[str]:
        return ["sleep", "60"]

    def kill(self, run_id: int) -> None:
        """SIGKILL the run's child and wait until it is gone."""
        child = self._children[run_id]
        child.kill()
        child.wait(10)
