"""The served forward pass as an ONNX graph, run by ONNX Runtime: exported when a version is registered,
verified against PyTorch on the version's reference rows, stored in the version's artifact.

The graph is :class:`registry.inference.PooledClassifier` exported with dynamic batch and sequence axes:
inputs in ``input_names`` order, outputs ``logits`` and ``pooled`` (the mean-pooled last hidden state the
prediction log and the drift monitor use), so the embeddings the monitor compares and the calibration
(a temperature on the logits) stay the same whichever runtime serves.

Verification (:func:`verify`): on the reference rows, the same predicted label on every row and class
probabilities within ``tolerance`` of PyTorch's. The result goes into the artifact's ``driftline.json``
under ``"onnx"``; only a verified graph may serve (``DRIFTLINE_RUNTIME=auto`` or ``onnx``). An export that
fails or disagrees leaves no graph in the artifact and the version serves on PyTorch.

Usage::

    block = attach_onnx(model_dir, model, tokenizer, reference_texts, max_length=128)
    block["verified"], block["max_prob_diff"]
    forward = OnnxForward(model_dir / ONNX_FILE, block["inputs"])
    logits, pooled = forward(encoded)        # numpy arrays
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
OPSET = 17
DEFAULT_TOLERANCE = 1e-4  # largest |p_onnx - p_torch| over every class of every reference row
EXPORT_TEXTS = ["an export example", "a second, somewhat longer example text for the export trace"]


def export_pooled(model: Any, tokenizer: Any, out_path: Path, *, max_length: int) -> tuple[str, ...]:
    """Export the pooled classifier to ``out_path``; returns its input names (in order)."""
    import torch

    from registry.inference import PooledClassifier, input_names

    enc = tokenizer(EXPORT_TEXTS, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    names = input_names(enc)
    module = PooledClassifier(model, names).eval()
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes.update(logits={0: "batch"}, pooled={0: "batch"})
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(enc[name] for name in names),
            str(out_path),
            input_names=list(names),
            output_names=["logits", "pooled"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return names


class OnnxForward:
    """An ONNX Runtime session of an exported graph: ``forward(encoded) -> (logits, pooled)``."""

    def __init__(self, path: Path, inputs: Sequence[str], *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = tuple(inputs)

    def __call__(self, encoded: Any) -> tuple[np.ndarray, np.ndarray]:
        feed = {name: _numpy(encoded[name]) for name in self.inputs}
        logits, pooled = self.session.run(["logits", "pooled"], feed)
        return logits, pooled


def _numpy(value: Any) -> np.ndarray:
    array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    return array.astype(np.int64, copy=False)


def verify(
    model: Any,
    tokenizer: Any,
    forward: OnnxForward,
    texts: Sequence[str],
    *,
    max_length: int,
    tolerance: float = DEFAULT_TOLERANCE,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Compare the graph with PyTorch on ``texts``: labels, probabilities, embeddings."""
    import torch

    from registry.inference import PooledClassifier
    from registry.scores import softmax

    eager = PooledClassifier(model, forward.inputs).eval()
    rows = agree = 0
    prob_diff = embedding_diff = 0.0
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        enc = tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        with torch.inference_mode():
            t_logits, t_pooled = eager(*(enc[name] for name in forward.inputs))
        o_logits, o_pooled = forward(enc)
        t_probs, o_probs = softmax(t_logits.float().numpy()), softmax(o_logits)
        rows += len(chunk)
        agree += int((t_probs.argmax(axis=1) == o_probs.argmax(axis=1)).sum())
        prob_diff = max(prob_diff, float(np.abs(t_probs - o_probs).max()))
        embedding_diff = max(embedding_diff, float(np.abs(t_pooled.float().numpy() - o_pooled).max()))
    return {
        "rows": rows,
        "labels_agree": agree,
        "max_prob_diff": prob_diff,
        "max_embedding_diff": embedding_diff,
        "tolerance": tolerance,
        "verified": rows > 0 and agree == rows and prob_diff <= tolerance,
    }


def attach_onnx(
    model_dir: Path,
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Export the graph into ``model_dir`` and verify it on ``texts`` (the reference rows); record the
    result in the folder's ``driftline.json`` under ``"onnx"`` and return it. A graph that fails to export
    or to verify is removed: the artifact then holds none, and the version serves on PyTorch."""
    from registry.modelio import DRIFTLINE_META

    path = Path(model_dir) / ONNX_FILE
    started = time.perf_counter()
    try:
        names = export_pooled(model, tokenizer, path, max_length=max_length)
        block: dict[str, Any] = {"file": ONNX_FILE, "inputs": list(names), "opset": OPSET}
        block.update(
            verify(
                model, tokenizer, OnnxForward(path, names), texts, max_length=max_length, tolerance=tolerance
            )
        )
    except Exception as exc:  # noqa: BLE001 - ONNX is an optimisation: PyTorch always serves
        block = {"verified": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    if not block["verified"]:
        path.unlink(missing_ok=True)
        block.pop("file", None)
        logger.warning("ONNX graph not kept (the version serves on PyTorch): %s", _why(block))
    meta_path = Path(model_dir) / DRIFTLINE_META
    meta = json.loads(meta_path.read_text())
    meta["onnx"] = block  # no timings here: the same model must give the same artifact, bit for bit
    meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True))
    return {**block, "seconds": round(time.perf_counter() - started, 2)}


def _why(block: dict[str, Any]) -> str:
    if "error" in block:
        return block["error"]
    return (
        f"{block['labels_agree']} of {block['rows']} labels agree, probabilities differ by up to "
        f"{block['max_prob_diff']:.2e} (tolerance {block['tolerance']:.0e})"
    )
