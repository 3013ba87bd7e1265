"""Augmentation for small or imbalanced training data: edited copies of a minority class's rows (issue 27).

A class with few rows teaches the model little, and class weights alone only repeat the same few texts
louder. Here a minority class gains new rows, each a copy of one of its own rows with a few words edited
by one of four operations (the "easy data augmentation" recipe of Wei and Zou, 2019): replace a word by a
neighbour, insert a neighbour of a word next to it, swap two words, delete a word. Neighbours are the
nearest whole-word vocabulary tokens by cosine similarity of the base model's own input token embeddings,
so nothing is downloaded and no second model is needed.

Two pure steps, so each is tested without training anything:

- :func:`token_neighbours` (or :func:`neighbour_table` from a model folder) builds the neighbour table for
  the words of the training texts;
- :func:`augment` adds the new rows, seeded, and says how many per class (:meth:`AugmentResult.summary`).

The caller passes TRAINING rows only: validation and held-out rows are never augmented, so they stay an
honest measure, and ``strength`` is a searched option kept only where validation says it helps.
"""

from __future__ import annotations

import math
import random
import re
import string
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from registry.errors import InvalidInputError

AUGMENTED = "augmented"  # the boolean column that marks the new rows
MAX_GROWTH = 2  # a class gains at most this many times its own rows
MIN_LETTERS = 3  # shorter words ("an", "of") have no useful neighbours
# Where the input token embeddings live in a safetensors file, by architecture (any prefix, e.g. "bert.").
EMBEDDING_KEYS = ("word_embeddings.weight", "embed_tokens.weight", "wte.weight", "shared.weight")
_CHUNK = 512  # query words per matrix product
_WORD = re.compile(rf"[^\W\d_]{{{MIN_LETTERS},}}")
_OPERATIONS = ("replace", "insert", "swap", "delete")


class Vocabulary(Protocol):
    """What :func:`token_neighbours` needs of a tokenizer (any Hugging Face tokenizer has it)."""

    def get_vocab(self) -> dict[str, int]: ...

    @property
    def all_special_tokens(self) -> list[str]: ...


def is_whole_word(token: str) -> bool:
    """A vocabulary token usable as a word: lower-case letters only, at least 3 of them.

    This leaves out WordPiece continuations (``##ing``), special tokens (``[CLS]``, ``[unused0]``),
    punctuation, numbers and short function words.
    """
    return len(token) >= MIN_LETTERS and token.isalpha() and token == token.lower()


def text_words(texts: Iterable[str]) -> set[str]:
    """The lower-cased words of ``texts`` that could be whole vocabulary tokens (the queries to look up)."""
    return {word.lower() for text in texts for word in _WORD.findall(text)}


def input_embeddings(base_path: Path | str) -> torch.Tensor:
    """The input token embedding matrix (vocabulary x width) of a local model folder, as float32.

    Read straight from the ``.safetensors`` weights, without building the model: one tensor, fast.
    """
    from safetensors import safe_open

    files = sorted(Path(base_path).glob("*.safetensors"))
    if not files:
        raise InvalidInputError(f"model folder {base_path} has no .safetensors weights")
    for file in files:
        with safe_open(str(file), framework="pt") as weights:
            keys = list(weights.keys())
            for suffix in EMBEDDING_KEYS:
                found = sorted(k for k in keys if k == suffix or k.endswith("." + suffix))
                if found:
                    return weights.get_tensor(found[0]).float()
    raise InvalidInputError(
        f"no input token embeddings in {base_path}: looked for a key ending in {', '.join(EMBEDDING_KEYS)}"
    )


