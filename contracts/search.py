"""The search a training job runs over its recipe: the space of training values it may try, and its budget.

A fine-tuning job (``driftline bootstrap``, every retraining run) trains several candidate recipes and
keeps the one with the best macro-F1 on validation rows carved out of its training rows
(:mod:`retrain.search`). This module is the contract of that search, beside :class:`TrainConfig`
whose fields it varies: every searched parameter is a field of :class:`SearchSpace` with its default
range, a run's spec or a model's settings may narrow or widen any of them, and a bad space (unknown
parameter, empty range, wrong type) is refused naming the field before anything trains.

A range is ``[low, high]`` (a single value fixes the parameter); a choice is a list of values.

    >>> space = SearchSpace.model_validate({"learning_rate": [2e-5, 1e-4], "class_weighting": ["balanced"]})
    >>> space.learning_rate, space.class_weighting
    ((2e-05, 0.0001), ('balanced',))
    >>> from contracts.run import describe_errors
    >>> try:
    ...     SearchSpace.model_validate({"learning_rate": [1e-3, 1e-5], "dropout": [0.1]})
    ... except ValueError as exc:
    ...     print(describe_errors(exc.errors()))
    learning_rate: value error, empty range: low 0.001 is above high 1e-05; dropout: extra inputs are not permitted
    >>> SearchConfig().enabled, SearchConfig(enabled=False).max_trials
    (True, 6)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Weighting = Literal["none", "sqrt", "balanced"]

BOOTSTRAP_TRIALS = 8  # a first model's search has no champion to start near: more trials than a run's 6

# The training values a trial sets (each a TrainConfig field); the rest of TrainConfig stays as the job has it.
SEARCHED = (
    "learning_rate",
    "epochs",
    "class_weighting",
    "weight_decay",
    "warmup_ratio",
    "freeze_layers",
    "head_warmup_epochs",
    "augment_strength",
)


def _range(low_min: float, high_below: float | None = None) -> Any:
    """A validator for a ``(low, high)`` field: ordered, ``low`` at least ``low_min`` and, with
    ``high_below``, ``high`` under it."""

    def check(value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if low > high:
            raise ValueError(f"empty range: low {low} is above high {high}")
        if low < low_min:
            raise ValueError(f"low {low} is below the smallest allowed, {low_min}")
        if high_below is not None and high >= high_below:
            raise ValueError(f"high {high} must be below {high_below:g}")
        return value

    return check


class SearchSpace(BaseModel):
    """Where a search looks: each field one :class:`TrainConfig` value, as a range or a list of choices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: tuple[float, float] = Field(
        (1e-5, 2e-4), description="AdamW's peak learning rate, searched on a log scale."
    )
    epochs: tuple[int, int] = Field(
        (1, 6), description="The most epochs a trial trains (early stopping and pruning may end it sooner)."
    )
    class_weighting: tuple[Weighting, ...] = Field(
        ("none", "sqrt", "balanced"), min_length=1, description="Loss weights per class."
    )
    weight_decay: tuple[float, float] = Field((0.0, 0.1), description="AdamW's weight decay.")
    warmup_ratio: tuple[float, float] = Field((0.0, 0.2), description="Share of steps warming up the rate.")
    freeze_layers: tuple[int, ...] = Field(
        (0, 1, 2), min_length=1, description="Frozen lower encoder layers (with the embeddings)."
    )
    head_warmup_epochs: tuple[int, ...] = Field(
        (0, 1),
        min_length=1,
        description="Epochs that train the new classification head alone on the frozen encoder first.",
    )
    augment_strength: tuple[float, ...] = Field(
        (0.0, 0.5),
        min_length=1,
        description="Augmentation of the rarer classes' training rows (0: off); see retrain.augment.",
    )

    _lr = field_validator("learning_rate")(_range(1e-7, high_below=1.0))
    _epochs = field_validator("epochs")(_range(1))
    _decay = field_validator("weight_decay")(_range(0.0))
    _warmup = field_validator("warmup_ratio")(_range(0.0, high_below=1.0))

    @field_validator("freeze_layers", "head_warmup_epochs")
    @classmethod
    def _non_negative_ints(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if min(value) < 0:
            raise ValueError(f"values must be >= 0, got {list(value)}")
        return tuple(sorted(set(value)))

    @field_validator("augment_strength")
    @classmethod
    def _strengths(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(0.0 <= v <= 1.0 for v in value):
            raise ValueError(f"strengths must lie in [0, 1], got {list(value)}")
        return tuple(sorted(set(value)))

    def around(self, recipe: Mapping[str, Any], *, factor: float = 4.0) -> SearchSpace:
        """This space narrowed near ``recipe`` (a run's warm start: the champion's recipe): the learning
        rate within ``factor`` of the recipe's, the epochs within two of its; choices kept as they are.
        A recipe outside the space leaves that parameter's range as it is."""
        changes: dict[str, Any] = {}
        lr = recipe.get("learning_rate")
        low, high = self.learning_rate
        if isinstance(lr, float) and low <= lr <= high:
            changes["learning_rate"] = (max(low, lr / factor), min(high, lr * factor))
        epochs = recipe.get("epochs")
        low_e, high_e = self.epochs
        if isinstance(epochs, int | float) and low_e <= epochs <= high_e:
            changes["epochs"] = (max(low_e, int(epochs) - 2), min(high_e, int(round(epochs)) + 2))
        return self.model_copy(update=changes)


class SearchConfig(BaseModel):
    """Whether a job searches, how many trials and how long; and the space. ``enabled=False`` trains the
    one given recipe, exactly as a job did before the search existed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Search the recipe (false: train the given recipe once).")
    max_trials: int = Field(6, ge=1, le=500, description="Trials at most, the warm start included.")
    budget_factor: float = Field(
        5.0,
        gt=0,
        description="Wall-clock budget as a multiple of the warm-start trial's seconds (the recipe the "
        "job would train without a search); trials that would run past it stop at their next evaluation.",
    )
    min_budget_s: float = Field(
        60.0, ge=0, description="The budget is never below this (a tiny first trial says little)."
    )
    budget_s: float | None = Field(
        None, gt=0, description="A hard cap on the search's wall-clock seconds, whatever the factor says."
    )
    space: SearchSpace = Field(default_factory=SearchSpace, description="Where the search looks.")
    seed: int = Field(13, description="The sampler's seed.")
