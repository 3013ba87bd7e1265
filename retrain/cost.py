"""What a model costs to serve, for the gate's latency and size budget.

The search may choose a recipe that changes the model's cost (a run could start from a deeper base, a
future space could search depth), and a challenger that is better but twice as slow can still be the
wrong promotion. The gate therefore refuses a challenger whose per-text latency or size exceeds the
champion's by more than ``GateConfig.max_cost_increase`` (default 25 %), with both figures in the reason.

Latency is measured here, on the same machine, the two models interleaved on the same held-out texts
and the fastest of a few rounds kept: these machines are noisy (about 15 %), and the minimum of
interleaved rounds is the figure least moved by what else runs. Size is the bytes of the parameters
(what the safetensors file holds).

    >>> cost_reasons(ModelCost(2.0, 90_000_000), ModelCost(2.2, 90_000_000), max_increase=0.25)
    []
    >>> cost_reasons(ModelCost(2.0, 90_000_000), ModelCost(3.0, 91_000_000), max_increase=0.25)
    ["latency 3.00 ms per text is 50 % above the champion's 2.00 ms (the budget allows 25 %)"]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

ROUNDS = 3
SAMPLE = 64  # texts timed per round


@dataclass(frozen=True)
class ModelCost:
    latency_ms: float  # per text, batched as the evaluation batches
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cost_reasons(champion: ModelCost, challenger: ModelCost, *, max_increase: float) -> list[str]:
    """A reason for each cost of ``challenger`` above ``champion``'s by more than ``max_increase``."""
    reasons = []
    allowed = f"(the budget allows {max_increase * 100:.0f} %)"
    if champion.latency_ms > 0 and challenger.latency_ms > champion.latency_ms * (1 + max_increase):
        above = (challenger.latency_ms / champion.latency_ms - 1) * 100
        reasons.append(
            f"latency {challenger.latency_ms:.2f} ms per text is {above:.0f} % above the champion's "
            f"{champion.latency_ms:.2f} ms {allowed}"
        )
    if champion.size_bytes > 0 and challenger.size_bytes > champion.size_bytes * (1 + max_increase):
        above = (challenger.size_bytes / champion.size_bytes - 1) * 100
        reasons.append(
            f"size {challenger.size_bytes / 1e6:.1f} MB is {above:.0f} % above the champion's "
            f"{champion.size_bytes / 1e6:.1f} MB {allowed}"
        )
    return reasons


def cost_summary(champion: ModelCost, challenger: ModelCost, *, max_increase: float) -> str:
    """Both models' costs in words, for a challenger within the budget."""
    return (
        f"cost within the budget of +{max_increase * 100:.0f} %: latency {challenger.latency_ms:.2f} ms per "
        f"text (champion {champion.latency_ms:.2f} ms), size {challenger.size_bytes / 1e6:.1f} MB "
        f"(champion {champion.size_bytes / 1e6:.1f} MB)"
    )


def parameter_bytes(model: Any) -> int:
    """The bytes of ``model``'s parameters and buffers (its weights file, give or take the header)."""
    tensors = [*model.parameters(), *model.buffers()]
    return int(sum(t.numel() * t.element_size() for t in tensors))


def measure_costs(
    champion: tuple[Any, Any, int],
    challenger: tuple[Any, Any, int],
    texts: Sequence[str],
    *,
    batch_size: int = 32,
) -> tuple[ModelCost, ModelCost]:
    """Both models' costs: each ``(model, tokenizer, max_length)``, timed interleaved on ``texts``."""
    import torch

    sample = list(texts[:SAMPLE]) or ["a short text"]
    best = [float("inf"), float("inf")]
    with torch.inference_mode():
        for _ in range(ROUNDS):
            for k, (model, tokenizer, max_length) in enumerate((champion, challenger)):
                started = time.perf_counter()
                for i in range(0, len(sample), batch_size):
                    batch = tokenizer(
                        sample[i : i + batch_size], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt",
                    ).to(model.device)
                    model(**batch)
                best[k] = min(best[k], (time.perf_counter() - started) * 1000 / len(sample))
    return (
        ModelCost(round(best[0], 3), parameter_bytes(champion[0])),
        ModelCost(round(best[1], 3), parameter_bytes(challenger[0])),
    )
