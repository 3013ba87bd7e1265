"""``max_length="auto"``: the length chosen from the data, the config rule, and the retraining policy.
A word-count tokenizer stands in for the real one (no model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from contracts.train import TrainConfig
from registry.errors import InvalidInputError
from retrain.challenger import RunConfig, champion_max_length, run_max_length
from retrain.lengths import choose_max_length, model_token_limit, resolve_max_length, token_counts
from retrain.run import config_from_run
from retrain.train import class_weights


class WordTokenizer:
    """One token per word, plus [CLS] and [SEP]."""

    model_max_length = 512

    def __call__(self, texts: list[str], **kwargs: object) -> dict[str, list[list[int]]]:
        assert kwargs == {"add_special_tokens": True, "truncation": False, "verbose": False}
        return {"input_ids": [[0] * (len(t.split()) + 2) for t in texts]}


def words(n: int) -> str:
    return " ".join(["word"] * n)


def test_short_texts_get_the_smallest_length() -> None:
    choice = choose_max_length(WordTokenizer(), [words(n) for n in range(5, 40)], model_limit=512)
    assert choice.max_length == 64
    assert choice.coverage == {64: 1.0, 128: 1.0, 256: 1.0, 512: 1.0}
    assert (choice.n_measured, choice.n_texts) == (35, 35)
    assert choice.describe() == "max_length auto: 64 tokens (covers 100.0 % of 35 training texts)"


def test_the_smallest_length_covering_95_percent() -> None:
    # 96 texts of 150-245 tokens, 4 of 1,000: 256 holds 96 %, 128 none.
    texts = [words(148 + n) for n in range(96)] + [words(1000)] * 4
    choice = choose_max_length(WordTokenizer(), texts, model_limit=512)
    assert choice.max_length == 256
    assert choice.coverage == {64: 0.0, 128: 0.0, 256: 0.96, 512: 0.96}
    assert (
        choice.describe()
        == "max_length auto: 256 tokens (covers 96.0 % of 100 training texts; 128 covers 0.0 %)"
    )
    # Special tokens count: 62 words + [CLS] + [SEP] are 64 tokens, 63 words are 65.
    assert choose_max_length(WordTokenizer(), [words(62)] * 20, model_limit=512).max_length == 64
    assert choose_max_length(WordTokenizer(), [words(63)] * 20, model_limit=512).max_length == 128
    # Exactly at the threshold is enough.
    at = [words(10)] * 19 + [words(300)]
    assert choose_max_length(WordTokenizer(), at, model_limit=512).max_length == 64


def test_capped_at_the_models_limit() -> None:
    long = [words(900)] * 10
    choice = choose_max_length(WordTokenizer(), long, model_limit=512)
    assert choice.max_length == 512 and choice.covered == 0.0
    assert choice.describe() == (
        "max_length auto: 512 tokens, the model's limit (covers 0.0 % of 10 training texts; 256 covers 0.0 %; "
        "longer texts are cut at the end)"
    )
    capped = choose_max_length(WordTokenizer(), long, model_limit=128)
    assert capped.max_length == 128 and set(capped.coverage) == {64, 128}
    odd = choose_max_length(WordTokenizer(), long, model_limit=100)  # a limit between the candidates
    assert odd.max_length == 100 and set(odd.coverage) == {64, 100}
    with pytest.raises(InvalidInputError, match="at most 4 tokens; at least 8"):
        choose_max_length(WordTokenizer(), long, model_limit=4)


def test_counted_on_a_seeded_sample_of_cut_texts() -> None:
    texts = [words(10)] * 3_000 + [words(200)] * 2_000
    first = choose_max_length(WordTokenizer(), texts, model_limit=512, seed=1)
    again = choose_max_length(WordTokenizer(), texts, model_limit=512, seed=1)
    assert first == again and first.n_measured == 2_000 and first.n_texts == 5_000
    assert 0.55 < first.coverage[64] < 0.65 and first.max_length == 256
    assert "of 2,000 sampled of 5,000 training texts" in first.describe()
    # A 50,000-character text is counted on its first 20,000 characters only.
    assert token_counts(WordTokenizer(), ["a " * 25_000]).tolist() == [10_002]
    assert token_counts(WordTokenizer(), []).tolist() == []


def test_model_token_limit(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 514}))
    assert model_token_limit(tmp_path, SimpleNamespace(model_max_length=512)) == 512  # RoBERTa-like
    assert model_token_limit(tmp_path, SimpleNamespace(model_max_length=int(1e30))) == 514  # no real limit
    assert model_token_limit(tmp_path / "nowhere", None) is None


def test_config_accepts_auto_or_an_int() -> None:
    assert TrainConfig(max_length="auto").max_length == "auto"
    assert TrainConfig.from_dict({"max_length": "auto"}) == TrainConfig(max_length="auto")
    for bad in ("128", 4, 1000, True, 64.0):
        with pytest.raises(
            InvalidInputError, match="max_length=.* must be 'auto' or an integer between 8 and 512"
        ):
            TrainConfig(max_length=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must be resolved"):
        _ = TrainConfig(max_length="auto").resolved_max_length


def test_resolve_max_length() -> None:
    cfg, choice = resolve_max_length(
        TrainConfig(max_length="auto"), WordTokenizer(), [words(100)], model_limit=512
    )
    assert cfg.max_length == 128 and choice is not None and choice.max_length == 128
    same, none = resolve_max_length(
        TrainConfig(max_length=32), WordTokenizer(), [words(100)], model_limit=512
    )
    assert same.max_length == 32 and none is None
    with pytest.raises(InvalidInputError, match="max_length=512 is above the model's limit of 256 tokens"):
        resolve_max_length(TrainConfig(max_length=512), WordTokenizer(), [], model_limit=256)


def test_a_retraining_run_keeps_the_champions_length(tmp_path: Path) -> None:
    (tmp_path / "driftline.json").write_text(json.dumps({"labels": ["a", "b"], "max_length": 256}))
    champion = SimpleNamespace(config={"max_length": 128})
    assert champion_max_length(champion, tmp_path) == 256  # the artifact's meta first
    assert champion_max_length(champion, tmp_path / "elsewhere") == 128  # then the version config
    assert champion_max_length(SimpleNamespace(config={}), tmp_path / "elsewhere") is None

    recorded = config_from_run({"train": {"epochs": 2}})  # no max_length: the champion's is kept
    cfg, source = run_max_length(recorded, 256)
    assert (cfg.max_length, source, cfg.epochs) == (256, "champion", 2)
    assert run_max_length(RunConfig(), 256)[0].max_length == 256
    explicit = config_from_run({"train": {"max_length": 32}})
    assert (
        run_max_length(explicit, 256)[0].max_length == 32 and run_max_length(explicit, 256)[1] == "run config"
    )
    auto = config_from_run({"train": {"max_length": "auto"}})
    assert run_max_length(auto, 256) == (auto.train, "auto")  # chosen again on the run's rows
    assert run_max_length(RunConfig(), None)[1] == "run config"  # no record of the champion's: the config's


def test_class_weights_with_a_class_that_has_no_training_rows() -> None:
    labels = ("a", "b", "gone")
    for mode in ("balanced", "sqrt"):
        weights = class_weights(["a"] * 30 + ["b"] * 10, labels, mode)
        assert weights is not None and weights[2] == 0.0 and all(w > 0 for w in weights[:2])
    assert class_weights(["a"] * 30 + ["b"] * 10, labels, "balanced") == [40 / 90, 40 / 30, 0.0]
    assert class_weights([], labels, "balanced") == [0.0, 0.0, 0.0]
