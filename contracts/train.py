"""Typed configuration of a fine-tuning job, loadable from a JSON file: the ``train`` part of a run's
contract (:class:`contracts.run.RunSpec`), and what ``driftline bootstrap`` builds its options from."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict

from registry.errors import InvalidInputError

DEFAULT_BASE_MODEL = "minilm-l6"
# How the loss weighs classes: "balanced" gives each class the same total weight (rare classes such
# as neutral movie snippets still get learned); "sqrt" is half-way; "none" is plain cross-entropy;
# "auto" is "sqrt" when the training rows are imbalanced (see ``imbalance_ratio``), else "none":
# "balanced" measured no better than plain cross-entropy on the demo data, so only a milder weighting
# is applied, and only where a class is rare enough to be drowned out.
CLASS_WEIGHTINGS = ("auto", "balanced", "sqrt", "none")
# ``max_length="auto"``: the smallest of a few lengths that covers most training texts, chosen from the
# data before training (``retrain.lengths.choose_max_length``); what is trained and saved is always an int.
AUTO = "auto"
MAX_LENGTH_RANGE = (8, 512)


def valid_max_length(value: object) -> bool:
    """``"auto"`` or an int (not a bool) in ``MAX_LENGTH_RANGE``."""
    if value == AUTO:
        return True
    low, high = MAX_LENGTH_RANGE
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


# Off the command line: tuned once for fine-tuning small encoders; a run config's ``train`` still sets them.
_NO_OPTION = {"option": False}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a fine-tuning run produces (with the data and the seed).

    ``driftline bootstrap`` has an option for each field, from its metadata: ``help``; ``option``: False
    keeps the field off the command line; ``option_default`` replaces its default there; ``choices``."""

    # Inside a RunSpec (pydantic validates this dataclass there), an unknown key is refused, by name.
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    base_model: str = field(
        default=DEFAULT_BASE_MODEL,
        metadata={"help": "Local Hugging Face folder, or 'minilm-l6' for the packaged MiniLM-L6."},
    )
    epochs: float = 1.0
    # An int, or "auto" (resolved from the training texts before training: see ``retrain.lengths``). A
    # run keeps its champion's int; a first model from the command line has it chosen from its data.
    max_length: int | Literal["auto"] = field(
        default=64,
        metadata={
            "help": "Tokens per text (longer texts are cut at the end); 'auto': the smallest of "
            "64/128/256/512 that holds 95 % of the training texts whole, within the model's limit.",
            "option_default": AUTO,
        },
    )
    seed: int = 13
    batch_size: int = 16
    eval_batch_size: int = field(default=64, metadata=_NO_OPTION)
    learning_rate: float = 1e-4
    weight_decay: float = field(default=0.01, metadata=_NO_OPTION)
    warmup_ratio: float = field(default=0.1, metadata=_NO_OPTION)
    test_size: float = field(default=0.2, metadata={"help": "Held-out share."})
    num_hidden_layers: int | None = field(
        default=None, metadata={"help": "Keep only the first N encoder layers."}
    )
    max_train_examples: int | None = field(
        default=None, metadata={"help": "Cap the training rows (seeded sample)."}
    )
    class_weighting: str = field(
        default="auto",
        metadata={
            "help": "Loss weights per class; 'auto': 'sqrt' when the largest class has 3x the rows of "
            "the smallest.",
            "choices": CLASS_WEIGHTINGS,
        },
    )
    # "auto" weighs classes when largest / smallest class count >= this
    imbalance_ratio: float = field(default=3.0, metadata=_NO_OPTION)
    validation_fraction: float = field(
        default=0.1,
        metadata={
            "help": "Training rows set aside for early stopping and best-checkpoint selection (0: none)."
        },
    )
    # evaluate (and checkpoint) every N steps; None: every epoch
    eval_steps: int | None = field(default=None, metadata=_NO_OPTION)
    # evaluations without a better macro-F1 before stopping
    early_stopping_patience: int = field(default=2, metadata={"help": "0: never stop early."})
    freeze_layers: int = field(
        default=0, metadata={"help": "Freeze the embeddings and the lowest N encoder layers."}
    )
    head_warmup_epochs: int = field(
        default=0,
        metadata={"help": "Train the new classification head alone on the frozen encoder for N epochs first."},
    )
    augment_strength: float = field(
        default=0.0,
        metadata={
            "help": "Augment the rarer classes' training rows with edited copies (in-vocabulary neighbour "
            "swaps, insertions, deletions), 0 to 1; 0: off."
        },
    )

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs > 0, "must be > 0"),
            (
                "max_length",
                valid_max_length(self.max_length),
                f"must be 'auto' or an integer between {MAX_LENGTH_RANGE[0]} and {MAX_LENGTH_RANGE[1]}",
            ),
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
            ("imbalance_ratio", self.imbalance_ratio >= 1, "must be >= 1"),
            ("validation_fraction", 0 <= self.validation_fraction < 0.5, "must be in [0, 0.5)"),
            ("eval_steps", self.eval_steps is None or self.eval_steps >= 1, "must be >= 1"),
            ("early_stopping_patience", self.early_stopping_patience >= 0, "must be >= 0"),
            ("freeze_layers", self.freeze_layers >= 0, "must be >= 0"),
            ("head_warmup_epochs", self.head_warmup_epochs >= 0, "must be >= 0"),
            ("augment_strength", 0.0 <= self.augment_strength <= 1.0, "must be in [0, 1]"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise InvalidInputError(f"training config: {name}={getattr(self, name)!r} {rule}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def resolved_max_length(self) -> int:
        """The int ``max_length``; raises when it is still ``"auto"`` (resolve it first)."""
        if not isinstance(self.max_length, int):
            raise InvalidInputError(
                "training config: max_length='auto' must be resolved from the training texts first "
                "(retrain.lengths.resolve_max_length)"
            )
        return self.max_length

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
