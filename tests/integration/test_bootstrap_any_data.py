"""`driftline bootstrap` on any user's data: many or two classes, integer and unusual labels, and
``--max-length auto`` choosing from the texts. MiniLM cut to one layer, on files the test writes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
from click.testing import CliRunner, Result

from driftline.cli import main
from registry.artifacts import LocalArtifactStore
from registry.settings import get_settings
from registry.store import Registry
from tests.textgen import TOPICS

FAST = ["--num-hidden-layers", "1", "--epochs", "1", "--learning-rate", "5e-4", "--validation-fraction", "0"]
# Labels as users write them: case, spaces, punctuation, other scripts, digits.
TWELVE = [
    "très bien",
    "N/A",
    "5 ★",
    "Spam",
    "not spam",
    "a/b",
    "x y z",
    "42",
    "Ünïcode",
    "日本",
    "end.",
    "UPPER",
]


def bootstrap_cli(data: Path, *extra: str) -> Result:
    args = ["bootstrap", "--data", str(data), "--text-col", "text", "--label-col", "label", *FAST, *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def champion(version: int = 1) -> tuple[Registry, dict, dict]:  # type: ignore[type-arg]
    """The registry, version ``version``'s record (as a dict) and its artifact's driftline.json."""
    registry = Registry.open(get_settings())
    v = registry.get_version("sentiment", version)
    meta = json.loads(
        (
            Path(LocalArtifactStore(get_settings().artifact_root).fetch(v.artifact)) / "driftline.json"
        ).read_text()
    )
    return registry, {"labels": v.labels, "config": v.config, "metrics": v.metrics}, meta


def sentences(label_index: int, n: int, rng: random.Random) -> str:
    """``n`` sentences from one topic, with words that mark the class."""
    subjects, predicates = list(TOPICS.values())[label_index % len(TOPICS)]
    return " ".join(f"{rng.choice(subjects)} {rng.choice(predicates)} (mark{label_index})." for _ in range(n))


def test_twelve_classes_with_any_spelling(tmp_path: Path) -> None:
    rng = random.Random(5)
    rows = [
        {"text": f"{sentences(i % 12, 1, rng)} item {k}", "label": TWELVE[i % 12]}
        for k, i in enumerate(range(12 * 12))
    ]
    path = tmp_path / "twelve.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    result = bootstrap_cli(path, "--max-length", "32")
    assert result.exit_code == 0, result.output + result.stderr
    _, version, meta = champion()
    assert version["labels"] == tuple(sorted(TWELVE))
    assert set(version["metrics"]["per_class"]) == set(TWELVE)
    assert meta["max_length"] == 32 and "max_length_auto" not in version["config"]
    assert "max_length auto" not in result.stdout  # an explicit length is not chosen


def test_two_integer_classes_from_jsonl(tmp_path: Path) -> None:
    rng = random.Random(6)
    path = tmp_path / "two.jsonl"
    path.write_text(
        "\n".join(json.dumps({"text": f"{sentences(i % 2, 1, rng)} #{i}", "label": i % 2}) for i in range(60))
    )
    result = bootstrap_cli(path, "--max-length", "32", "--json")
    assert result.exit_code == 0, result.output + result.stderr
    v1 = json.loads(result.stdout)["version"]
    assert v1["labels"] == ["0", "1"]
    assert set(v1["metrics"]["per_class"]) == {"0", "1"}


def test_max_length_auto_picks_64_for_short_texts_and_more_for_long_ones(tmp_path: Path) -> None:
    rng = random.Random(7)
    short = tmp_path / "short.csv"
    pd.DataFrame(
        [{"text": f"{sentences(i % 3, 1, rng)} #{i}", "label": f"c{i % 3}"} for i in range(60)]
    ).to_csv(short, index=False)
    result = bootstrap_cli(short)  # --max-length auto is the default
    assert result.exit_code == 0, result.output + result.stderr
    assert "max_length auto: 64 tokens (covers 100.0 % of 48 training texts)" in result.stdout
    _, version, meta = champion(1)
    assert meta["max_length"] == 64 and version["config"]["max_length"] == 64
    auto = version["config"]["max_length_auto"]
    assert auto["max_length"] == 64 and auto["n_measured"] == 48 and auto["coverage"]["64"] == 1.0

    # Documents of about 14 sentences (150-250 tokens): 256 holds them whole, 128 does not.
    long = tmp_path / "long.csv"
    pd.DataFrame(
        [{"text": f"{sentences(i % 2, 14, rng)} #{i}", "label": f"c{i % 2}"} for i in range(40)]
    ).to_csv(long, index=False)
    result = bootstrap_cli(long, "--force", "--max-length", "auto")
    assert result.exit_code == 0, result.output + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("max_length auto:"))
    assert line.startswith(
        "max_length auto: 256 tokens (covers 100.0 % of 32 training texts; 128 covers 0.0 %"
    ), line
    _, version, meta = champion(2)
    assert meta["max_length"] == 256 and version["config"]["max_length"] == 256
    assert version["config"]["max_length_auto"]["coverage"] == {"64": 0.0, "128": 0.0, "256": 1.0, "512": 1.0}
