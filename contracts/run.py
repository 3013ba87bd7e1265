"""The run contract: what a queued retraining run is asked to do, as one typed, validated record.

Four writers queue runs (the control API's ``POST /api/runs``, ``driftline retrain``, the monitor's
drift checks with their ``DRIFTLINE_RETRAIN`` setting, and replay sessions) and one reader executes them
(``python -m retrain run``). They meet only through the run's stored config, so that config is a
:class:`RunSpec`: every writer builds one (an unknown or misspelt key, at any level, is refused where it
enters, naming the key) and stores :meth:`RunSpec.to_record`; the run parses it back before it claims
the run.

Usage::

    >>> spec = RunSpec.model_validate({"train": {"epochs": 2}, "gate": {"min_improvement": 0.02}})
    >>> spec.train.epochs, spec.gate.min_improvement, spec.mode
    (2.0, 0.02, 'auto')
    >>> spec.to_record()
    {'train': {'epochs': 2.0}, 'gate': {'min_improvement': 0.02}}
    >>> RunSpec.model_validate(spec.to_record()) == spec
    True
    >>> parse_run_config({"gate": {"min_improvment": 1}})
    Traceback (most recent call last):
    ...
    registry.errors.InvalidInputError: run config is not valid: gate.min_improvment: unexpected keyword argument
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from contracts.search import SearchConfig
from contracts.train import TrainConfig
from registry.errors import InvalidInputError

# Refuse unknown keys inside the nested configs too (pydantic validates these dataclasses in a RunSpec).
_FORBID = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class AssemblyConfig:
    """How a run assembles its rows (:func:`retrain.assemble.assemble`); the trigger policy sizes its
    label count with ``holdout_fraction``."""

    __pydantic_config__: ClassVar[ConfigDict] = _FORBID
    # The fewest new labels a run trains on, for a run queued without one (by hand: `driftline retrain`,
    # POST /api/runs). The monitor's runs carry its own floor (monitor.policy.PolicyConfig.min_labels_floor,
    # written into their assembly by monitor/job.py).
    min_new_labels: int = 200
    holdout_fraction: float = 0.2  # of each class's new labels, its most recent share, held out for the gate
    replay_ratio: float = 1.0  # replayed champion-training rows per new training row
    min_replay_per_class: int = 5  # replayed rows each class of the champion's data gets (if it has them)
    seed: int = 13


@dataclass(frozen=True)
class GateConfig:
    """The promotion gate's declared margins (:func:`retrain.gate.evaluate_gate`); the trigger policy
    sizes its label count with ``confidence`` and ``min_improvement``."""

    __pydantic_config__: ClassVar[ConfigDict] = _FORBID
    min_improvement: float = 0.01  # macro-F1 the challenger must gain on the recent rows (0.01 = 1 point)
    ci_lower_bound: float = 0.0  # the CI's lower bound of that gain must be above this
    max_old_regression: float = 0.02  # macro-F1 the challenger may lose on the champion's own evaluation rows
    confidence: float = 0.95
    bootstrap_samples: int = 1000
    seed: int = 0
    # A challenger whose per-text latency or size exceeds the champion's by more than this share is
    # refused (retrain.cost), whatever it gains: the search may choose a costlier model.
    max_cost_increase: float = 0.25


# A run's training values that differ from TrainConfig's own defaults (those of a first model): a third
# epoch is safe to allow, since the checkpoint with the best validation macro-F1 is kept and early
# stopping ends longer budgets once more epochs stop helping.
RUN_TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 3.0}


def run_train_config(**values: Any) -> TrainConfig:
    """A run's training config: ``values`` over :data:`RUN_TRAIN_DEFAULTS` over TrainConfig's defaults."""
    return TrainConfig.from_dict({**RUN_TRAIN_DEFAULTS, **values})


class RunSpec(BaseModel):
    """What a run is asked to do: training values, data assembly, gate margins, promotion mode, and why.

    Every part has its defaults, so ``{}`` is a valid spec. ``max_length_from`` is "train" when the
    given ``train`` sets ``max_length`` (and no ``max_length_from`` is given); otherwise the run keeps the
    champion's tokens per text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: TrainConfig = Field(
        default_factory=run_train_config,
        description="Training values (TrainConfig) over a run's defaults (3 epochs).",
    )
    max_length_from: Literal["champion", "train"] = Field(
        "champion",
        description="champion: train with the champion's max_length; train: with train.max_length "
        "('auto': chosen again on the run's rows). Defaults to 'train' when train sets max_length.",
    )
    assembly: AssemblyConfig = Field(
        default_factory=AssemblyConfig, description='Data assembly, e.g. {"min_new_labels": 100}.'
    )
    gate: GateConfig = Field(default_factory=GateConfig, description="Promotion gate margins.")
    search: SearchConfig = Field(
        default_factory=SearchConfig,
        description='The recipe search (contracts.search): e.g. {"max_trials": 4} or {"enabled": false}.',
    )
    mode: Literal["auto", "manual"] = Field(
        "auto", description="auto: a passing challenger is promoted at once; manual: it waits for approval."
    )
    reason: str = Field("", description="Why the run was queued, in words.")
    requested_by: str | None = Field(
        None, description="Who queued it (the API records the caller's token name here)."
    )

    @model_validator(mode="before")
    @classmethod
    def _run_defaults(cls, data: Any) -> Any:
        """Given ``train`` values go over the run's defaults, and name where max_length comes from."""
        if not isinstance(data, Mapping) or not isinstance(data.get("train"), Mapping):
            return data
        train = data["train"]
        out = {**data, "train": {**RUN_TRAIN_DEFAULTS, **train}}
        if "max_length" in train:
            out.setdefault("max_length_from", "train")
        return out

    @field_validator("train", mode="wrap")
    @classmethod
    def _train_rules(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> TrainConfig:
        """TrainConfig's own range checks, reported as a validation error of ``train``."""
        try:
            result: TrainConfig = handler(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None
        return result

    def to_record(self) -> dict[str, Any]:
        """The JSON a run stores: each value that differs from the spec's defaults (parsing it gives
        this spec back), so a record says what was asked for and nothing more."""
        record = _differences(self.model_dump(mode="json"), RunSpec().model_dump(mode="json"))
        if "search" in self.model_fields_set:  # said, even as the default: the run process's setting yields
            record["search"] = {**record.get("search", {}), "enabled": self.search.enabled}
        return record


def _differences(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``values`` without what equals ``defaults``, one level into nested objects; empty ones dropped."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            value = _differences(value, defaults[key])
            if value:
                out[key] = value
        elif value != defaults[key]:
            out[key] = value
    return out


def parse_run_config(values: Mapping[str, Any]) -> RunSpec:
    """A stored run config as a RunSpec; raises :class:`InvalidInputError` naming each refused key."""
    try:
        return RunSpec.model_validate(values)
    except ValidationError as exc:
        raise InvalidInputError(f"run config is not valid: {describe_errors(exc.errors())}") from None


def describe_errors(errors: Any) -> str:
    """Pydantic's errors in one line: ``gate.min_improvment: unexpected keyword argument; ...``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg'].lower()}" for error in errors
    )
