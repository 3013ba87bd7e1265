"""Augmentation (issue 27): the pure row editing on a tiny neighbour table, and the neighbour table on the
packaged MiniLM's real token embeddings (read from its safetensors file; its vocab.txt stands in for the
tokenizer, so transformers is not imported)."""

from __future__ import annotations

import doctest
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import retrain.augment
from registry.errors import InvalidInputError
from retrain.augment import (
    AUGMENTED,
    augment,
    input_embeddings,
    is_whole_word,
    rows_to_add,
    text_words,
    token_neighbours,
)
from retrain.train import default_base_model_path

TABLE = {
    "good": ["great", "nice"],
    "great": ["good", "fine"],
    "food": ["meal", "dish"],
    "slow": ["late", "sluggish"],
    "service": ["staff"],
}


def skewed(n_big: int = 20, n_mid: int = 8, n_small: int = 3) -> pd.DataFrame:
    """Three classes of 20, 8 and 3 rows, with an extra column that new rows must copy."""
    rows = [(f"good food number {i} was great", "pos") for i in range(n_big)]
    rows += [(f"Slow service, order {i} came late!", "neg") for i in range(n_mid)]
    rows += [(f"food okay {i}", "mixed") for i in range(n_small)]
    frame = pd.DataFrame(rows, columns=["text", "label"])
    frame["source"] = [f"s{i}" for i in range(len(frame))]
    return frame


def test_the_examples_run() -> None:
    result = doctest.testmod(retrain.augment, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_strength_zero_adds_nothing() -> None:
    frame = skewed()
    before = frame.copy()
    result = augment(frame, TABLE, strength=0.0, seed=1)
    assert result.frame.drop(columns=AUGMENTED).equals(frame)
    assert not result.frame[AUGMENTED].any()
    assert result.added == {"pos": 0, "neg": 0, "mixed": 0}
    assert result.summary() == {
        "strength": 0.0,
        "rows_before": 31,
        "rows_added": 0,
        "rows_after": 31,
        "added": {"pos": 0, "neg": 0, "mixed": 0},
    }
    assert frame.equals(before)


def test_only_smaller_classes_gain_rows_capped_at_twice_their_own() -> None:
    result = augment(skewed(), TABLE, strength=0.5, seed=1)
    # neg: round(0.5 * 12) = 6 (under 2 x 8); mixed: round(0.5 * 17) = 9, capped at 2 x 3 = 6.
    assert result.added == {"pos": 0, "neg": 6, "mixed": 6}
    new = result.frame[result.frame[AUGMENTED]]
    assert new["label"].value_counts().to_dict() == {"neg": 6, "mixed": 6}
    assert result.summary()["rows_after"] == len(result.frame) == 31 + 12
    full = augment(skewed(), TABLE, strength=1.0, seed=1)
    assert full.added == {"pos": 0, "neg": 12, "mixed": 6}


def test_rows_to_add() -> None:
    assert rows_to_add(8, 20, 0.5) == 6
    assert rows_to_add(3, 20, 1.0) == 6  # the 2x cap
    assert rows_to_add(20, 20, 1.0) == 0  # the largest class
    assert rows_to_add(9, 20, 0.5) == 6  # 5.5 rounds half up
    assert rows_to_add(5, 6, 0.1) == 0


def test_originals_first_and_untouched_labels_kept_texts_never_empty() -> None:
    frame = skewed()
    before = frame.copy()
    result = augment(frame, TABLE, strength=1.0, seed=3)
    out = result.frame
    assert frame.equals(before)  # the caller's frame is not modified
    assert out.iloc[: len(frame)].drop(columns=AUGMENTED).equals(frame)
    assert not out[AUGMENTED].iloc[: len(frame)].any() and out[AUGMENTED].iloc[len(frame) :].all()
    assert list(out.index) == list(range(len(out)))
    new = out.iloc[len(frame) :]
    assert all(isinstance(t, str) and t.strip() for t in new["text"])
    # Each new row keeps the label (and other columns) of the row it was edited from.
    origin = frame.set_index("source")
    assert all(origin.loc[s, "label"] == label for s, label in zip(new["source"], new["label"], strict=True))
    assert (new["text"] != [origin.loc[s, "text"] for s in new["source"]]).mean() > 0.5  # most are edited


def test_edits_use_the_neighbours_and_keep_case_and_punctuation() -> None:
    rows = pd.DataFrame({"text": ["x"] * 4 + ["Slow service!"] * 2, "label": ["a"] * 4 + ["b"] * 2})
    texts = augment(rows, TABLE, strength=1.0, seed=0).frame["text"].iloc[6:].tolist()
    vocabulary = {"slow", "service", "late", "sluggish", "staff"}
    for text in texts:
        assert {w.strip("!").lower() for w in text.split()} <= vocabulary
    assert len(set(texts)) > 1


def test_single_word_texts_without_neighbours_stay_non_empty() -> None:
    rows = pd.DataFrame({"text": ["alpha beta gamma"] * 6 + ["zzz", "yyy"], "label": ["a"] * 6 + ["b"] * 2})
    new = augment(rows, TABLE, strength=1.0, seed=2).frame.iloc[8:]
    assert len(new) == 4
    assert set(new["text"]) <= {"zzz", "yyy"}


def test_deterministic_for_a_seed_and_different_for_another() -> None:
    first = augment(skewed(), TABLE, strength=0.8, seed=7).frame
    again = augment(skewed(), TABLE, strength=0.8, seed=7).frame
    other = augment(skewed(), TABLE, strength=0.8, seed=8).frame
    assert first.equals(again)
    assert not first["text"].equals(other["text"])


def test_a_class_rows_do_not_depend_on_other_classes() -> None:
    both = augment(skewed(), TABLE, strength=1.0, seed=4).frame
    without_mixed = augment(skewed(n_small=0), TABLE, strength=1.0, seed=4).frame
    new_neg = both[both[AUGMENTED] & (both["label"] == "neg")]["text"].tolist()
    assert new_neg == without_mixed[without_mixed[AUGMENTED]]["text"].tolist()


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan")])
def test_bad_strength_is_refused(strength: float) -> None:
    with pytest.raises(InvalidInputError, match="strength"):
        augment(skewed(), TABLE, strength=strength, seed=0)


def test_bad_frames_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="missing: label"):
        augment(pd.DataFrame({"text": ["a"]}), TABLE, strength=0.5, seed=0)
    once = augment(skewed(), TABLE, strength=0.5, seed=0).frame
    with pytest.raises(InvalidInputError, match="already"):
        augment(once, TABLE, strength=0.5, seed=0)


