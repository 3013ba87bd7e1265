"""The served forward pass as an ONNX graph, run by ONNX Runtime: exported when a version is registered,
verified against PyTorch on the version's reference rows, stored in the version's artifact.

The graph is :class:`runtime.inference.PooledClassifier` exported with dynamic batch and sequence axes:
inputs in ``input_names`` order, outputs ``logits`` and ``pooled`` (the mean-pooled last hidden state the
prediction log and the drift monitor use), so the embeddings the monitor compares and the calibration
(a temperature on the logits) stay the same whichever runtime serves.

Verification (:func:`verify`): on the reference rows, the same predicted label on every row and class
probabilities within ``tolerance`` of PyTorch's. The result goes into the artifact's ``driftline.json``
under ``"onnx"``; only a verified graph may serve (``DRIFTLINE_RUNTIME=auto`` or ``onnx``). An export that
fails or disagrees leaves no graph in the artifact and the version serves on PyTorch.

int8 (:func:`attach_int8`): the verified graph quantized with ONNX Runtime's dynamic int8 quantization
(weights int8, activations quantized per batch), kept as a second graph only if its accuracy check passes on the
version's held-out rows (:func:`int8_check`): accuracy and macro-F1 within ``margin`` of fp32's, on at
least ``INT8_MIN_ROWS`` rows. Its outputs on ``PROBE_TEXTS`` are recorded, so that a server can check
that its ONNX Runtime computes the same int8 graph (int8 kernels differ by CPU).

The int8 embeddings are not fp32's: on a 1-layer MiniLM the monitor's own test
(:func:`runtime.scores.separability`, fp32 embeddings of half the rows against int8 ones of the other
half) told them apart with AUC 0.999 although every label agreed. So an int8 graph that is kept gets its
own reference profile and temperature, computed from its outputs on the same held-out rows
(``retrain.lifecycle.export_onnx``); the server logs which runtime made each prediction, and the
monitor compares an int8 window with the int8 profile. The check records that test's result.

With a model, ``attach_onnx(model_dir, model, tokenizer, reference_texts, max_length=128,
heldout=heldout)`` returns the ``"onnx"`` block (``verified``, ``max_prob_diff``, ``int8.passed``, ...)
and ``OnnxForward(model_dir / ONNX_FILE, block["inputs"])(encoded)`` the logits and pooled embeddings as
numpy arrays (``tests/integration/test_onnx.py`` runs both on a real model). The int8 guard's decision
needs none; as a doctest, run by ``tests/unit/test_doctests.py``, on four held-out rows where int8 flips
the third:

>>> heldout = HeldOut(
...     texts=["a", "b", "c", "d"],
...     y_true=np.array([0, 1, 1, 0]),
...     logits=np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0], [2.0, 0.0]]),
...     pooled=np.zeros((4, 8)),
...     temperature=1.0,
... )
>>> figures, agree = int8_figures(heldout, np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]]))
>>> agree, figures["accuracy_fp32"], figures["accuracy_int8"]
(3, 1.0, 0.75)
>>> for reason in int8_shortfalls(figures, margin=0.01):
...     print(reason)
accuracy 0.7500 is more than 1.0 points below fp32's 1.0000
macro_f1 0.7333 is more than 1.0 points below fp32's 1.0000
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
OPSET = 17
DEFAULT_TOLERANCE = 1e-4  # largest |p_onnx - p_torch| over every class of every reference row
EXPORT_TEXTS = ["an export example", "a second, somewhat longer example text for the export trace"]
INT8_FILE = "model.int8.onnx"
DEFAULT_INT8_MARGIN = 0.005  # accuracy and macro-F1: int8 may be at most 0.5 points below fp32
SEPARABLE_AUC, SEPARABLE_ALPHA = 0.55, 0.01  # the monitor's embedding-drift thresholds
INT8_MIN_ROWS = 50  # fewer held-out rows cannot show a 0.5-point difference: int8 is not offered
INT8_PROBE_TOLERANCE = 1e-3  # a server's int8 probabilities on PROBE_TEXTS vs the recorded ones
PROBE_TEXTS = (
    "warm up",
    "a slightly longer sentence to warm up the model with",
    "a third probe, longer again, so that the batch is padded: every row is not the same length here",
)


@dataclass(frozen=True)
class HeldOut:
    """The version's held-out rows with their labels, and PyTorch's outputs on them as evaluated
    (``temperature``: the calibration fitted on those logits)."""

    texts: Sequence[str]
    y_true: np.ndarray  # label indices
    logits: np.ndarray
    pooled: np.ndarray
    temperature: float


def export_pooled(model: Any, tokenizer: Any, out_path: Path, *, max_length: int) -> tuple[str, ...]:
    """Export the pooled classifier to ``out_path``; returns its input names (in order)."""
    import torch

    from runtime.inference import PooledClassifier, input_names

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

    from runtime.inference import PooledClassifier
    from runtime.scores import softmax

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


def run_graph(
    forward: OnnxForward, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """The graph's logits and pooled embeddings on ``texts``, in batches tokenized as serving does."""
    logits, pooled = [], []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        enc = tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="np")
        out_logits, out_pooled = forward(enc)
        logits.append(out_logits)
        pooled.append(out_pooled)
    return np.vstack(logits), np.vstack(pooled)