def token_neighbours(
    embeddings: torch.Tensor | np.ndarray, tokenizer: Vocabulary, words: Iterable[str], *, k: int = 5
) -> dict[str, list[str]]:
    """For each word that is one whole vocabulary token, its ``k`` nearest whole-word tokens, nearest first.

    Nearness is the cosine similarity of the rows of ``embeddings`` (the model's input token embeddings,
    indexed by token id). Words are lower-cased; words that are not whole in-vocabulary tokens (see
    :func:`is_whole_word`) are left out, and so are answers that are not, and the word itself. Computed
    in chunks of matrix products; ties are broken by token id, so the table is deterministic.
    """
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    matrix = torch.as_tensor(embeddings).float()
    special = set(tokenizer.all_special_tokens)
    vocab = {
        token: i
        for token, i in tokenizer.get_vocab().items()
        if i < matrix.shape[0] and token not in special and is_whole_word(token)
    }
    tokens = sorted(vocab, key=vocab.__getitem__)  # answer candidates, by token id
    column = {token: j for j, token in enumerate(tokens)}
    queries = sorted({w.lower() for w in words} & column.keys())
    if not queries or len(tokens) < 2:
        return {}
    candidates = torch.nn.functional.normalize(matrix[[vocab[t] for t in tokens]], dim=1)
    table: dict[str, list[str]] = {}
    for start in range(0, len(queries), _CHUNK):
        chunk = queries[start : start + _CHUNK]
        own = torch.tensor([column[w] for w in chunk])
        scores = candidates[own] @ candidates.T
        scores[torch.arange(len(chunk)), own] = -math.inf  # never the word itself
        top = torch.topk(scores, min(k, len(tokens) - 1), dim=1)
        for word, values, indices in zip(chunk, top.values.tolist(), top.indices.tolist(), strict=True):
            ranked = sorted(zip(values, indices, strict=True), key=lambda pair: (-pair[0], pair[1]))
            table[word] = [tokens[j] for _, j in ranked]
    return table


def neighbour_table(base_path: Path | str, texts: Iterable[str], *, k: int = 5) -> dict[str, list[str]]:
    """:func:`token_neighbours` for the words of ``texts``, from a local model folder (offline).

    A caller that already holds the tokenizer calls :func:`token_neighbours` with it instead.
    """
    from retrain.train import load_tokenizer  # imported here: train may import this module

    tokenizer = load_tokenizer(Path(base_path))
    return token_neighbours(input_embeddings(base_path), tokenizer, text_words(texts), k=k)


@dataclass(frozen=True, eq=False)
class AugmentResult:
    """The training rows with the new ones appended, and how many each class gained.

    ``frame`` holds the original rows first, unchanged and in their order, then the new rows; its
    ``augmented`` column is ``False`` for the originals and ``True`` for the new rows.
    """

    frame: pd.DataFrame
    added: dict[str, int]  # class -> new rows (0 for the largest class)
    rows_before: int
    strength: float

    @property
    def rows_added(self) -> int:
        return sum(self.added.values())

    def summary(self) -> dict[str, Any]:
        """JSON-ready, for the run's data counts and report."""
        return {
            "strength": self.strength,
            "rows_before": self.rows_before,
            "rows_added": self.rows_added,
            "rows_after": self.rows_before + self.rows_added,
            "added": dict(self.added),
        }


def rows_to_add(count: int, largest: int, strength: float) -> int:
    """New rows for a class of ``count`` rows: ``strength`` of its gap to the largest class (rounded half
    up), at most :data:`MAX_GROWTH` times its own rows, so 5 rows never become 500 near-copies."""
    return min(math.floor(strength * (largest - count) + 0.5), MAX_GROWTH * count)


def augment(
    frame: pd.DataFrame, neighbours: Mapping[str, Sequence[str]], *, strength: float, seed: int
) -> AugmentResult:
    """New rows for each class smaller than the largest, edited from that class's own rows.

    ``frame`` has ``text`` and ``label`` columns and holds TRAINING rows only. A class of ``count`` rows
    gains :func:`rows_to_add` rows; each copies a row of the class (used in turn, in a seeded order; other
    columns are copied too) with ``strength`` of its words edited (see :func:`edit_text`). ``strength`` 0
    adds nothing. Labels never change, texts are never empty, the original rows are never modified.

    >>> rows = pd.DataFrame({"text": ["good food", "great meal here", "bad service", "awful wait",
    ...                               "rude staff", "cold soup"],
    ...                      "label": ["pos", "pos", "neg", "neg", "neg", "neg"]})
    >>> table = {"good": ["great", "nice"], "great": ["good"], "food": ["meal"], "meal": ["food"]}
    >>> result = augment(rows, table, strength=0.5, seed=5)
    >>> result.added
    {'pos': 1, 'neg': 0}
    >>> result.frame[result.frame.augmented].to_dict("records")
    [{'text': 'good meal', 'label': 'pos', 'augmented': True}]
    >>> result.summary()
    {'strength': 0.5, 'rows_before': 6, 'rows_added': 1, 'rows_after': 7, 'added': {'pos': 1, 'neg': 0}}
    """
    _check(frame, strength)
    labels = pd.unique(frame["label"])
    counts = frame["label"].value_counts()
    largest = int(counts.max()) if len(counts) else 0
    originals = frame.assign(**{AUGMENTED: False})
    added: dict[str, int] = {}
    new_parts = []
    for label in labels:
        want = rows_to_add(int(counts[label]), largest, strength)
        made = _new_rows(frame[frame["label"] == label], want, neighbours, strength, _rng(seed, label))
        added[str(label)] = len(made)
        new_parts.append(made)
    result = pd.concat([originals, *new_parts], ignore_index=True) if any(added.values()) else originals
    return AugmentResult(
        frame=result.reset_index(drop=True), added=added, rows_before=len(frame), strength=strength
    )