def test_empty_frame() -> None:
    empty = pd.DataFrame({"text": pd.Series([], dtype=str), "label": pd.Series([], dtype=str)})
    result = augment(empty, TABLE, strength=1.0, seed=0)
    assert result.added == {} and len(result.frame) == 0


# --- neighbours from the packaged model's own token embeddings ---------------------------------------


class VocabFile:
    """The tokenizer's vocabulary read from vocab.txt: what token_neighbours needs of a tokenizer."""

    all_special_tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    def __init__(self, path: Path) -> None:
        lines = path.read_text(encoding="utf-8").splitlines()
        self.vocab = {token: i for i, token in enumerate(lines)}

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)


@pytest.fixture(scope="module")
def minilm() -> tuple[torch.Tensor, VocabFile]:
    base = default_base_model_path()
    return input_embeddings(base), VocabFile(base / "vocab.txt")


def test_whole_words_and_text_words() -> None:
    assert is_whole_word("good") and not is_whole_word("##ing") and not is_whole_word("[CLS]")
    assert not is_whole_word("an") and not is_whole_word("Good") and not is_whole_word("3rd")
    words = text_words(["Good food, GREAT 42 service!", "an ok day"])
    assert words == {"good", "food", "great", "service", "day"}


def test_neighbours_on_the_real_embeddings(minilm: tuple[torch.Tensor, VocabFile]) -> None:
    embeddings, vocab = minilm
    assert embeddings.shape == (len(vocab.vocab), 384)
    table = token_neighbours(embeddings, vocab, ["good", "Movie", "##ing", "[CLS]", "qzxv", "an"], k=5)
    assert set(table) == {"good", "movie"}  # lower-cased; pieces, specials, unknown and short words left out
    assert {"great", "bad", "excellent", "nice"} & set(table["good"])
    assert {"film", "movies"} & set(table["movie"])
    unit = torch.nn.functional.normalize(embeddings, dim=1)
    for word, found in table.items():
        assert len(found) == 5 and word not in found
        assert all(is_whole_word(t) and t in vocab.vocab for t in found)
        cosines = [float(unit[vocab.vocab[word]] @ unit[vocab.vocab[t]]) for t in found]
        assert cosines == sorted(cosines, reverse=True)
        # Nothing whole-word outside the answer is nearer than its last one.
        whole = [i for t, i in vocab.vocab.items() if is_whole_word(t) and t != word and t not in found]
        assert float((unit[whole] @ unit[vocab.vocab[word]]).max()) <= cosines[-1] + 1e-6


def test_neighbours_are_fast_and_deterministic(minilm: tuple[torch.Tensor, VocabFile]) -> None:
    embeddings, vocab = minilm
    words = [t for t in vocab.vocab if is_whole_word(t)][2000:2400]
    start = time.perf_counter()
    table = token_neighbours(embeddings.numpy(), vocab, words, k=3)
    assert time.perf_counter() - start < 3.0
    assert len(table) == 400 and all(len(v) == 3 for v in table.values())
    assert token_neighbours(embeddings, vocab, words[:50], k=3) == {w: table[w] for w in words[:50]}


def test_no_embeddings_in_the_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no .safetensors"):
        input_embeddings(tmp_path)
