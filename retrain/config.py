"""Typed configuration of a fine-tuning job, loadable from a JSON file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from registry.errors import InvalidInputError

DEFAULT_BASE_MODEL = "minilm-l6"
# How the loss weighs classes: "balanced" gives each class the same total weight (rare classes such
# as neutral movie snippets still get learned); "sqrt" is half-way; "none" is plain cross-entropy.
CLASS_WEIGHTINGS = ("balanced", "sqrt", "none")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a fine-tuning run produces (with the data and the seed)."""

    base_model: str = DEFAULT_BASE_MODEL
    epochs: float = 1.0
    max_length: int = 64
    seed: int = 13
    batch_size: int = 16
    eval_batch_size: int = 64
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    test_size: float = 0.2
    num_hidden_layers: int | None = None
    max_train_examples: int | None = None
    class_weighting: str = "none"

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs > 0, "must be > 0"),
            ("max_length", 8 <= self.max_length <= 512, "must be between 8 and 512"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, "must be >= 1"),
            ("learning_rate", 0 < self.learning_rate < 1, "must be between 0 and 1"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must be in [0, 1)"),
            ("test_size", 0 < self.test_size < 1, "must be between 0 and 1"),
            (
                "num_hidden_layers",
                self.num_hidden_layers is None or self.num_hidden_layers >= 1,
                "must be >= 1",
            ),
            (
                "max_train_examples",
                self.max_train_examples is None or self.max_train_examples >= 2,
                "must be >= 2",
            ),
            (
                "class_weighting",
                self.class_weighting in CLASS_WEIGHTINGS,
                f"must be one of {CLASS_WEIGHTINGS}",
            ),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise InvalidInputError(f"training config: {name}={getattr(self, name)!r} {rule}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError(f"training config: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**values)

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"{path}: cannot read training config: {exc}") from exc
        if not isinstance(values, dict):
            raise InvalidInputError(f"{path}: training config must be a JSON object")
        return cls.from_dict(values)
