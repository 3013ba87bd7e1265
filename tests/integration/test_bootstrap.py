"""`driftline bootstrap`: real fine-tuning of MiniLM cut to one layer, on a file the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from contracts.train import TrainConfig
from driftline.cli import main
from registry.artifacts import LocalArtifactStore
from registry.entities import RunStatus
from registry.settings import get_settings
from registry.store import Registry
from retrain.bootstrap import BootstrapRequest, bootstrap
from retrain.data import ColumnSpec
from retrain.evaluate import forward_outputs
from retrain.reference import read_reference_profile
from runtime.modelio import REFERENCE_PROFILE, load_version
from tests.textgen import topic_rows

TINY = ["--num-hidden-layers", "1", "--epochs", "3", "--learning-rate", "5e-4", "--max-length", "32"]


@pytest.fixture(scope="module")
def topics_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "topics.csv"
    pd.DataFrame(topic_rows(300, seed=7)).to_csv(path, index=False)
    return path


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def bootstrap_cli(data: Path, *extra: str) -> Result:
    return run_cli("bootstrap", "--data", data, "--text-col", "text", "--label-col", "label", *TINY, *extra)


def open_registry() -> Registry:
    return Registry.open(get_settings())


def test_bootstrap_registers_an_accurate_reproducible_champion(topics_csv: Path) -> None:
    first = bootstrap_cli(topics_csv, "--domain-col", "domain", "--json")
    assert first.exit_code == 0, first.output + first.stderr
    v1 = json.loads(first.stdout)["version"]
    assert v1["version"] == 1
    assert v1["labels"] == ["food", "sports", "weather"]
    metrics = v1["metrics"]
    assert metrics["n"] == 60
    assert metrics["accuracy"] >= 0.85, metrics  # chance is 0.33
    assert metrics["macro_f1"] >= 0.85, metrics
    assert set(metrics["per_class"]) == {"food", "sports", "weather"}
    assert all({"precision", "recall", "f1", "support"} <= set(c) for c in metrics["per_class"].values())

    listed = json.loads(run_cli("models", "--json").stdout)
    assert [(m["name"], m["version"], m["aliases"]) for m in listed] == [("sentiment", 1, ["champion"])]
    assert listed[0]["metrics"]["macro_f1"] == metrics["macro_f1"]
    table = run_cli("models").stdout
    assert "sentiment" in table and "champion" in table

    events = json.loads(run_cli("audit", "--json").stdout)
    assert [(ev["alias"], ev["from_version"], ev["to_version"]) for ev in events] == [("champion", None, 1)]
    assert events[0]["actor"] == "driftline bootstrap"

    refused = bootstrap_cli(topics_csv)
    assert refused.exit_code == 2
    assert "already has a champion (v1)" in refused.stderr

    # Same data, config and seed: the same metrics, and bit-for-bit the same weights.
    second = bootstrap_cli(topics_csv, "--domain-col", "domain", "--json", "--force")
    assert second.exit_code == 0, second.stderr
    v2 = json.loads(second.stdout)["version"]
    assert v2["version"] == 2
    for key in ("accuracy", "macro_f1", "ece", "per_class"):
        assert v2["metrics"][key] == metrics[key]
    assert v2["artifact_sha256"] == v1["artifact_sha256"]
    assert v2["data_snapshot_sha256"] == v1["data_snapshot_sha256"]

    # The registered model loads back through the checksum-verified path and classifies new text.
    registry = open_registry()
    settings = get_settings()
    loaded = load_version(LocalArtifactStore(settings.artifact_root), registry.get_version("sentiment", 1))
    logits, _ = forward_outputs(
        loaded.model,
        loaded.tokenizer,
        ["The bakery cooked rice with beans.", "A thunderstorm with hail."],
        max_length=loaded.max_length,
        progress=False,
    )
    assert [loaded.labels[i] for i in logits.argmax(axis=1)] == ["food", "weather"]
    # Calibration and the reference profile the drift monitor compares against are stored with it.
    version = registry.get_version("sentiment", 1)
    assert version.calibration is not None and version.calibration["temperature"] > 0
    assert version.calibration["rows"] == 60
    profile = read_reference_profile(
        LocalArtifactStore(settings.artifact_root).fetch(version.artifact) / REFERENCE_PROFILE
    )
    assert len(profile) == 60
    assert {"text", "label", "predicted", "probs", "text_length", "embedding"} <= set(profile.columns)
    assert len(profile["embedding"][0]) == 384
    assert (profile["predicted"] == profile["label"]).mean() == metrics["accuracy"]
    runs = registry.list_runs("sentiment")
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]


def test_failure_half_way_leaves_no_version_and_no_artifact(
    topics_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = open_registry()
    artifacts = LocalArtifactStore(get_settings().artifact_root)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(Registry, "register_version", broken)
    request = BootstrapRequest(
        data=topics_csv,
        columns=ColumnSpec(text="text", label="label"),
        train=TrainConfig(num_hidden_layers=1, epochs=0.2, max_length=16, max_train_examples=40),
    )
    with pytest.raises(RuntimeError, match="database went away"):
        bootstrap(request, registry, artifacts, progress=False)
    monkeypatch.undo()
    assert registry.list_models() == [] or registry.list_versions("sentiment") == []
    assert list(Path(artifacts.root).glob("sha256/*")) == []
    assert list(Path(artifacts.root).glob("tmp/*")) == []
    (run,) = registry.list_runs()
    assert run.status is RunStatus.FAILED and "database went away" in (run.error or "")


def _rows(**changes: object) -> list[dict]:
    rows = topic_rows(30, seed=3)
    for index, values in changes.items():
        rows[int(index.lstrip("r"))].update(values)  # type: ignore[arg-type]
    return rows


BAD_INPUTS = {
    "missing file": (None, ["--data-override", "nope.csv"], r"nope\.csv: no such file"),
    "no such column": (_rows(), ["--text-col", "sentence"], r"data\.csv: no column 'sentence'"),
    "empty texts": (
        _rows(r2={"text": " "}, r9={"text": ""}),
        [],
        r"data\.csv: column 'text' has 2 of 30 rows with empty or missing text \(rows 3, 10\)",
    ),
    "non-string texts": (
        _rows(r4={"text": 17}),
        ["--jsonl"],
        r"data\.jsonl: column 'text' has 1 of 30 rows that are not strings \(row 5\)",
    ),
    "missing labels": (
        _rows(r0={"label": None}, r1={"label": None}),
        [],
        r"data\.csv: column 'label' has 2 of 30 rows without a label \(rows 1, 2\)",
    ),
    "unknown labels": (
        _rows(r5={"label": "politics"}),
        ["--labels", "food,sports,weather"],
        r"data\.csv: column 'label' has 1 rows with unknown labels \['politics'\]",
    ),
    "one class": (
        [dict(r, label="food") for r in _rows()],
        [],
        r"data\.csv: column 'label' has 1 class \('food'\) in 30 rows; at least 2 are needed",
    ),
    "missing base model": (
        _rows(),
        ["--base-model", "/no/such/model"],
        r"base model '/no/such/model' is neither a local folder nor in the local",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    rows, extra, message = BAD_INPUTS[case]
    args = ["--text-col", "text", "--label-col", "label", *TINY]
    path = tmp_path / "data.csv"
    if "--jsonl" in extra:
        extra = [a for a in extra if a != "--jsonl"]
        path = tmp_path / "data.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows))
    elif rows is not None:
        pd.DataFrame(rows).to_csv(path, index=False)
    if "--data-override" in extra:
        path = tmp_path / extra[1]
        extra = []
    if "--text-col" in extra:
        args = [a for a in args if a != "text" or args[args.index(a) - 1] != "--text-col"]
        args.remove("--text-col")
    result = run_cli("bootstrap", "--data", path, *args, *extra)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    import re

    assert re.search(message, lines[0]), lines[0]
    registry = open_registry()
    assert registry.list_models() == []
    assert registry.list_runs() == []
    assert not list(Path(get_settings().artifact_root).glob("sha256/*"))


def test_a_degenerate_first_model_is_flagged_with_its_baseline(tmp_path: Path) -> None:
    rows = topic_rows(900, seed=9)
    food = [r for r in rows if r["label"] == "food"][:270]
    rest = [r for r in rows if r["label"] == "sports"][:15] + [r for r in rows if r["label"] == "weather"][:15]
    data = tmp_path / "skewed.csv"
    pd.DataFrame(food + rest).sample(frac=1.0, random_state=0).to_csv(data, index=False)
    # next to no training: whatever it reads, the model's answers are no better than always 'food'
    result = run_cli(
        "bootstrap", "--data", data, "--text-col", "text", "--label-col", "label",
        "--num-hidden-layers", "1", "--epochs", "1", "--learning-rate", "1e-7", "--max-length", "32",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "WARNING: this model is degenerate" in result.output, result.output
    assert "baseline (always 'food')" in result.output and "class weighting" in result.output
    version = open_registry().get_version_by_alias("sentiment", "champion")
    quality = version.metrics["quality"]
    assert quality["degenerate"] and quality["baseline"]["label"] == "food"
    assert quality["baseline"]["accuracy"] == pytest.approx(0.9, abs=0.05)
