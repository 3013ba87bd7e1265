"""``max_length="auto"``: how many tokens per text to train, evaluate and serve with, chosen from the data.

Attention costs grow with the sequence length, so the choice is the smallest of a few candidate lengths
that holds (nearly) all of a typical training text: the smallest candidate covering at least
``coverage`` (95 %) of the training texts' token counts, special tokens included, capped at what the
model can take. Texts longer than the chosen length are truncated at the END, as ``truncation=True``
does everywhere in Driftline (training, evaluation, serving): the head of the text is kept, which is
where e-mails and documents carry their topic (subject, opening lines).

    >>> def words(texts, **_):  # a stand-in tokenizer: a token per word, and two special ones
    ...     return {"input_ids": [["[CLS]", *t.split(), "[SEP]"] for t in texts]}
    >>> texts = ["short text"] * 70 + ["word " * 200] * 30
    >>> choice = choose_max_length(words, texts, model_limit=512)
    >>> choice.max_length, choice.coverage[128]
    (256, 0.7)

To bound the cost on huge inputs, tokens are counted on a seeded sample of at most ``sample_size``
texts, each cut to ``max_chars`` characters (far more than 512 tokens ever take).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contracts.train import AUTO, MAX_LENGTH_RANGE, TrainConfig
from registry.errors import InvalidInputError

logger = logging.getLogger(__name__)

CANDIDATES = (64, 128, 256, 512)
COVERAGE = 0.95  # share of the training texts that must fit whole
SAMPLE_SIZE = 2_000  # texts whose tokens are counted
MAX_CHARS = 20_000  # characters of each measured text
# A tokenizer without a known limit reports a huge sentinel (``int(1e30)``) as ``model_max_length``.
_SANE_TOKENIZER_LIMIT = 100_000


@dataclass(frozen=True)
class LengthChoice:
    """The length chosen and the evidence: the share of measured texts each candidate holds whole."""

    max_length: int
    coverage: dict[int, float]  # candidate length -> share of measured texts with at most that many tokens
    n_measured: int  # texts whose tokens were counted (a seeded sample of n_texts)
    n_texts: int  # training texts
    target: float  # the coverage asked for
    model_limit: int | None  # the most tokens the model takes, when known

    @property
    def covered(self) -> float:
        return self.coverage[self.max_length]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (candidate lengths become string keys), for a version's ``config["max_length_auto"]``."""
        return {
            "max_length": self.max_length,
            "coverage": {str(k): round(v, 4) for k, v in self.coverage.items()},
            "n_measured": self.n_measured,
            "n_texts": self.n_texts,
            "target": self.target,
            "model_limit": self.model_limit,
        }

    def describe(self) -> str:
        """One line: ``max_length auto: 256 tokens (covers 96.1 % of 2,000 training texts; 128 covers 71.0 %)``."""
        texts = f"{self.n_measured:,} training texts"
        if self.n_measured < self.n_texts:
            texts = f"{self.n_measured:,} sampled of {self.n_texts:,} training texts"
        parts = [f"covers {self.covered * 100:.1f} % of {texts}"]
        smaller = [c for c in self.coverage if c < self.max_length]
        if smaller:
            below = max(smaller)
            parts.append(f"{below} covers {self.coverage[below] * 100:.1f} %")
        limit = ""
        if self.covered < self.target:
            limit = (
                ", the model's limit" if self.max_length == self.model_limit else ", the largest candidate"
            )
            parts.append("longer texts are cut at the end")
        return f"max_length auto: {self.max_length} tokens{limit} ({'; '.join(parts)})"


def model_token_limit(model_dir: Path, tokenizer: Any = None) -> int | None:
    """The most tokens ``model_dir``'s model takes: ``max_position_embeddings`` of its config and the
    tokenizer's ``model_max_length`` when that is a real limit (the smaller of the two); None if unknown."""
    limits: list[int] = []
    config_path = Path(model_dir) / "config.json"
    if config_path.is_file():
        try:
            value = json.loads(config_path.read_text()).get("max_position_embeddings")
        except (OSError, json.JSONDecodeError):
            value = None
        if isinstance(value, int) and value > 0:
            limits.append(value)
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < _SANE_TOKENIZER_LIMIT:
        limits.append(value)
    return min(limits) if limits else None


def token_counts(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    sample_size: int = SAMPLE_SIZE,
    max_chars: int = MAX_CHARS,
    seed: int = 13,
) -> np.ndarray:
    """Tokens (special tokens included) of a seeded sample of at most ``sample_size`` texts, each cut
    to ``max_chars`` characters."""
    picked: Sequence[str] = texts
    if len(texts) > sample_size:
        picked = [texts[i] for i in sorted(random.Random(seed).sample(range(len(texts)), sample_size))]
    cut = [str(t)[:max_chars] for t in picked]
    if not cut:
        return np.zeros(0, dtype=np.int64)
    # verbose=False: no "sequence longer than the maximum" warning; these texts are only counted
    encoded = tokenizer(cut, add_special_tokens=True, truncation=False, verbose=False)
    return np.array([len(ids) for ids in encoded["input_ids"]], dtype=np.int64)


def choose_max_length(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    candidates: Sequence[int] = CANDIDATES,
    coverage: float = COVERAGE,
    model_limit: int | None,
    sample_size: int = SAMPLE_SIZE,
    max_chars: int = MAX_CHARS,
    seed: int = 13,
) -> LengthChoice:
    """The smallest candidate covering at least ``coverage`` of the texts' token counts, capped at
    ``model_limit``; the largest usable candidate when none covers enough (longer texts are then cut
    at the end). A model limit below the largest candidate is itself a candidate."""
    low, high = MAX_LENGTH_RANGE
    if not candidates or any(not low <= c <= high for c in candidates):
        raise InvalidInputError(f"max_length candidates {list(candidates)} must be between {low} and {high}")
    if not 0 < coverage <= 1:
        raise InvalidInputError(f"max_length coverage {coverage} must be in (0, 1]")
    if model_limit is not None and model_limit < low:
        raise InvalidInputError(f"the model takes at most {model_limit} tokens; at least {low} are needed")
    usable = sorted({c for c in candidates if model_limit is None or c <= model_limit})
    if model_limit is not None and model_limit < max(candidates) and model_limit not in usable:
        usable.append(min(model_limit, high))
    counts = token_counts(tokenizer, texts, sample_size=sample_size, max_chars=max_chars, seed=seed)
    shares = {c: float((counts <= c).mean()) if len(counts) else 1.0 for c in usable}
    chosen = next((c for c in usable if shares[c] >= coverage), usable[-1])
    return LengthChoice(
        max_length=chosen,
        coverage=shares,
        n_measured=len(counts),
        n_texts=len(texts),
        target=coverage,
        model_limit=model_limit,
    )


def resolve_max_length(
    cfg: TrainConfig, tokenizer: Any, texts: Sequence[str], *, model_limit: int | None
) -> tuple[TrainConfig, LengthChoice | None]:
    """``cfg`` with an int ``max_length``: "auto" chosen from ``texts`` (with the evidence), an int
    checked against the model's limit (the choice is then None)."""
    if cfg.max_length == AUTO:
        choice = choose_max_length(tokenizer, texts, model_limit=model_limit, seed=cfg.seed)
        logger.info("%s", choice.describe())
        return dataclasses.replace(cfg, max_length=choice.max_length), choice
    if model_limit is not None and cfg.resolved_max_length > model_limit:
        raise InvalidInputError(
            f"training config: max_length={cfg.max_length} is above the model's limit of {model_limit} tokens"
        )
    return cfg, None
