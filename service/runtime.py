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
from registry.inference import PooledClassifier, input_names
from registry.modelio import LoadedClassifier
from registry.scores import softmax

logger = logging.getLogger(__name__)

WARM_UP_TEXTS = ["warm up", "a slightly longer sentence to warm up the model with"]
# A text is cut to this many characters per token of max_length before tokenization: no token is
# built from more than a few characters in practice, so the head the model reads is the same, and a
# 100,000-character text costs the tokenizer no more than a 2,000-character one.
CHARS_PER_TOKEN_BOUND = 32
RUNTIMES = ("torch", "onnx", "onnx-int8")  # what a ServingModel's ``runtime`` can be


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
    the Python module overhead that otherwise holds the GIL for a large share of each small batch
    (+10 % texts/s at batch 16, +45 % at batch 1 on the benchmark machine). The traced module is checked
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
        started = time.perf_counter()
        enc, truncated = self._encode_marking(texts)
        with torch.inference_mode():
            logits, pooled = self._forward(*self._args(enc))
            probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            vectors = pooled.to(torch.float16).cpu().numpy() if embeddings else None
        return BatchOutput(
            probs, vectors, self.labels, self.version, time.perf_counter() - started, truncated, self.runtime
        )

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

    With ``int8``, the version's int8 graph serves instead, if its accuracy guard passed at registration
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
        from registry.onnxrt import OnnxForward, verify

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
        from registry.onnxrt import OnnxForward, int8_reproduced

        guard = block.get("int8") or {}
        if not guard.get("passed"):
            raise OnnxRefused(
                "; ".join(guard.get("reasons") or [])
                or "the version carries no int8 graph (registered without)"
            )
        assert loaded.path is not None  # checked with the fp32 graph
        path = loaded.path / guard.get("file", "")
        if not path.is_file():
            raise OnnxRefused(f"the int8 graph {guard.get('file')!r} is not in the artifact")
        session = OnnxForward(path, block["inputs"], threads=threads)
        why = int8_reproduced(session, self.tokenizer, guard, max_length=self.max_length)
        if why:
            raise OnnxRefused(why)
        return session

    def predict(self, texts: Sequence[str], *, embeddings: bool = True) -> BatchOutput:
        started = time.perf_counter()
        enc, truncated = self._encode_marking(texts)
        logits, pooled = self._session(enc)
        probs = softmax(logits)
        vectors = pooled.astype(np.float16) if embeddings else None
        return BatchOutput(
            probs, vectors, self.labels, self.version, time.perf_counter() - started, truncated, self.runtime
        )


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
