"""The model in service: one forward pass per batch gives class probabilities and pooled embeddings."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from registry.entities import ModelVersion
from runtime.inference import PooledClassifier, input_names
from runtime.modelio import LoadedClassifier
from runtime.scores import softmax

logger = logging.getLogger(__name__)

WARM_UP_TEXTS = ["warm up", "a slightly longer sentence to warm up the model with"]
# A text is cut to this many characters per token of max_length before tokenization: no token is
# built from more than a few characters in practice, so the head the model reads is the same, and a
# 100,000-character text costs the tokenizer no more than a 2,000-character one.
CHARS_PER_TOKEN_BOUND = 32
RUNTIMES = ("torch", "onnx", "onnx-int8")  # what a ServingModel's ``runtime`` can be
# A forward pass's fixed cost in tokens of work (a batch of one 64-token text costs about as much as 115
# tokens of a batch of 32 on the benchmark machine: bench.serve's cost per length), rounded up: a batch
# is split by length only where each extra pass saves more padding than this.
GROUP_OVERHEAD_TOKENS = 256
MIN_GROUP = 4  # texts per length group: smaller groups lose what batching gains


def length_groups(
    lengths: Sequence[int], *, overhead_tokens: int = GROUP_OVERHEAD_TOKENS, min_group: int = MIN_GROUP
) -> list[np.ndarray]:
    """Split a batch into groups of similar length, each to be padded to its own longest text.

    The texts sorted by length are cut where the tokens computed (each group's size times its longest
    length) plus ``overhead_tokens`` per group are least (dynamic programming over the cut points,
    O(n^2) for a batch of n). Returns index arrays into ``lengths``; one group in the original order when
    no cut pays for itself, so a batch of similar texts runs exactly as it would unsplit.
    """
    n = len(lengths)
    if n < 2 * min_group:
        return [np.arange(n)]
    order = np.argsort(np.asarray(lengths), kind="stable")
    ordered = np.asarray(lengths)[order]
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(n + 1, dtype=int)
    for end in range(min_group, n + 1):
        for begin in range(0, end - min_group + 1):
            cost = best[begin] + overhead_tokens + (end - begin) * int(ordered[end - 1])
            if cost < best[end]:
                best[end], cut[end] = cost, begin
    bounds, end = [], n
    while end > 0:
        bounds.append((cut[end], end))
        end = cut[end]
    if len(bounds) == 1:
        return [np.arange(n)]
    return [order[begin:end] for begin, end in reversed(bounds)]


@dataclass(frozen=True)
class BatchOutput:
    probs: np.ndarray  # (n, classes) float32
    embeddings: np.ndarray | None  # (n, hidden) float16, mean-pooled last layer
    labels: tuple[str, ...]
    version: ModelVersion
    seconds: float
    truncated: np.ndarray | None = None  # (n,) bool: longer than max_length tokens, the head was read
    runtime: str = "torch"  # what computed it (RUNTIMES)


class ServingModel:
    """A loaded, warmed classifier pinned to one registry version.

    With ``trace`` (the default), the forward pass is traced with TorchScript: the same kernels without
    the Python module overhead that otherwise holds the GIL for a large share of each small batch (the gain
    per batch size: docs/results.md, "Serving benchmark"). The traced module is checked
    against the eager one on padded and unpadded batches before use; any difference or tracing error
    keeps the eager path.
    """

    runtime = "torch"

    def __init__(self, loaded: LoadedClassifier, version: ModelVersion, *, trace: bool = True) -> None:
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.labels = loaded.labels
        self.max_length = loaded.max_length
        self.version = version
        self.device = next(self.model.parameters()).device
        probe = self._encode(WARM_UP_TEXTS)
        self.input_names = input_names(probe)
        self._forward: Any = PooledClassifier(self.model, self.input_names).eval()
        self.traced = False
        self.group_by_length = True  # split a batch of mixed lengths where that computes less
        self.grouped_batches = 0  # batches split by length (read by tests and the benchmark)
        if trace:
            self._try_trace(probe)

    def _encode(self, texts: Sequence[str]) -> Any:
        return self._encode_marking(texts)[0]

    def _encode_marking(self, texts: Sequence[str]) -> tuple[Any, np.ndarray]:
        """Tokenize as training did, keeping the head of each text (the tokenizer's truncation side:
        right for BERT-family models); also say which texts were longer than ``max_length`` tokens."""
        clip = self.max_length * CHARS_PER_TOKEN_BOUND
        clipped = np.array([len(t) > clip for t in texts], dtype=bool)
        enc = self.tokenizer(
            [t[:clip] for t in texts],
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
        lengths = enc["attention_mask"].sum(dim=1).numpy()
        if enc.encodings is not None:  # a fast tokenizer keeps what it cut off
            overflow = np.array([bool(e.overflowing) for e in enc.encodings], dtype=bool)
        else:
            overflow = lengths >= self.max_length
        truncated = overflow | (clipped & (lengths >= self.max_length))
        return enc.to(self.device), truncated

    def _args(self, enc: Any) -> tuple[Any, ...]:
        return tuple(enc[name] for name in self.input_names)

    def _try_trace(self, example: Any) -> None:
        eager = self._forward
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.freeze(torch.jit.trace(eager, self._args(example), check_trace=False))
                for texts in (WARM_UP_TEXTS, WARM_UP_TEXTS[:1], WARM_UP_TEXTS * 3):
                    args = self._args(self._encode(texts))
                    for a, b in zip(eager(*args), traced(*args), strict=True):
                        if not torch.allclose(a, b, atol=1e-4, rtol=1e-4):
                            raise ValueError(
                                f"traced output differs from eager by {(a - b).abs().max().item():.2e}"
                            )
        except Exception as exc:  # noqa: BLE001 - tracing is an optimisation; eager always works
            logger.warning(
                "%s v%s: serving eagerly, TorchScript trace refused: %s",
                self.version.model_name,
                self.version.version,
                exc,
            )
            return
        self._forward = traced
        self.traced = True

    def predict(self, texts: Sequence[str], *, embeddings: bool = True) -> BatchOutput:
        """One batch: tokenized once, padded to its longest text, and run as one forward pass, or as a
        few passes over groups of similar length when that computes fewer tokens (:func:`length_groups`)."""
        started = time.perf_counter()
        enc, truncated = self._encode_marking(texts)
        mask = enc["attention_mask"]
        split = self.group_by_length and len(texts) >= 2 * MIN_GROUP
        groups = length_groups(mask.sum(dim=1).tolist()) if split else None
        logits: np.ndarray | None
        pooled: np.ndarray | None
        if groups is None or len(groups) == 1:
            logits, pooled = self._run(enc)
        else:
            logits = pooled = None
            for index in groups:
                part_logits, part_pooled = self._run(self._slice(enc, index))
                if logits is None or pooled is None:
                    logits = np.empty((len(texts), part_logits.shape[1]), part_logits.dtype)
                    pooled = np.empty((len(texts), part_pooled.shape[1]), part_pooled.dtype)
                logits[index], pooled[index] = part_logits, part_pooled
            self.grouped_batches += 1
        assert logits is not None and pooled is not None  # the grouped loop ran: two groups or more
        probs = softmax(logits)
        vectors = pooled.astype(np.float16) if embeddings else None
        return BatchOutput(
            probs, vectors, self.labels, self.version, time.perf_counter() - started, truncated, self.runtime
        )

    def _slice(self, enc: Any, index: np.ndarray) -> dict[str, Any]:
        """The rows ``index`` of a padded batch, cut to their own longest text."""
        rows = torch.as_tensor(index, device=self.device)
        width = int(enc["attention_mask"][rows].sum(dim=1).max())
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        return {
            name: enc[name][rows][:, -width:] if left else enc[name][rows][:, :width]
            for name in self.input_names
        }

    def _run(self, enc: Any) -> tuple[np.ndarray, np.ndarray]:
        """Logits (float32) and pooled embeddings of one padded batch."""
        with torch.inference_mode():
            logits, pooled = self._forward(*self._args(enc))
            return logits.float().cpu().numpy(), pooled.float().cpu().numpy()

    def warm_up(self) -> float:
        """Run a couple of batches so the first real request pays no start-up cost; returns seconds."""
        started = time.perf_counter()
        for size in (1, 4):
            self.predict(WARM_UP_TEXTS * size)
        return time.perf_counter() - started


class OnnxServingModel(ServingModel):
    """A loaded classifier whose forward pass runs on ONNX Runtime, from the graph its artifact carries.

    Only a graph verified at registration is used (``driftline.json["onnx"]["verified"]``), and it is
    checked again here against PyTorch on the warm-up batches (labels equal, probabilities within the
    recorded tolerance): an ONNX Runtime that computes differently from the one that verified it raises
    :class:`OnnxRefused`, and the caller serves on PyTorch instead.

    With ``int8``, the version's int8 graph serves instead, if its accuracy check passed at registration
    and this ONNX Runtime reproduces its recorded outputs (int8 kernels differ by CPU); otherwise the
    fp32 graph serves and ``int8_refused`` says why.
    """

    runtime = "onnx"

    def __init__(
        self,
        loaded: LoadedClassifier,
        version: ModelVersion,
        *,
        threads: int | None = None,
        int8: bool = False,
    ) -> None:
        from runtime.onnxrt import OnnxForward, verify

        super().__init__(loaded, version, trace=False)
        block = (loaded.meta or {}).get("onnx") or {}
        if (
            not block.get("verified")
            or loaded.path is None
            or not (loaded.path / block.get("file", "")).is_file()
        ):
            raise OnnxRefused(block.get("error") or "the version carries no verified ONNX graph")
        session = OnnxForward(loaded.path / block["file"], block["inputs"], threads=threads)
        check = verify(
            self.model,
            self.tokenizer,
            session,
            WARM_UP_TEXTS * 3 + WARM_UP_TEXTS[:1],
            max_length=self.max_length,
            tolerance=float(block.get("tolerance", 1e-4)),
        )
        if not check["verified"]:
            raise OnnxRefused(
                f"{check['labels_agree']} of {check['rows']} labels agree with PyTorch here, probabilities "
                f"differ by up to {check['max_prob_diff']:.2e}"
            )
        self._session = session
        self.int8_refused: str | None = None
        if int8:
            try:
                self._session = self._int8_session(loaded, block, threads)
                self.runtime = "onnx-int8"
            except OnnxRefused as exc:
                self.int8_refused = str(exc)
                logger.warning(
                    "%s v%s serves on ONNX fp32, not int8: %s", version.model_name, version.version, exc
                )
        # PyTorch's copy of the weights has done its part (the check): ONNX Runtime holds its own
        self.model = None
        self._forward = None

    def _int8_session(self, loaded: LoadedClassifier, block: dict[str, Any], threads: int | None) -> Any:
        from runtime.onnxrt import OnnxForward, int8_reproduced

        check = block.get("int8") or {}
        if not check.get("passed"):
            raise OnnxRefused(
                "; ".join(check.get("reasons") or [])
                or "the version carries no int8 graph (registered without)"
            )
        assert loaded.path is not None  # checked with the fp32 graph
        path = loaded.path / check.get("file", "")
        if not path.is_file():
            raise OnnxRefused(f"the int8 graph {check.get('file')!r} is not in the artifact")
        session = OnnxForward(path, block["inputs"], threads=threads)
        why = int8_reproduced(session, self.tokenizer, check, max_length=self.max_length)
        if why:
            raise OnnxRefused(why)
        return session

    def _run(self, enc: Any) -> tuple[np.ndarray, np.ndarray]:
        return self._session(enc)


class OnnxRefused(Exception):
    """The version's ONNX graph may not serve; the message says why."""


class ModelHolder:
    """The current model. Readers take ``current`` once per batch; a swap is one reference assignment,
    so a batch in flight finishes on the model it started with."""

    def __init__(self) -> None:
        self.current: ServingModel | None = None
        self.swaps = 0

    def swap(self, model: ServingModel) -> ServingModel | None:
        previous, self.current = self.current, model
        if previous is not None:
            self.swaps += 1
        return previous
