"""The recipe search (retrain.search) and its contract (contracts.search), with a fake trainer: the space and
its refusals, the warm start, the centre, pruning, the budget, resuming a study, and honest selection."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from contracts.run import RunSpec, parse_run_config
from contracts.search import SearchConfig, SearchSpace
from contracts.train import TrainConfig
from registry.errors import InvalidInputError
from retrain.search import search
from retrain.search_records import COMPLETE, PRUNED, recipe_of
from retrain.train import TrainResult

LABELS = ["a", "b", "c"]


def rows(n: int = 200, skew: float = 0.7) -> pd.DataFrame:
    big = int(n * skew)
    labels = ["a"] * big + ["b", "c"] * ((n - big) // 2)
    return pd.DataFrame({"text": [f"text {i}" for i in range(len(labels))], "label": labels})


class FakeTrainer:
    """Validation macro-F1 as a function of the recipe: best near lr 5e-5 with balanced weights; each
    epoch's value rises towards it. Records every call's rows and recipe."""

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.sleep_s = sleep_s

    @staticmethod
    def score(cfg: TrainConfig) -> float:
        import math

        lr_term = -abs(math.log10(cfg.learning_rate) - math.log10(5e-5))
        weight = {"balanced": 0.2, "sqrt": 0.1, "none": 0.0, "auto": 0.05}[cfg.class_weighting]
        return 0.5 + weight + 0.2 * lr_term + 0.01 * cfg.epochs

    def __call__(self, train: pd.DataFrame, labels: Any, cfg: TrainConfig, **kw: Any) -> TrainResult:
        self.calls.append({"texts": set(train["text"]), "cfg": cfg})
        final = self.score(cfg)
        control = SimpleNamespace(should_training_stop=False)
        best = None
        for epoch in range(1, int(cfg.epochs) + 1):
            time.sleep(self.sleep_s)
            value = final - 0.1 / epoch
            best = value if best is None else max(best, value)
            for callback in kw.get("callbacks", []):
                callback.on_evaluate(None, None, control, metrics={"eval_macro_f1": value})
            if control.should_training_stop:
                break
        return TrainResult(
            model=None, tokenizer=None, train_loss=0.1, steps=1, seconds=0.0, examples_per_second=0.0,
            best_val_macro_f1=best,
        )


def run_search(tmp_path: Path, trainer: FakeTrainer, **kwargs: Any) -> Any:
    config = kwargs.pop("config", SearchConfig(max_trials=6, min_budget_s=30))
    return search(
        kwargs.pop("train", rows()),
        LABELS,
        kwargs.pop("base", TrainConfig(epochs=1.0)),
        base_path=tmp_path,
        config=config,
        work_dir=tmp_path / "work",
        study_name=kwargs.pop("study_name", "t"),
        trainer=trainer,
        **kwargs,
    )


def test_the_space_refuses_unknown_parameters_empty_ranges_and_wrong_types() -> None:
    for values, words in (
        ({"dropout": [0.1, 0.2]}, "dropout"),
        ({"learning_rate": [1e-3, 1e-5]}, "empty range"),
        ({"epochs": ["two", 3]}, "epochs"),
        ({"class_weighting": []}, "class_weighting"),
        ({"class_weighting": ["inverse"]}, "class_weighting"),
        ({"augment_strength": [1.5]}, "augment_strength"),
        ({"learning_rate": [1e-5, 2.0]}, "below 1"),
    ):
        with pytest.raises(ValidationError, match=words):
            SearchSpace.model_validate(values)


def test_a_run_spec_refuses_a_bad_space_naming_the_field() -> None:
    with pytest.raises(InvalidInputError, match=r"search\.space\.learning_rate"):
        parse_run_config({"search": {"space": {"learning_rate": [1e-3, 1e-5]}}})
    with pytest.raises(InvalidInputError, match=r"search\.max_trails"):
        parse_run_config({"search": {"max_trails": 3}})
    spec = RunSpec.model_validate({"search": {"max_trials": 3, "space": {"class_weighting": ["balanced"]}}})
    assert spec.search.max_trials == 3 and spec.search.space.class_weighting == ("balanced",)
    assert RunSpec.model_validate(spec.to_record()) == spec


def test_bootstrap_starts_from_the_given_recipe_then_the_centre(tmp_path: Path) -> None:
    trainer = FakeTrainer()
    base = TrainConfig(epochs=1.0, learning_rate=1e-4, class_weighting="auto")
    result = run_search(tmp_path, trainer, base=base)
    first, second = trainer.calls[0]["cfg"], trainer.calls[1]["cfg"]
    assert recipe_of(first) == recipe_of(base)
    assert second.class_weighting == "balanced"  # skewed rows: the centre weighs classes
    by_number = sorted(result.trials, key=lambda t: t.number)
    assert [t.origin for t in by_number[:2]] == ["warm start", "centre"]
    assert 2 < len(result.trials) <= 6
    chosen = next(t for t in result.trials if t.number == result.chosen)
    assert chosen.state == COMPLETE and chosen.value == max(t.value for t in result.trials if t.state == COMPLETE)
    assert result.trained.best_val_macro_f1 >= by_number[0].value  # never worse than the job without a search


def test_a_run_starts_from_the_champions_recipe_and_searches_near_it(tmp_path: Path) -> None:
    trainer = FakeTrainer()
    champion = {**TrainConfig().to_dict(), "learning_rate": 3e-5, "class_weighting": "sqrt", "epochs": 3.0}
    result = run_search(tmp_path, trainer, warm_start=champion)
    assert recipe_of(trainer.calls[0]["cfg"]) == recipe_of(champion)
    sampled = [c["cfg"].learning_rate for c in trainer.calls[2:]]
    assert all(3e-5 / 4 - 1e-12 <= lr <= 3e-5 * 4 + 1e-12 for lr in sampled)
    first = trainer.calls[0]["cfg"]
    expected = FakeTrainer.score(first) - 0.1 / int(first.epochs)  # its best epoch: the last
    assert result.summary()["warm_start_val_macro_f1"] == pytest.approx(expected, abs=1e-4)


def test_weak_trials_are_pruned_and_recorded(tmp_path: Path) -> None:
    trainer = FakeTrainer()
    space = SearchSpace(learning_rate=(1e-6, 1e-3), epochs=(4, 4))
    result = run_search(tmp_path, trainer, config=SearchConfig(max_trials=10, space=space, min_budget_s=60))
    states = {t.state for t in result.trials}
    assert PRUNED in states and COMPLETE in states
    pruned = [t for t in result.trials if t.state == PRUNED]
    assert all(len(t.curve) < 4 for t in pruned)  # stopped before its last epoch
    assert {"trials", "chosen", "chosen_params", "n_pruned"} <= set(result.summary())


def test_the_budget_stops_the_search(tmp_path: Path) -> None:
    trainer = FakeTrainer(sleep_s=0.05)
    config = SearchConfig(max_trials=50, budget_factor=2.0, min_budget_s=0.0, space=SearchSpace(epochs=(2, 2)))
    started = time.monotonic()
    result = run_search(tmp_path, trainer, config=config)
    warm = next(t for t in result.trials if t.origin == "warm start")
    assert len(result.trials) < 50
    assert time.monotonic() - started < 2.0 * warm.seconds + 3 * 0.05 * 2 + 1.0
    assert result.budget_s == pytest.approx(2.0 * warm.seconds, rel=0.5)


def test_too_few_rows_to_validate_train_the_warm_recipe_once(tmp_path: Path) -> None:
    trainer = FakeTrainer()
    result = run_search(tmp_path, trainer, train=rows(40))
    assert len(trainer.calls) == 1 and len(result.trials) == 1
    assert "no search" in result.note


def test_a_resumed_study_keeps_its_trials_and_retrains_the_best(tmp_path: Path) -> None:
    run_search(tmp_path, FakeTrainer(), config=SearchConfig(max_trials=4, min_budget_s=30))
    again = FakeTrainer()
    result = run_search(tmp_path, again, config=SearchConfig(max_trials=1, min_budget_s=30))
    assert len(result.trials) >= 5  # the earlier attempt's four and this one's
    assert result.trained.best_val_macro_f1 is not None


def test_selection_reads_training_rows_only(tmp_path: Path) -> None:
    """The search is given the training rows and nothing else: what the gate holds out cannot sway it."""
    train = rows()
    trainer = FakeTrainer()
    result = run_search(tmp_path, trainer, train=train)
    assert all(call["texts"] <= set(train["text"]) for call in trainer.calls)
    again = run_search(tmp_path / "other", FakeTrainer(), train=train)
    assert recipe_of(again.cfg) == recipe_of(result.cfg)


def test_a_recipe_that_fails_is_one_failed_trial_and_the_search_goes_on(tmp_path: Path) -> None:
    class Fragile(FakeTrainer):
        def __call__(self, train: pd.DataFrame, labels: Any, cfg: TrainConfig, **kw: Any) -> TrainResult:
            if cfg.class_weighting == "balanced":
                raise ValueError("this recipe cannot train")
            return super().__call__(train, labels, cfg, **kw)

    result = run_search(tmp_path, Fragile())
    failed = [t for t in result.trials if t.state == "failed"]
    assert failed and all("cannot train" in t.note for t in failed)
    assert result.cfg.class_weighting != "balanced" and result.trained.best_val_macro_f1 is not None


def test_two_trials_are_the_warm_start_and_the_centre(tmp_path: Path) -> None:
    result = run_search(tmp_path, FakeTrainer(), config=SearchConfig(max_trials=2, min_budget_s=30))
    assert sorted(t.origin for t in result.trials) == ["centre", "warm start"]