def quantize_int8(fp32_path: Path, out_path: Path) -> None:
    """Dynamic int8 quantization of an fp32 graph (weights int8 per tensor, activations per batch)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process goes to the root logger, at every call
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(fp32_path), str(out_path), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def int8_check(
    forward: OnnxForward,
    tokenizer: Any,
    heldout: HeldOut,
    *,
    max_length: int,
    margin: float = DEFAULT_INT8_MARGIN,
    min_rows: int = INT8_MIN_ROWS,
    seed: int = 0,
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray] | None]:
    """May the int8 graph serve in place of fp32? Compared on the held-out rows with PyTorch's fp32
    outputs (which the verified fp32 graph reproduces): ``passed`` and, when not, ``reasons``; and the
    int8 graph's (logits, pooled) on the rows (``None`` when there were too few to run)."""
    from runtime.scores import separability

    rows = len(heldout.texts)
    if rows < min_rows:
        return {
            "rows": rows,
            "passed": False,
            "reasons": [f"{rows} held-out rows, fewer than {min_rows}"],
        }, None
    logits, pooled = run_graph(forward, tokenizer, heldout.texts, max_length=max_length)
    figures, agree = int8_figures(heldout, logits)
    # the monitor's situation: a reference of fp32 embeddings, a window of int8 ones from other rows
    order = np.random.default_rng(seed).permutation(rows)
    half = rows // 2
    auc, p_value, _ = separability(heldout.pooled[order[:half]], pooled[order[half:]], seed=seed)
    reasons = int8_shortfalls(figures, margin)
    return {
        "rows": rows,
        **figures,
        "labels_agree_fp32": agree,
        # informational: whether fp32's reference profile and temperature would hold for int8 (they
        # need not: an int8 graph that serves has its own, see the module docstring)
        "embedding_auc_vs_fp32": auc,
        "embedding_p_value_vs_fp32": p_value,
        "embeddings_separable_from_fp32": bool(auc > SEPARABLE_AUC and p_value < SEPARABLE_ALPHA),
        "margin": margin,
        "passed": not reasons,
        "reasons": reasons,
    }, (logits, pooled)


def int8_figures(heldout: HeldOut, int8_logits: np.ndarray) -> tuple[dict[str, float], int]:
    """Accuracy, macro-F1 and mean top probability of fp32 (``heldout.logits``) and of int8 on the
    held-out rows, both calibrated by ``heldout.temperature``; and on how many rows their labels agree."""
    from sklearn.metrics import f1_score

    from runtime.scores import softmax

    y = np.asarray(heldout.y_true)
    classes = list(range(heldout.logits.shape[1]))
    fp32 = softmax(heldout.logits, heldout.temperature)
    int8 = softmax(int8_logits, heldout.temperature)
    pred32, pred8 = fp32.argmax(axis=1), int8.argmax(axis=1)

    def macro_f1(pred: np.ndarray) -> float:
        return float(f1_score(y, pred, labels=classes, average="macro", zero_division=0))

    figures = {
        "accuracy_fp32": float(np.mean(pred32 == y)),
        "accuracy_int8": float(np.mean(pred8 == y)),
        "macro_f1_fp32": macro_f1(pred32),
        "macro_f1_int8": macro_f1(pred8),
        "confidence_fp32": float(fp32.max(axis=1).mean()),
        "confidence_int8": float(int8.max(axis=1).mean()),
    }
    return figures, int((pred32 == pred8).sum())


