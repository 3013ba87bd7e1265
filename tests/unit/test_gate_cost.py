"""The gate's latency and size budget: a challenger costlier than the champion by more than
``GateConfig.max_cost_increase`` is refused with both figures in the reason, whatever it gains."""

from __future__ import annotations

import numpy as np

from contracts import GateConfig
from retrain.cost import ModelCost, parameter_bytes
from retrain.gate import PairedPredictions, evaluate_gate

Y = np.array([0, 1, 2] * 40)
BETTER = PairedPredictions(Y, np.zeros_like(Y), Y.copy())  # the challenger is right everywhere
CHAMPION = ModelCost(latency_ms=2.0, size_bytes=90_000_000)


def test_a_better_but_slower_challenger_is_refused_with_both_latencies() -> None:
    gate = evaluate_gate(BETTER, config=GateConfig(), costs=(CHAMPION, ModelCost(2.6, 90_000_000)))
    assert not gate.passed
    assert any("2.60 ms" in r and "2.00 ms" in r and "30 %" in r for r in gate.reasons)
    assert gate.costs == {"champion": CHAMPION.to_dict(), "challenger": {"latency_ms": 2.6, "size_bytes": 90_000_000}}


def test_a_bigger_challenger_is_refused_with_both_sizes() -> None:
    gate = evaluate_gate(BETTER, config=GateConfig(), costs=(CHAMPION, ModelCost(2.0, 135_000_000)))
    assert not gate.passed
    assert any("135.0 MB" in r and "90.0 MB" in r for r in gate.reasons)


def test_within_the_budget_the_gate_says_so_and_passes() -> None:
    gate = evaluate_gate(BETTER, config=GateConfig(), costs=(CHAMPION, ModelCost(2.4, 100_000_000)))
    assert gate.passed
    assert gate.reasons[-1].startswith("cost within the budget of +25 %")


def test_the_budget_is_a_setting_of_the_gate() -> None:
    loose = GateConfig(max_cost_increase=1.0)
    assert evaluate_gate(BETTER, config=loose, costs=(CHAMPION, ModelCost(3.9, 90_000_000))).passed
    assert not evaluate_gate(BETTER, config=loose, costs=(CHAMPION, ModelCost(4.1, 90_000_000))).passed


def test_parameter_bytes_counts_every_weight() -> None:
    import torch

    layer = torch.nn.Linear(10, 4)  # 44 float32 values
    assert parameter_bytes(layer) == 44 * 4
