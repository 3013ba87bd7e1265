"""The post-promotion guard's decision, as a pure function of paired predictions: harm is detected,
noise is not, the looks and their shared significance level are what the settings declare."""

from __future__ import annotations

import random

import pytest

from monitor.guard import GuardConfig, GuardStatus, judge

LABELS = ("a", "b", "c")


def paired(n: int, *, champion_acc: float, replaced_acc: float, seed: int) -> tuple[list[str], ...]:
    """Labels and two models' answers, each right independently with its own probability."""
    rng = random.Random(seed)
    y = [rng.choice(LABELS) for _ in range(n)]

    def answer(truth: str, acc: float) -> str:
        return truth if rng.random() < acc else rng.choice([c for c in LABELS if c != truth])

    return y, [answer(t, champion_acc) for t in y], [answer(t, replaced_acc) for t in y]


def test_looks_double_up_to_the_window_then_step_by_half_a_window() -> None:
    config = GuardConfig(min_labels=50, window_labels=300, watch_labels=1000, alpha=0.05)
    assert config.looks() == (50, 100, 200, 300, 450, 600, 750, 900, 1000)
    assert config.alpha_per_look == pytest.approx(0.05 / 9)
    assert GuardConfig(min_labels=30, window_labels=60, watch_labels=120).looks() == (30, 60, 90, 120)
    assert GuardConfig(min_labels=40, watch_labels=160).looks() == (40, 80, 160)


def test_waits_for_the_first_look() -> None:
    y, a, b = paired(49, champion_acc=0.2, replaced_acc=0.9, seed=1)
    verdict = judge(y, a, b, GuardConfig())
    assert verdict.status is GuardStatus.WAITING and verdict.look == 0
    assert "49 labeled rows since the promotion; the first look is at 50" in verdict.reason


def test_a_clearly_worse_champion_is_rolled_back_at_an_early_look() -> None:
    y, a, b = paired(120, champion_acc=0.55, replaced_acc=0.85, seed=2)  # looks at 50 and 100
    verdict = judge(y, a, b, GuardConfig(), names=("v3", "v2"))
    assert verdict.status is GuardStatus.ROLLBACK and verdict.look == 100
    assert verdict.difference < -0.1 and verdict.p_value < verdict.alpha_per_look
    assert verdict.replaced_only_right > verdict.champion_only_right
    assert verdict.reason.startswith("v3 is worse than v2 by more than 1.0 pts, significantly: on the same 100")
    assert verdict.judged == 100


def test_noise_is_not_harm() -> None:
    """Two equally good models: over a whole watch (every look), false rollbacks stay below alpha."""
    config = GuardConfig()
    watches = 150
    rolled_back = 0
    for seed in range(watches):
        y, a, b = paired(config.watch_labels, champion_acc=0.75, replaced_acc=0.75, seed=seed)
        rolled_back += any(
            judge(y[:n], a[:n], b[:n], config).status is GuardStatus.ROLLBACK for n in config.looks()
        )
    assert rolled_back <= 0.05 * watches


def test_harm_that_begins_after_the_promotion_is_seen_in_a_later_window() -> None:
    """The champion is as good for 400 rows (the traffic it was trained for), then much worse."""
    y, a, b = paired(400, champion_acc=0.85, replaced_acc=0.85, seed=4)
    y2, a2, b2 = paired(300, champion_acc=0.5, replaced_acc=0.85, seed=5)
    y, a, b = y + y2, a + a2, b + b2
    config = GuardConfig()
    assert judge(y[:400], a[:400], b[:400], config).status is GuardStatus.WATCHING
    verdict = judge(y[:600], a[:600], b[:600], config)
    assert verdict.status is GuardStatus.ROLLBACK and verdict.look == 600 and verdict.judged == 300
    assert "(301-600 since the promotion)" in verdict.reason


def test_a_small_loss_within_the_margin_is_not_harm_and_the_guard_ends() -> None:
    y = ["a"] * 1000
    champion = (["a"] * 99 + ["b"]) * 10  # 99.0 %
    replaced = ["a"] * 1000  # 100 %: better, but only by the 1-pt margin
    verdict = judge(y, champion, replaced, GuardConfig(margin=0.01))
    assert verdict.status is GuardStatus.CLEARED and verdict.look == 1000
    assert "the guard ends" in verdict.reason


def test_a_better_champion_is_watched_then_cleared() -> None:
    y, a, b = paired(1000, champion_acc=0.9, replaced_acc=0.6, seed=3)
    assert judge(y[:150], a[:150], b[:150], GuardConfig()).status is GuardStatus.WATCHING
    assert judge(y, a, b, GuardConfig()).status is GuardStatus.CLEARED


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        judge(["a"], ["a", "b"], ["a"], GuardConfig())
    with pytest.raises(ValueError, match="min_labels"):
        GuardConfig(min_labels=500, watch_labels=100)