def int8_shortfalls(figures: dict[str, float], margin: float) -> list[str]:
    """Why int8 may not serve: each of accuracy and macro-F1 more than ``margin`` below fp32's."""
    return [
        f"{name} {figures[f'{name}_int8']:.4f} is more than {margin * 100:.1f} points below fp32's "
        f"{figures[f'{name}_fp32']:.4f}"
        for name in ("accuracy", "macro_f1")
        if figures[f"{name}_fp32"] - figures[f"{name}_int8"] > margin
    ]


def attach_int8(
    model_dir: Path,
    tokenizer: Any,
    fp32: dict[str, Any],
    heldout: HeldOut,
    *,
    max_length: int,
    margin: float = DEFAULT_INT8_MARGIN,
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray] | None]:
    """Quantize the verified fp32 graph in ``model_dir`` and check it on ``heldout``; the int8 graph is
    kept (as ``INT8_FILE``) only if the check passes. Returns the ``"int8"`` block and, when kept, the
    graph's (logits, pooled) on the held-out rows (for its own reference profile and temperature)."""
    path = Path(model_dir) / INT8_FILE
    outputs = None
    try:
        quantize_int8(Path(model_dir) / fp32["file"], path)
        session = OnnxForward(path, fp32["inputs"])
        block, outputs = int8_check(session, tokenizer, heldout, max_length=max_length, margin=margin)
        if block["passed"]:
            probe_logits, _ = run_graph(session, tokenizer, PROBE_TEXTS, max_length=max_length)
            block.update(file=INT8_FILE, probe_logits=np.round(probe_logits, 6).tolist())
    except Exception as exc:  # noqa: BLE001 - int8 is an option: fp32 serves without it
        block = {"passed": False, "reasons": [f"{type(exc).__name__}: {str(exc)[:500]}"]}
    if not block["passed"]:
        path.unlink(missing_ok=True)
        outputs = None
        logger.info("int8 graph not kept: %s", "; ".join(block["reasons"]))
    return block, outputs


def int8_reproduced(
    forward: OnnxForward, tokenizer: Any, block: dict[str, Any], *, max_length: int
) -> str | None:
    """``None`` when this ONNX Runtime gives the int8 graph's recorded outputs on ``PROBE_TEXTS`` (labels
    equal, probabilities within ``INT8_PROBE_TOLERANCE``), else why not: int8 kernels differ by CPU."""
    from runtime.scores import softmax

    recorded = softmax(np.asarray(block["probe_logits"], dtype=np.float32))
    here = softmax(run_graph(forward, tokenizer, PROBE_TEXTS, max_length=max_length)[0])
    diff = float(np.abs(recorded - here).max())
    if (recorded.argmax(axis=1) != here.argmax(axis=1)).any() or diff > INT8_PROBE_TOLERANCE:
        return f"int8 probabilities here differ from the guarded graph's by up to {diff:.2e}"
    return None


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
    record(model_dir, block)
    return {**block, "seconds": round(time.perf_counter() - started, 2)}


def record(model_dir: Path, block: dict[str, Any]) -> None:
    """Write ``block`` as the ``"onnx"`` entry of the folder's ``driftline.json``, which the server reads
    (without ``seconds``: the same model must give the same artifact, bit for bit)."""
    from runtime.modelio import DRIFTLINE_META

    meta_path = Path(model_dir) / DRIFTLINE_META
    meta = json.loads(meta_path.read_text())
    meta["onnx"] = {k: v for k, v in block.items() if k != "seconds"}
    meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True))


def _why(block: dict[str, Any]) -> str:
    if "error" in block:
        return block["error"]
    return (
        f"{block['labels_agree']} of {block['rows']} labels agree, probabilities differ by up to "
        f"{block['max_prob_diff']:.2e} (tolerance {block['tolerance']:.0e})"
    )
