"""The ONNX Runtime path (issue 15): a version's forward pass exported to ONNX and verified against
PyTorch on its reference rows (a graph that disagrees is not kept); its int8 graph, kept only when the
accuracy guard passes, with its own reference profile that the monitor uses for windows int8 served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (make venv installs it)")

from registry.artifacts import LocalArtifactStore
from registry.settings import Settings
from registry.store import Registry
from runtime.modelio import DRIFTLINE_META, load_version
from runtime.onnxrt import (
    INT8_FILE,
    ONNX_FILE,
    HeldOut,
    OnnxForward,
    attach_int8,
    attach_onnx,
    verify,
)
from tests.textgen import market_rows, topic_rows

TEXTS = [r["text"] for r in topic_rows(40, seed=5)] + [r["text"] for r in market_rows(20, seed=5)]


@pytest.fixture(scope="module")
def champion(served_template: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """v1 of the served home (a real 1-layer MiniLM), its folder copied where the test may write."""
    settings = Settings(home=served_template)
    registry = Registry.open(settings)
    version = registry.get_version_by_alias("sentiment", "champion")
    registry.close()
    artifacts = LocalArtifactStore(settings.artifact_root)
    loaded = load_version(artifacts, version)
    folder = tmp_path_factory.mktemp("onnx") / "model"
    shutil.copytree(artifacts.fetch(version.artifact), folder)
    (folder / ONNX_FILE).unlink(missing_ok=True)
    return loaded, folder


def test_the_graph_matches_pytorch_on_the_reference_rows(champion) -> None:  # type: ignore[no-untyped-def]
    loaded, folder = champion
    block = attach_onnx(folder, loaded.model, loaded.tokenizer, TEXTS, max_length=loaded.max_length)
    assert block["verified"], block
    assert block["rows"] == len(TEXTS) and block["labels_agree"] == len(TEXTS)
    assert block["max_prob_diff"] <= 1e-4 and block["max_embedding_diff"] < 1e-3
    assert (folder / ONNX_FILE).is_file()
    recorded = json.loads((folder / DRIFTLINE_META).read_text())["onnx"]
    assert recorded == {k: v for k, v in block.items() if k != "seconds"}  # no timing: artifacts reproduce
    forward = OnnxForward(folder / ONNX_FILE, block["inputs"])
    enc = loaded.tokenizer(
        ["one", "a much longer text than the first one"], padding=True, return_tensors="pt"
    )
    logits, pooled = forward(enc)
    assert logits.shape == (2, len(loaded.labels)) and pooled.shape[0] == 2  # dynamic batch and length


def test_a_perturbed_graph_is_caught_and_not_kept(champion, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import onnx
    from onnx import numpy_helper

    loaded, folder = champion
    attach_onnx(folder, loaded.model, loaded.tokenizer, TEXTS[:8], max_length=loaded.max_length)
    graph = onnx.load(str(folder / ONNX_FILE))
    bias = next(init for init in graph.graph.initializer if init.name.endswith("classifier.bias"))
    values = numpy_helper.to_array(bias).copy()
    values[0] += 5.0  # pushes every row towards the first class
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    perturbed = tmp_path / "perturbed.onnx"
    onnx.save(graph, str(perturbed))
    names = json.loads((folder / DRIFTLINE_META).read_text())["onnx"]["inputs"]
    result = verify(
        loaded.model, loaded.tokenizer, OnnxForward(perturbed, names), TEXTS, max_length=loaded.max_length
    )
    assert not result["verified"] and result["labels_agree"] < result["rows"]
    assert result["max_prob_diff"] > 0.1

    # a tolerance no graph can meet (no difference is below zero): the graph is refused and removed
    refused = attach_onnx(
        folder, loaded.model, loaded.tokenizer, TEXTS, max_length=loaded.max_length, tolerance=-1.0
    )
    assert not refused["verified"] and refused["labels_agree"] == refused["rows"]
    assert not (folder / ONNX_FILE).exists() and "file" not in refused
    assert json.loads((folder / DRIFTLINE_META).read_text())["onnx"]["verified"] is False


def test_serving_on_onnx_runtime_gives_pytorchs_answers(served_template: Path) -> None:
    from service.runtime import OnnxRefused, OnnxServingModel, ServingModel

    settings = Settings(home=served_template)
    registry = Registry.open(settings)
    v1 = registry.get_version("sentiment", 1)
    variant = registry.get_version("sentiment", 2)  # registered without a graph (tests.models)
    registry.close()
    artifacts = LocalArtifactStore(settings.artifact_root)
    assert v1.metrics["onnx"]["verified"] and v1.metrics["onnx"]["rows"] > 0  # recorded on the version

    onnx = OnnxServingModel(load_version(artifacts, v1), v1)
    torch_model = ServingModel(load_version(artifacts, v1), v1)
    out, ref = onnx.predict(TEXTS), torch_model.predict(TEXTS)
    assert onnx.runtime == "onnx" and torch_model.runtime == "torch"
    assert (out.probs.argmax(axis=1) == ref.probs.argmax(axis=1)).all()
    assert abs(out.probs - ref.probs).max() <= 1e-4
    assert (
        out.embeddings is not None
        and abs(out.embeddings.astype("f4") - ref.embeddings.astype("f4")).max() < 1e-2
    )
    assert out.truncated is not None and (out.truncated == ref.truncated).all()
    with pytest.raises(OnnxRefused, match="no verified ONNX graph"):
        OnnxServingModel(load_version(artifacts, variant), variant)


def test_a_damaged_graph_is_refused_like_any_damaged_artifact(served_template: Path, tmp_path: Path) -> None:
    from registry.errors import ChecksumMismatchError
    from tests.models import copy_home

    home = copy_home(served_template, tmp_path / "home")
    settings = Settings(home=home)
    registry = Registry.open(settings)
    v1 = registry.get_version("sentiment", 1)
    registry.close()
    stored = Path(settings.artifact_root) / "sha256" / v1.artifact_sha256 / ONNX_FILE
    stored.write_bytes(stored.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ChecksumMismatchError):
        load_version(LocalArtifactStore(settings.artifact_root), v1)


def test_the_int8_graph_is_kept_with_its_guard_figures_and_its_own_reference(served_template: Path) -> None:
    import pandas as pd

    from runtime.modelio import REFERENCE_PROFILE, REFERENCE_PROFILE_INT8

    settings = Settings(home=served_template)
    registry = Registry.open(settings)
    v1 = registry.get_version("sentiment", 1)
    registry.close()
    guard = v1.metrics["onnx"]["int8"]
    assert guard["passed"] and guard["reasons"] == [] and guard["file"] == INT8_FILE, guard
    assert guard["rows"] >= 50 and guard["margin"] == 0.005
    assert guard["accuracy_fp32"] - guard["accuracy_int8"] <= 0.005
    assert guard["macro_f1_fp32"] - guard["macro_f1_int8"] <= 0.005
    assert 0 < guard["calibration"]["temperature"] and guard["calibration"]["rows"] == guard["rows"]
    folder = LocalArtifactStore(settings.artifact_root).fetch(v1.artifact)
    assert (folder / INT8_FILE).is_file()
    fp32, int8 = (pd.read_parquet(folder / name) for name in (REFERENCE_PROFILE, REFERENCE_PROFILE_INT8))
    assert fp32["text"].tolist() == int8["text"].tolist()  # the same rows, as each graph computes them
    assert fp32["embedding"].map(tuple).tolist() != int8["embedding"].map(tuple).tolist()
    assert isinstance(guard["embeddings_separable_from_fp32"], bool)


def test_the_int8_check_refuses_an_impossible_margin_and_too_few_rows(champion) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from runtime.onnxrt import run_graph

    loaded, folder = champion
    fp32 = attach_onnx(folder, loaded.model, loaded.tokenizer, TEXTS[:8], max_length=loaded.max_length)
    logits, pooled = run_graph(
        OnnxForward(folder / ONNX_FILE, fp32["inputs"]), loaded.tokenizer, TEXTS, max_length=loaded.max_length
    )
    # the fp32 graph stands for PyTorch here (attach_onnx verified them equal); its labels for the truth
    heldout = HeldOut(TEXTS, logits.argmax(axis=1), logits, pooled, 1.0)

    # a margin no graph can meet: int8 would have to beat fp32 by 100 points
    block, outputs = attach_int8(
        folder, loaded.tokenizer, fp32, heldout, max_length=loaded.max_length, margin=-1.0
    )
    assert not block["passed"] and outputs is None
    assert [r.split()[0] for r in block["reasons"]] == ["accuracy", "macro_f1"]
    assert block["accuracy_fp32"] == 1.0 and block["labels_agree_fp32"] == round(
        block["accuracy_int8"] * len(TEXTS)
    )
    assert not (folder / INT8_FILE).exists() and "file" not in block

    few = HeldOut(TEXTS[:20], np.zeros(20, dtype=int), logits[:20], pooled[:20], 1.0)
    block, outputs = attach_int8(folder, loaded.tokenizer, fp32, few, max_length=loaded.max_length)
    assert not block["passed"] and outputs is None and block["reasons"] == ["20 held-out rows, fewer than 50"]
    assert not (folder / INT8_FILE).exists()

    block, outputs = attach_int8(
        folder, loaded.tokenizer, fp32, heldout, max_length=loaded.max_length, margin=1.0
    )
    assert block["passed"] and outputs is not None and outputs[0].shape == logits.shape
    assert (folder / INT8_FILE).is_file() and len(block["probe_logits"]) == 3


def test_serving_on_int8_and_falling_back_to_fp32(served_template: Path) -> None:
    import dataclasses

    import numpy as np

    from service.runtime import OnnxServingModel

    settings = Settings(home=served_template)
    registry = Registry.open(settings)
    v1 = registry.get_version("sentiment", 1)
    registry.close()
    artifacts = LocalArtifactStore(settings.artifact_root)
    int8 = OnnxServingModel(load_version(artifacts, v1), v1, int8=True)
    fp32 = OnnxServingModel(load_version(artifacts, v1), v1)
    assert int8.runtime == "onnx-int8" and int8.int8_refused is None and fp32.runtime == "onnx"
    out, ref = int8.predict(TEXTS), fp32.predict(TEXTS)
    assert out.runtime == "onnx-int8" and ref.runtime == "onnx"
    assert (out.probs.argmax(axis=1) == ref.probs.argmax(axis=1)).mean() >= 0.9
    assert 0 < abs(out.probs - ref.probs).max() < 0.2  # int8 computes differently, but not far

    # an ONNX Runtime whose int8 kernels give other outputs than the guarded graph's: fp32 serves
    loaded = load_version(artifacts, v1)
    meta = json.loads(json.dumps(loaded.meta))
    probe = np.asarray(meta["onnx"]["int8"]["probe_logits"])
    probe[np.arange(len(probe)), probe.argmin(axis=1)] += 20.0  # the least likely class wins
    meta["onnx"]["int8"]["probe_logits"] = probe.tolist()
    refused = OnnxServingModel(dataclasses.replace(loaded, meta=meta), v1, int8=True)
    assert refused.runtime == "onnx" and "differ from the guarded graph" in (refused.int8_refused or "")

    meta["onnx"]["int8"] = {"passed": False, "reasons": ["accuracy 0.9 is more than 0.5 points below"]}
    refused = OnnxServingModel(dataclasses.replace(load_version(artifacts, v1), meta=meta), v1, int8=True)
    assert refused.runtime == "onnx" and refused.int8_refused == "accuracy 0.9 is more than 0.5 points below"


def test_a_batch_of_mixed_lengths_runs_in_length_groups_with_the_same_answers(served_template: Path) -> None:
    from service.runtime import OnnxServingModel, ServingModel

    settings = Settings(home=served_template)
    registry = Registry.open(settings)
    v1 = registry.get_version("sentiment", 1)
    registry.close()
    artifacts = LocalArtifactStore(settings.artifact_root)
    short = [f"ok {i}" for i in range(16)]
    long = [" ".join(["a fairly long review of the film that goes on"] * 12) + f" {i}" for i in range(16)]
    mixed = [t for pair in zip(short, long, strict=True) for t in pair]
    for model in (
        ServingModel(load_version(artifacts, v1), v1),
        OnnxServingModel(load_version(artifacts, v1), v1),
    ):
        out = model.predict(mixed)
        assert model.grouped_batches == 1, model.runtime  # split: 32 x 64 tokens unsplit, far fewer split
        alone = [model.predict([t]) for t in mixed]
        assert model.grouped_batches == 1
        probs = np.vstack([a.probs for a in alone])
        assert (out.probs.argmax(axis=1) == probs.argmax(axis=1)).all()
        assert abs(out.probs - probs).max() <= 1e-4, model.runtime
        assert out.truncated is not None and out.truncated.tolist() == [a.truncated[0] for a in alone]
        assert (
            abs(out.embeddings.astype("f4") - np.vstack([a.embeddings for a in alone]).astype("f4")).max()
            < 1e-2
        )