def _check(frame: pd.DataFrame, strength: float) -> None:
    """Refuse what would make the result wrong, naming the problem."""
    missing = sorted({"text", "label"} - set(frame.columns))
    if missing:
        raise InvalidInputError(f"augment needs the columns text and label; missing: {', '.join(missing)}")
    if AUGMENTED in frame.columns:
        raise InvalidInputError(f"the rows already have an {AUGMENTED!r} column: augment the originals once")
    if not 0.0 <= strength <= 1.0 or math.isnan(strength):
        raise InvalidInputError(f"augmentation strength must be between 0 and 1, got {strength}")


def _rng(seed: int, label: Hashable) -> random.Random:
    """One generator per class, so a class's new rows do not depend on the other classes."""
    return random.Random(f"{seed}:{label}")


def _new_rows(
    rows: pd.DataFrame,
    want: int,
    neighbours: Mapping[str, Sequence[str]],
    strength: float,
    rng: random.Random,
) -> pd.DataFrame:
    """``want`` edited copies of ``rows`` (one class), each source row used in turn in a shuffled order."""
    sources = [i for i, text in enumerate(rows["text"]) if isinstance(text, str) and text.split()]
    if want <= 0 or not sources:
        return rows.iloc[0:0].assign(**{AUGMENTED: True})
    picked: list[int] = []
    while len(picked) < want:
        order = list(sources)
        rng.shuffle(order)
        picked.extend(order[: want - len(picked)])
    copies = rows.iloc[picked].copy()
    copies["text"] = [edit_text(text, neighbours, strength, rng) for text in copies["text"]]
    return copies.assign(**{AUGMENTED: True})


def edit_text(text: str, neighbours: Mapping[str, Sequence[str]], strength: float, rng: random.Random) -> str:
    """``text`` with ``strength`` of its words edited (at least one edit), one random operation per edit.

    An operation that cannot apply (no word with neighbours, a single word left) gives way to the next
    one that can; at least one word is always kept. Words are split on whitespace and joined by one space.
    """
    words = text.split()
    for _ in range(max(1, math.floor(strength * len(words) + 0.5))):
        first = rng.randrange(len(_OPERATIONS))
        for step in range(len(_OPERATIONS)):
            if _apply(_OPERATIONS[(first + step) % len(_OPERATIONS)], words, neighbours, rng):
                break
    return " ".join(words)


def _apply(
    operation: str, words: list[str], neighbours: Mapping[str, Sequence[str]], rng: random.Random
) -> bool:
    """Edit ``words`` in place by ``operation``; False when it cannot apply to them."""
    if operation in ("swap", "delete"):
        if len(words) < 2:
            return False
        i, j = rng.sample(range(len(words)), 2)
        if operation == "swap":
            words[i], words[j] = words[j], words[i]
        else:
            del words[i]
        return True
    with_neighbours = [i for i, word in enumerate(words) if neighbours.get(_core(word).lower())]
    if not with_neighbours:
        return False
    i = rng.choice(with_neighbours)
    core = _core(words[i])
    new = rng.choice(list(neighbours[core.lower()]))
    if operation == "replace":
        words[i] = words[i].replace(core, _match_case(core, new), 1)
    else:
        words.insert(i + 1, new)
    return True


def _core(word: str) -> str:
    """The word without the punctuation around it: ``"good,"`` -> ``"good"``."""
    return word.strip(string.punctuation)


def _match_case(original: str, new: str) -> str:
    """``new`` in the case of ``original`` (``Good`` -> ``Great``, ``GOOD`` -> ``GREAT``)."""
    if len(original) > 1 and original.isupper():
        return new.upper()
    if original[:1].isupper():
        return new[:1].upper() + new[1:]
    return new
