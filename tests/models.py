"""Tiny real models for tests: MiniLM cut to one layer, fine-tuned for seconds on generated text."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from common.texts import text_hash
from contracts.train import TrainConfig
from registry.artifacts import LocalArtifactStore
from registry.entities import ModelVersion, NewLabel, NewModelVersion, NewPrediction
from registry.settings import Settings
from registry.store import Registry
from retrain.bootstrap import BootstrapRequest, bootstrap
from retrain.data import ColumnSpec
from runtime.modelio import load_classifier_dir, load_version, save_classifier
from service.runtime import OnnxServingModel, ServingModel
from tests.textgen import topic_rows

TINY_TRAIN = TrainConfig(num_hidden_layers=1, epochs=3, learning_rate=5e-4, max_length=32, seed=3)


def make_home(home: Path, *, rows: int = 300) -> ModelVersion:
    """A Driftline home (SQLite + artifacts) whose champion is a freshly fine-tuned 1-layer model."""
    home.mkdir(parents=True, exist_ok=True)
    data = home / "topics.csv"
    pd.DataFrame(topic_rows(rows, seed=11)).to_csv(data, index=False)
    settings = Settings(home=home)
    registry = Registry.open(settings)
    result = bootstrap(
        BootstrapRequest(
            data=data, columns=ColumnSpec(text="text", label="label", domain="domain"), train=TINY_TRAIN
        ),
        registry,
        LocalArtifactStore(settings.artifact_root),
        progress=False,
    )
    registry.close()
    return result.version


def register_variant(
    home: Path, base: ModelVersion, *, favour: str, broken: bool = False, onnx: bool = False
) -> ModelVersion:
    """Register a copy of ``base`` whose classifier bias favours one label (not made champion).

    With ``broken``, a stored file is damaged afterwards so that loading it fails its checksum. With
    ``onnx``, the copy carries its own verified ONNX graph (as registration exports one), else none.
    """
    settings = Settings(home=home)
    registry = Registry.open(settings)
    artifacts = LocalArtifactStore(settings.artifact_root)
    loaded = load_classifier_dir(artifacts.fetch(base.artifact))
    index = loaded.labels.index(favour)
    with_bias = loaded.model.classifier.bias.data
    with_bias[index] += 8.0 if not broken else 9.0
    with tempfile.TemporaryDirectory() as tmp:
        out = save_classifier(
            loaded.model, loaded.tokenizer, Path(tmp) / "m", max_length=loaded.max_length, extra={}
        )
        if onnx:
            from runtime.onnxrt import attach_onnx

            texts = [row["text"] for row in topic_rows(60, seed=12)]
            block = attach_onnx(out, loaded.model, loaded.tokenizer, texts, max_length=loaded.max_length)
            assert block["verified"], block
        ref, _ = artifacts.put_dir(out)
    if broken:
        stored = Path(artifacts.root) / "sha256" / ref.sha256 / "model.safetensors"
        stored.write_bytes(stored.read_bytes()[:-16] + b"\0" * 16)
    version = registry.register_version(
        base.model_name,
        NewModelVersion(
            base_model=base.base_model,
            artifact=ref,
            labels=base.labels,
            metrics={},
            config={"favour": favour},
            parent_version=base.version,
            description=f"test variant favouring {favour}",
        ),
    )
    registry.close()
    return version


def copy_home(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def serve_and_label(
    home: Path, texts: list[str], truth: list[str] | Callable[[str], str], *, int8: bool = False
) -> float:
    """Predict with the champion as the service does, log the rows (embeddings included) and label them.

    ``truth`` is each text's label, or a function of the predicted label; ``int8``: on the champion's
    int8 ONNX graph (else PyTorch). Returns the served accuracy.
    """
    settings = Settings(home=home)
    registry = Registry.open(settings)
    champion = registry.get_version_by_alias("sentiment", "champion")
    loaded = load_version(LocalArtifactStore(settings.artifact_root), champion)
    model = (
        OnnxServingModel(loaded, champion, int8=True) if int8 else ServingModel(loaded, champion, trace=False)
    )
    assert model.runtime == ("onnx-int8" if int8 else "torch"), getattr(model, "int8_refused", None)
    out = model.predict(texts)
    now = datetime.now(UTC)
    rows = [
        NewPrediction(
            id=uuid.uuid4().hex,
            created_at=now,
            text=t,
            text_hash=text_hash(t),
            label=out.labels[int(out.probs[i].argmax())],
            scores=dict(zip(out.labels, out.probs[i].tolist(), strict=True)),
            model_name="sentiment",
            model_version=champion.version,
            latency_ms=1.0,
            embedding=out.embeddings[i].tobytes(),
            truncated=bool(out.truncated[i]) if out.truncated is not None else False,
            runtime=out.runtime,
        )
        for i, t in enumerate(texts)
    ]
    labels = [truth(r.label) for r in rows] if callable(truth) else list(truth)
    registry.add_predictions(rows)
    registry.add_labels([NewLabel(prediction_id=r.id, label=y) for r, y in zip(rows, labels, strict=True)])
    registry.close()
    return sum(r.label == y for r, y in zip(rows, labels, strict=True)) / len(rows)
