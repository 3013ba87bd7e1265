"""Serving benchmark: is Driftline's /predict as fast as the bare model allows, on each runtime?

    .venv/bin/python -m bench.serve                 # everything below, about 12 min: bench/results/serve.json
    .venv/bin/python -m bench.serve --skip-lengths  # all but (e), about 10 min
    .venv/bin/python -m bench.serve --runtimes-only # (a), (a'), (a'') and the accuracies alone: "runtimes"
    .venv/bin/python -m bench.serve --lengths-only  # (e) alone, 1.5 min: the "lengths" key of serve.json
    .venv/bin/python -m bench.serve --quick         # smoke run of (e) alone (1-layer model): serve-quick.json

Measured in one run, on one machine, with one model: MiniLM-L6 (all 6 layers), bootstrapped as
``driftline bootstrap`` does on ``--train-rows`` demo sentences (3 classes, 1 epoch, max_length 64), so
its ONNX graph was exported and verified, and its int8 graph quantized and judged by the accuracy guard,
by the registration path itself:
  (a) the bare model in-process on PyTorch, (a') on ONNX Runtime fp32, (a'') on ONNX Runtime int8:
      batches of 32, tokenization included, interleaved, medians; and the accuracy and macro-F1 of each
      on the version's held-out rows;
  (b) POST /predict over HTTP, 16 concurrent clients each sending one text per request, logging on, with
      the server on each runtime (DRIFTLINE_RUNTIME=torch, onnx, int8; /metrics says which serves);
  (c) the same with the prediction log off;
  (d) p50 / p99 latency with requests arriving at half of (b)'s rate (open loop, Poisson), next to the
      latency of a single request on an idle server;
  (f) the tokens a batch computes (padded to its longest text, or split by length) and what that does to
      texts/s, on mixed-length texts at max_length 256 and on the short demo sentences.
Targets: served ONNX / bare torch >= 1.2, served int8 / bare torch >= 2.0, served / bare on the same
runtime >= 0.90, p99 at half load <= 3 x single-request latency.

(e) The cost per length, for choosing a model's max_length (Driftline picks 64, 128, 256 or 512 tokens
    from the data): the bare model of (a) (eager, tokenization included, torch threads as in (a)) at
    max_length 64, 128, 256 and 512, at batch 1 and batch 32, on texts that fill each length: the
    demo sentences of (a)-(d), joined one after another until a text has at least that many tokens (so
    every batch is max_length tokens wide, nothing padded), then truncated by the tokenizer as serving
    does. Each timed run covers about ``--length-tokens`` tokens at batch 32 (a quarter of that at
    batch 1), at least one batch; the eight (length, batch) runs are interleaved (64/1, 64/32, 128/1,
    ..., 512/32, 64/1, ...) ``--lengths-repeats`` times after one untimed batch of each (and each
    batch-1 run just after one untimed text: it follows a batch of 32), and the medians are reported:
    texts/s and ms per batch, each also as a ratio to the 64-token figure of the same run and batch
    size (on a shared machine, figures move by about 15 % from one run to the next).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.common import describe_machine, go_offline, machine, parse_bench_args, repeat, write_json
from bench.loadgen import LoadResult, closed_loop, open_loop, quiet_gc, sequential
from common.offline import OFFLINE_ENV
from driftline.lifeline import wrap
from driftline.processes import bentoml_home
from retrain.lengths import CANDIDATES

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = CANDIDATES  # the lengths `--max-length auto` chooses from
LENGTH_BATCHES = (1, 32)  # batch 1: one request alone; batch 32: the batch size of (a)
# Quick: a smoke run of (e) only: a 1-layer model, one batch per timed run, two runs each.
QUICK = {"lengths_only": True, "layers": 1, "length_tokens": 1, "lengths_repeats": 2}


def load_texts(n: int, seed: int) -> list[str]:
    import pandas as pd

    from driftline.demo_data import fetch_vader

    frame = pd.read_csv(fetch_vader(ROOT / ".driftline" / "cache" / "demo"))
    texts = [t for t in frame["text"].tolist() if isinstance(t, str) and t.strip() and len(t) <= 2000]
    random.Random(seed).shuffle(texts)
    return texts[:n]


def make_home(home: Path, seed: int, layers: int | None = None) -> None:
    """A registry whose champion is MiniLM-L6 with a 3-class head (weights do not matter for speed),
    cut to ``layers`` encoder layers if given (all 6 otherwise)."""
    from contracts.train import TrainConfig
    from registry.artifacts import LocalArtifactStore
    from registry.entities import CHAMPION, NewModelVersion
    from registry.settings import Settings
    from registry.store import Registry
    from retrain.train import load_base, resolve_base_model
    from runtime.modelio import save_classifier

    labels = ("negative", "neutral", "positive")
    cfg = TrainConfig(seed=seed, num_hidden_layers=layers)
    model, tokenizer = load_base(resolve_base_model(cfg.base_model), labels, cfg)
    settings = Settings(home=home)
    with tempfile.TemporaryDirectory() as tmp:
        out = save_classifier(model, tokenizer, Path(tmp) / "m", max_length=cfg.max_length, extra={})
        ref, _ = LocalArtifactStore(settings.artifact_root).put_dir(out)
    Registry.open(settings).register_version(
        "sentiment",
        NewModelVersion(
            base_model=cfg.base_model, artifact=ref, labels=labels, metrics={}, config=cfg.to_dict()
        ),
        set_aliases=[CHAMPION],
        actor="bench",
        reason="benchmark model",
    )


def load_champion(home: Path) -> Any:
    """The champion as serving loads it (``runtime.modelio.load_version``), torch at one thread per core."""
    import torch

    from registry.artifacts import LocalArtifactStore
    from registry.settings import Settings
    from registry.store import Registry
    from runtime.modelio import load_version

    settings = Settings(home=home)
    version = Registry.open(settings).get_version_by_alias("sentiment", "champion")
    loaded = load_version(LocalArtifactStore(settings.artifact_root), version)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    return loaded


def forward(loaded: Any, chunk: list[str], max_length: int) -> None:
    """One batch through the bare model: tokenize (truncate at ``max_length``, pad), forward, softmax."""
    import torch

    enc = loaded.tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.inference_mode():
        torch.softmax(loaded.model(**enc).logits, dim=-1).numpy()


def trained_home(home: Path, seed: int, layers: int | None, rows: int) -> Any:
    """A registry whose champion was bootstrapped as ``driftline bootstrap`` does it, on ``rows`` demo
    sentences (1 epoch, max_length 64): its ONNX graph exported and verified, its int8 graph quantized and
    judged by the accuracy guard on the held-out rows, all by the registration path. Returns the version."""
    from bench.common import demo_frame
    from contracts.train import TrainConfig
    from registry.artifacts import LocalArtifactStore
    from registry.settings import Settings
    from registry.store import Registry
    from retrain.bootstrap import BootstrapRequest, bootstrap
    from retrain.data import ColumnSpec

    home.mkdir(parents=True)
    data = home / "bench-bootstrap.csv"
    demo_frame(seed).head(rows).to_csv(data, index=False)
    settings = Settings(home=home)
    cfg = TrainConfig(seed=seed, num_hidden_layers=layers, max_length=64, epochs=1.0)
    request = BootstrapRequest(data=data, columns=ColumnSpec(text="text", label="label"), train=cfg)
    registry = Registry.open(settings)
    try:
        result = bootstrap(request, registry, LocalArtifactStore(settings.artifact_root), progress=False)
    finally:
        registry.close()
    return result.version


def heldout_rows(home: Path, version: Any) -> Any:
    """The held-out rows the version was judged on (its data snapshot), as a frame of text and label."""
    import pandas as pd

    from registry.artifacts import ArtifactRef, LocalArtifactStore
    from registry.settings import Settings

    store = LocalArtifactStore(Settings(home=home).artifact_root)
    ref = ArtifactRef(version.data_snapshot_uri or "", version.data_snapshot_sha256 or "")
    return pd.read_parquet(store.fetch(ref) / "heldout.parquet")


def bare_runtimes(
    home: Path, texts: list[str], batch: int, *, heldout: Any = None, repeats: int = 3
) -> dict[str, Any]:
    """(a) against (a') and (a''): the champion in-process on each runtime, batches of ``batch``,
    tokenization included, the three interleaved ``repeats`` times after one untimed pass (medians).
    The graphs are the champion's own (exported, verified and quantized at registration); the int8
    graph is timed whether or not its guard kept it. With ``heldout`` (text, label), each runtime's
    accuracy and macro-F1 on those rows too."""
    import statistics

    import numpy as np
    import torch

    from retrain.evaluate import classification_metrics
    from runtime.onnxrt import INT8_FILE, OnnxForward, quantize_int8, run_graph
    from runtime.scores import softmax

    loaded = load_champion(home)
    threads = len(os.sched_getaffinity(0))
    block = (loaded.meta or {}).get("onnx") or {}
    if not block.get("verified"):
        raise RuntimeError(f"the benchmark champion's ONNX graph did not verify: {block}")
    guard = block.get("int8") or {}
    int8_path = loaded.path / guard["file"] if guard.get("passed") else None
    if int8_path is None:  # refused, so not kept: quantized again here, to be timed all the same
        int8_path = Path(tempfile.mkdtemp(prefix="driftline-bench-int8-")) / INT8_FILE
        quantize_int8(loaded.path / block["file"], int8_path)
    graphs = {
        "onnx": OnnxForward(loaded.path / block["file"], block["inputs"], threads=threads),
        "onnx-int8": OnnxForward(int8_path, block["inputs"], threads=threads),
    }

    def torch_logits(chunk: list[str]) -> np.ndarray:
        enc = loaded.tokenizer(
            chunk, truncation=True, max_length=loaded.max_length, padding=True, return_tensors="pt"
        )
        with torch.inference_mode():
            return loaded.model(**enc).logits.numpy()

    def graph_logits(g: OnnxForward, chunk: list[str]) -> np.ndarray:
        return run_graph(g, loaded.tokenizer, chunk, max_length=loaded.max_length)[0]

    logits_of: dict[str, Callable[[list[str]], np.ndarray]] = {
        "torch": torch_logits,
        **{name: functools.partial(graph_logits, g) for name, g in graphs.items()},
    }
    runners: dict[str, Callable[[list[str]], Any]] = {
        "torch": lambda chunk: forward(loaded, chunk, loaded.max_length),
        **{name: logits_of[name] for name in graphs},
    }
    reference = np.vstack([torch_logits(texts[i : i + 32]) for i in range(0, 256, 32)])
    agree = {
        name: float(np.mean(logits_of[name](texts[:256]).argmax(axis=1) == reference.argmax(axis=1)))
        for name in graphs
    }
    accuracy: dict[str, dict[str, float]] = {}
    if heldout is not None:
        rows = heldout["text"].tolist()
        for name, fn in logits_of.items():
            logits = np.vstack([fn(rows[i : i + 32]) for i in range(0, len(rows), 32)])
            m = classification_metrics(softmax(logits), heldout["label"].tolist(), loaded.labels)
            accuracy[name] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "rows": len(rows)}
    for run in runners.values():  # untimed
        for i in range(0, 3 * batch, batch):
            run(texts[i : i + batch])
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            started = time.perf_counter()
            for i in range(0, len(texts), batch):
                run(texts[i : i + batch])
            seconds[name].append(time.perf_counter() - started)
    rates = {name: len(texts) / statistics.median(s) for name, s in seconds.items()}
    return {
        "batch": batch,
        "texts": len(texts),
        "repeats": repeats,
        "threads": threads,
        "texts_per_s": rates,
        "over_torch": {name: rate / rates["torch"] for name, rate in rates.items()},
        "labels_as_torch_on_256_texts": agree,
        "heldout": accuracy,
        "int8_guard": {k: v for k, v in guard.items() if k != "probe_logits"},
    }


def print_runtimes(section: dict[str, Any]) -> None:
    print()
    print(
        f"bare model per runtime, batch {section['batch']}, {section['threads']} threads (medians of {section['repeats']})"
    )
    print(f"{'runtime':<14}{'texts/s':>10}{'x torch':>10}{'labels as torch':>18}")
    for name, rate in section["texts_per_s"].items():
        agree = section["labels_as_torch_on_256_texts"].get(name)
        print(
            f"{name:<14}{rate:>10.1f}{section['over_torch'][name]:>10.2f}"
            f"{'-' if agree is None else f'{agree:.3f}':>18}"
        )


def filled_texts(tokenizer: Any, sentences: list[str], length: int, n: int) -> tuple[list[str], float]:
    """``n`` texts of at least ``length`` tokens (special tokens included), each made of consecutive
    ``sentences`` joined with spaces up to the one that brings it to ``length`` tokens (from the first
    sentence again when they run out), and their mean token count before truncation. Checked:
    truncated at ``length``, every one is ``length`` tokens long, none padded."""
    counts = [len(ids) for ids in tokenizer(sentences, add_special_tokens=False)["input_ids"]]
    special = tokenizer.num_special_tokens_to_add()
    texts, total, i = [], 0, 0
    for _ in range(n):
        parts, tokens = [], special
        while tokens < length:
            parts.append(sentences[i % len(sentences)])
            tokens += counts[i % len(sentences)]
            i += 1
        texts.append(" ".join(parts))
        total += tokens
    enc = tokenizer(texts, truncation=True, max_length=length, padding=True)
    short = [
        t for t, mask in zip(texts, enc["attention_mask"], strict=True) if len(mask) != length or 0 in mask
    ]
    if short:
        raise RuntimeError(f"{len(short)} of {n} texts do not fill {length} tokens, e.g. {short[0][:200]!r}")
    return texts, total / n


def timed_runs(length: int, batch: int, length_tokens: int) -> int:
    """Batches per timed run: about ``length_tokens`` tokens at batch 32 (a quarter at batch 1), >= 1."""
    budget = length_tokens if batch >= 32 else length_tokens // 4
    return max(1, budget // (batch * length))


def per_length(home: Path, sentences: list[str], *, repeats: int, length_tokens: int) -> dict[str, Any]:
    """(e): texts/s and ms per batch of the bare model at each of ``LENGTHS`` x ``LENGTH_BATCHES``, the
    runs interleaved, medians kept, each against the 64-token figure of the same run."""
    loaded = load_champion(home)
    plan = {
        (length, batch): timed_runs(length, batch, length_tokens)
        for length in LENGTHS
        for batch in LENGTH_BATCHES
    }
    pools = {
        length: filled_texts(
            loaded.tokenizer, sentences, length, max(plan[length, b] * b for b in LENGTH_BATCHES)
        )
        for length in LENGTHS
    }
    texts = {length: pool[0] for length, pool in pools.items()}

    def job(length: int, batch: int) -> Callable[[], None]:
        chosen = texts[length][: plan[length, batch] * batch]
        chunks = [chosen[i : i + batch] for i in range(0, len(chosen), batch)]

        def run() -> None:
            for chunk in chunks:
                forward(loaded, chunk, length)

        return run

    jobs = {f"{length}/{batch}": job(length, batch) for length in LENGTHS for batch in LENGTH_BATCHES}
    for length in LENGTHS:  # one untimed batch of each shape: first-call costs in torch
        for batch in LENGTH_BATCHES:
            forward(loaded, texts[length][:batch], length)
    # Batch-1 runs follow a batch-32 run (and 64/1 the 512/32 one): one untimed text first, or their
    # first text pays to fault in again the memory the large batch freed (2-3x its time, seen here).
    prime = {
        f"{length}/1": functools.partial(forward, loaded, texts[length][:1], length) for length in LENGTHS
    }
    timings = repeat(jobs, repeats, prime)

    rows = []
    for length in LENGTHS:
        row: dict[str, Any] = {
            "max_length": length,
            "texts_mean_tokens_untruncated": pools[length][1],
        }
        for batch in LENGTH_BATCHES:
            t, batches = timings[f"{length}/{batch}"], plan[length, batch]
            row[f"batch_{batch}"] = {
                "batch": batch,
                "batches_per_run": batches,
                "texts_per_run": batches * batch,
                "texts_per_s": batches * batch / t.median,
                "ms_per_batch": 1000 * t.median / batches,
                **t.to_dict(),
            }
        rows.append(row)
    for batch in LENGTH_BATCHES:
        first = rows[0][f"batch_{batch}"]
        for row in rows:
            cell = row[f"batch_{batch}"]
            cell["texts_per_s_ratio_to_64"] = cell["texts_per_s"] / first["texts_per_s"]
            cell["ms_per_batch_ratio_to_64"] = cell["ms_per_batch"] / first["ms_per_batch"]
    layers = loaded.model.config.num_hidden_layers
    return {
        "machine": machine(["transformers", "tokenizers"]),
        "model": f"MiniLM-L6 ({layers} layer{'s' if layers > 1 else ''}), 3 classes, eager, as (a)",
        "lengths": list(LENGTHS),
        "batches": list(LENGTH_BATCHES),
        "repeats": repeats,
        "length_tokens": length_tokens,
        "texts": (
            "demo sentences joined until each text has at least max_length tokens; truncated at "
            "max_length, so every batch is max_length tokens wide"
        ),
        "rows": rows,
    }


def print_lengths(section: dict[str, Any]) -> None:
    batches, width = section["batches"], 40
    runs = f"{section['repeats']} interleaved run{'s' if section['repeats'] > 1 else ''}"
    rule = "-" * (10 + (2 + width) * len(batches))
    print()
    print(describe_machine(section["machine"]))
    print(f"(e) cost per length: {section['model']}, tokenization included, texts filling each length")
    print(f"    median of {runs}; x64 = this length's figure / the 64-token figure (same run, same batch)")
    print()
    print(" " * 10 + "".join(f"  {f' batch {b} ':-^{width}}" for b in batches))
    cols = ("texts/s", "ms/batch", "x64 t/s", "x64 ms")
    print(f"{'max_length':>10}" + "".join("  " + "".join(f"{c:>10}" for c in cols) for _ in batches))
    print(rule)
    for row in section["rows"]:
        line = f"{row['max_length']:>10}"
        for b in batches:
            c = row[f"batch_{b}"]
            line += (
                f"  {c['texts_per_s']:>10.1f}{c['ms_per_batch']:>10.1f}"
                f"{c['texts_per_s_ratio_to_64']:>10.2f}{c['ms_per_batch_ratio_to_64']:>10.2f}"
            )
        print(line)
    print(rule)
    print("(a) pads each batch to its longest sentence (most are far shorter than 64 tokens): its texts/s")
    print("is not the 64 row's, where every text fills 64 tokens")


def mixed_texts(sentences: list[str], n: int, seed: int) -> list[str]:
    """``n`` texts of mixed length, as a stream of messages and documents has them: each joins 1 to 24
    consecutive demo sentences, the count drawn from an exponential distribution of mean 4 (most texts
    short, a long tail past 256 tokens)."""
    rng = random.Random(seed)
    texts, i = [], 0
    for _ in range(n):
        k = min(24, 1 + int(rng.expovariate(1 / 3)))
        texts.append(" ".join(sentences[(i + j) % len(sentences)] for j in range(k)))
        i += k
    return texts


def padding_cost(
    home: Path, sentences: list[str], seed: int, *, batch: int = 32, batches: int = 8, repeats: int = 3
) -> dict[str, Any]:
    """(f) What batches padded to their own longest text, and split by length, compute: the champion's
    serving model (``service.runtime``, torch and ONNX fp32) on ``batches`` batches of ``batch`` texts in
    arrival order, with and without length groups, interleaved ``repeats`` times (medians); on mixed-length
    texts at max_length 256 and on the short demo sentences at the champion's max_length (64). Tokens:
    real (attention mask), computed unsplit (the batch's longest x its size) and computed split."""
    import dataclasses
    import statistics

    from service.runtime import GROUP_OVERHEAD_TOKENS, OnnxServingModel, ServingModel, length_groups

    loaded = load_champion(home)
    cases = {
        "mixed, max_length 256": (mixed_texts(sentences, batch * batches, seed), 256),
        "demo sentences, max_length 64": (sentences[: batch * batches], loaded.max_length),
    }
    out: dict[str, Any] = {"batch": batch, "batches": batches, "repeats": repeats, "cases": {}}
    for case, (texts, max_length) in cases.items():
        at_length = dataclasses.replace(loaded, max_length=max_length)
        models = {
            "torch": ServingModel(at_length, loaded.version),
            "onnx": OnnxServingModel(at_length, loaded.version, threads=len(os.sched_getaffinity(0))),
        }
        chunks = [texts[i : i + batch] for i in range(0, len(texts), batch)]
        real = computed = split = 0
        for chunk in chunks:
            enc = models["torch"]._encode(chunk)
            lengths = enc["attention_mask"].sum(dim=1).tolist()
            real += sum(lengths)
            computed += len(lengths) * max(lengths)
            split += sum(len(g) * max(lengths[i] for i in g) for g in length_groups(lengths))
        jobs: dict[str, Callable[[], None]] = {}
        for name, model in models.items():
            for grouped in (False, True):

                def job(model: Any = model, grouped: bool = grouped, chunks: list = chunks) -> None:
                    model.group_by_length = grouped
                    for chunk in chunks:
                        model.predict(chunk)

                jobs[f"{name}/{'split' if grouped else 'unsplit'}"] = job
        for fn in jobs.values():  # untimed
            fn()
        seconds: dict[str, list[float]] = {name: [] for name in jobs}
        for _ in range(repeats):
            for name, fn in jobs.items():
                started = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - started)
        rates = {name: len(texts) / statistics.median(t) for name, t in seconds.items()}
        out["cases"][case] = {
            "max_length": max_length,
            "texts": len(texts),
            "mean_tokens": real / len(texts),
            "tokens_real": real,
            "tokens_computed_unsplit": computed,
            "tokens_computed_split": split,
            "texts_per_s": rates,
            "split_over_unsplit": {
                name: rates[f"{name}/split"] / rates[f"{name}/unsplit"] for name in models
            },
            "max_length_padding_tokens": len(texts) * max_length,
        }
    out["group_overhead_tokens"] = GROUP_OVERHEAD_TOKENS
    return out


def print_padding(section: dict[str, Any]) -> None:
    print()
    print(
        f"(f) padding: batches of {section['batch']} in arrival order, padded to their longest text, "
        f"unsplit or split by length (medians of {section['repeats']})"
    )
    print(
        f"{'texts':<32}{'tokens real':>12}{'computed':>10}{'split':>8}{'torch t/s':>11}{'split':>8}"
        f"{'onnx t/s':>10}{'split':>8}"
    )
    for case, c in section["cases"].items():
        r = c["texts_per_s"]
        print(
            f"{case:<32}{c['tokens_real']:>12}{c['tokens_computed_unsplit']:>10}{c['tokens_computed_split']:>8}"
            f"{r['torch/unsplit']:>11.1f}{r['torch/split']:>8.1f}{r['onnx/unsplit']:>10.1f}{r['onnx/split']:>8.1f}"
        )


WARM_UP_S = 5.0  # untimed load on each new server before its first timed phase
SERVED = {"torch": "torch", "onnx": "onnx", "onnx-int8": "int8"}  # runtime -> DRIFTLINE_RUNTIME


def serving_runtime(port: int, *, wait_s: float = 10.0) -> str:
    """The runtime the server on ``port`` serves on, from its ``driftline_model_runtime`` gauge (written
    once a second: asked again until it is there)."""
    deadline = time.monotonic() + wait_s
    while True:
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
            if line.startswith("driftline_model_runtime{") and line.rstrip().endswith(" 1.0"):
                return line.split('runtime="', 1)[1].split('"', 1)[0]
        if time.monotonic() > deadline:
            return "unknown"
        time.sleep(0.5)


def warm_up(port: int, texts: list[str], clients: int, seconds: float = WARM_UP_S) -> None:
    """Untimed load on a fresh server: TorchScript's and ONNX Runtime's first calls per shape, and the
    heap freeze after the first requests (service.app), happen here rather than in the first phase."""
    measure(closed_loop("127.0.0.1", port, texts, clients=clients, seconds=seconds))


def served(home: Path, setting: str, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """(b), single, (d) and (c) on one runtime: a server with logging on, then one with logging off."""
    port = free_port()
    server = Server(home, port, log_predictions=True, env={"DRIFTLINE_RUNTIME": setting})
    try:
        runtime = serving_runtime(port)
        warm_up(port, texts, args.clients)
        print(f"    (b) /predict, logging on, {setting} (serving on {runtime}) ...", flush=True)
        logged = measure(closed_loop("127.0.0.1", port, texts, clients=args.clients, seconds=args.seconds))
        print("        single-request latency ...", flush=True)
        single = measure(sequential("127.0.0.1", port, texts, count=200))
        print("    (d) half load, open loop ...", flush=True)
        half = measure(open_loop("127.0.0.1", port, texts, rate=logged.rps / 2, seconds=args.seconds))
    finally:
        server.stop()
    port = free_port()
    server = Server(home, port, log_predictions=False, env={"DRIFTLINE_RUNTIME": setting})
    try:
        warm_up(port, texts, args.clients)
        print("    (c) /predict, logging off ...", flush=True)
        unlogged = measure(closed_loop("127.0.0.1", port, texts, clients=args.clients, seconds=args.seconds))
    finally:
        server.stop()
    return {
        "setting": setting,
        "runtime": runtime,
        "b_predict_logging_on": summarize(logged),
        "c_predict_logging_off": summarize(unlogged),
        "single_request": summarize(single),
        "d_half_load": {**summarize(half), "offered_rate": logged.rps / 2},
        "p99_half_over_single": half.percentile(99) / single.percentile(50),
        "b_over_c": logged.rps / unlogged.rps,
    }


class Server:
    """``bentoml serve`` on ``home`` (its own BentoML home, ending with this process, as ``driftline up``
    starts it); ``env``: more settings for it."""

    def __init__(
        self, home: Path, port: int, *, log_predictions: bool, env: dict[str, str] | None = None
    ) -> None:
        env = {
            **os.environ,
            **OFFLINE_ENV,
            "DRIFTLINE_HOME": str(home),
            "DRIFTLINE_LOG_PREDICTIONS": "true" if log_predictions else "false",
            "BENTOML_HOME": str(bentoml_home(home)),
            **(env or {}),
        }
        self.log = open(home / f"serve-{port}.log", "wb")  # noqa: SIM115 - the server writes it until stop() closes it
        self.proc = subprocess.Popen(
            wrap(
                [
                    str(Path(sys.executable).with_name("bentoml")),
                    "serve",
                    "service.app:Driftline",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ]
            ),
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: see {self.log.name}")
            time.sleep(0.5)
        raise RuntimeError(f"server not ready: see {self.log.name}")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(load) -> LoadResult:  # type: ignore[no-untyped-def]
    with quiet_gc():
        return asyncio.run(load)


def summarize(r: LoadResult) -> dict[str, float]:
    return {
        "req_per_s": r.rps,
        "ok": r.ok,
        "failed": r.failed,
        "p50_ms": r.percentile(50),
        "p99_ms": r.percentile(99),
        "statuses": {str(k): v for k, v in r.statuses.items()},
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement time per phase")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lengths-only",
        action="store_true",
        help="run (e) alone and update the 'lengths' key of the result file, keeping its other keys",
    )
    parser.add_argument(
        "--runtimes-only",
        action="store_true",
        help="run (a), (a') and (a'') alone and update the 'runtimes' key of the result file",
    )
    parser.add_argument(
        "--train-rows", type=int, default=4000, help="demo sentences the benchmark model is bootstrapped on"
    )
    parser.add_argument("--skip-lengths", action="store_true", help="leave (e) out of a full run")
    parser.add_argument("--lengths-repeats", type=int, default=5, help="(e): interleaved runs of each")
    parser.add_argument(
        "--length-tokens",
        type=int,
        default=16384,
        help="(e): tokens per timed run at batch 32 (1/4 at batch 1)",
    )
    parser.add_argument(
        "--layers", type=int, default=None, help="encoder layers of the model (default: all 6)"
    )
    args = parse_bench_args(parser, argv, name="serve", quick=QUICK)
    if args.lengths_repeats < 1 or args.length_tokens < 1:
        parser.error("--lengths-repeats and --length-tokens must be >= 1")
    return args


def lengths_only(args: argparse.Namespace, command: str) -> None:
    """(e) alone: the result file keeps what the last full run wrote; only its "lengths" key is replaced."""
    texts = load_texts(4000, args.seed)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp:
        home = Path(tmp) / "home"
        make_home(home, args.seed, args.layers)
        print("(e) bare model at max_length 64 / 128 / 256 / 512 ...", flush=True)
        section = per_length(home, texts, repeats=args.lengths_repeats, length_tokens=args.length_tokens)
    section.update(command=command, quick=args.quick)
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report["lengths"] = section
    write_json(args.out, report)
    print_lengths(section)
    print(f"\nwrote {args.out}")


def runtimes_only(args: argparse.Namespace, command: str) -> None:
    """(a), (a'), (a'') alone: the result file keeps its other keys; only "runtimes" is replaced."""
    texts = load_texts(1024, args.seed)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp:
        home = Path(tmp) / "home"
        version = trained_home(home, args.seed, args.layers, args.train_rows)
        print("(a) (a') (a'') bare model on torch, ONNX fp32 and ONNX int8, batch 32 ...", flush=True)
        section = bare_runtimes(home, texts, 32, heldout=heldout_rows(home, version))
    section.update(command=command, layers=args.layers or 6)
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report["runtimes"] = section
    write_json(args.out, report)
    print_runtimes(section)
    print(f"\nwrote {args.out}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    go_offline()
    command = " ".join(["python -m bench.serve", *(argv if argv is not None else sys.argv[1:])])
    if args.lengths_only:
        lengths_only(args, command)
        return
    if args.runtimes_only:
        runtimes_only(args, command)
        return

    texts = load_texts(4000, args.seed)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp:
        home = Path(tmp) / "home"
        print(f"bootstrap: the benchmark model, trained on {args.train_rows} demo sentences ...", flush=True)
        version = trained_home(home, args.seed, args.layers, args.train_rows)
        heldout = heldout_rows(home, version)
        print("(a) (a') (a'') bare model on torch, ONNX fp32 and ONNX int8, batch 32 ...", flush=True)
        bare = bare_runtimes(home, texts[:1024], 32, heldout=heldout)
        print("(f) padding and length groups ...", flush=True)
        padding = padding_cost(home, texts, args.seed)
        runs = {}
        for name, setting in SERVED.items():
            print(f"(b) (c) (d) served on {name} ...", flush=True)
            runs[name] = served(home, setting, texts, args)
        lengths = None
        if not args.skip_lengths:
            print("(e) bare model at max_length 64 / 128 / 256 / 512 ...", flush=True)
            lengths = per_length(home, texts, repeats=args.lengths_repeats, length_tokens=args.length_tokens)
            lengths.update(command=command, quick=args.quick)

    rate = bare["texts_per_s"]
    ratios = {
        name: {
            # against the runtime that served (the int8 setting serves on fp32 when the guard refused)
            "served_over_bare_same_runtime": run["b_predict_logging_on"]["req_per_s"]
            / rate.get(run["runtime"], float("nan")),
            "served_over_bare_torch": run["b_predict_logging_on"]["req_per_s"] / rate["torch"],
            "logging_on_over_off": run["b_over_c"],
            "p99_half_over_single": run["p99_half_over_single"],
        }
        for name, run in runs.items()
    }
    targets = {
        "onnx served_over_bare_torch": (">=", 1.2),
        "onnx-int8 served_over_bare_torch": (">=", 2.0),
        "served_over_bare_same_runtime": (">=", 0.90),
        "p99_half_over_single": ("<=", 3.0),
    }
    report = {
        "machine": machine(["torch", "transformers", "onnxruntime", "bentoml"]),
        "command": command,
        "model": (
            f"MiniLM-L6 ({args.layers or 6} layers), 3 classes, max_length 64, bootstrapped on "
            f"{args.train_rows} demo sentences (1 epoch); held-out rows {len(heldout)}"
        ),
        "clients": args.clients,
        "seconds_per_phase": args.seconds,
        "runtimes": bare,
        "served": runs,
        "padding": padding,
        "ratios": ratios,
        "targets": {k: list(v) for k, v in targets.items()},
        "lengths": lengths,
    }
    write_json(args.out, report)
    print_report(report)
    print(f"\nwrote {args.out}")


def print_report(report: dict[str, Any]) -> None:
    bare, runs, ratios = report["runtimes"], report["served"], report["ratios"]
    print()
    print(describe_machine(report["machine"]))
    print(report["model"])
    print_runtimes(bare)
    heldout = bare["heldout"]
    if heldout:
        print()
        print(f"accuracy on the {next(iter(heldout.values()))['rows']} held-out rows, per runtime")
        for name, m in heldout.items():
            print(f"    {name:<12} accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
        g = bare["int8_guard"]
        print(
            f"    int8 guard: {'passed' if g.get('passed') else 'refused: ' + '; '.join(g.get('reasons', []))}"
        )
    print()
    cols = ("torch", "onnx", "onnx-int8")
    print(
        f"{'served, ' + str(report['clients']) + ' clients, ' + str(report['seconds_per_phase']) + ' s a phase':<44}"
        + "".join(f"{c:>12}" for c in cols)
    )
    print("-" * (44 + 12 * len(cols)))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:<44}" + "".join(f"{v:>12}" for v in values))

    row("serving on (driftline_model_runtime)", [runs[c]["runtime"] for c in cols])
    row(
        "(b) /predict, logging on (req/s)",
        [f"{runs[c]['b_predict_logging_on']['req_per_s']:.1f}" for c in cols],
    )
    row(
        "(c) /predict, logging off (req/s)",
        [f"{runs[c]['c_predict_logging_off']['req_per_s']:.1f}" for c in cols],
    )
    row(
        "    (b) p50 / p99 (ms)",
        [
            f"{runs[c]['b_predict_logging_on']['p50_ms']:.0f}/{runs[c]['b_predict_logging_on']['p99_ms']:.0f}"
            for c in cols
        ],
    )
    row("single request, idle, p50 (ms)", [f"{runs[c]['single_request']['p50_ms']:.1f}" for c in cols])
    row(
        "(d) half of (b): p50 / p99 (ms)",
        [f"{runs[c]['d_half_load']['p50_ms']:.0f}/{runs[c]['d_half_load']['p99_ms']:.0f}" for c in cols],
    )
    row(
        "failed requests (b, c, d)",
        [
            str(
                sum(
                    runs[c][k]["failed"]
                    for k in ("b_predict_logging_on", "c_predict_logging_off", "d_half_load")
                )
            )
            for c in cols
        ],
    )
    print("-" * (44 + 12 * len(cols)))
    row(
        "(b) / bare same runtime   target >= 0.90",
        [f"{ratios[c]['served_over_bare_same_runtime']:.2f}" for c in cols],
    )
    row(
        "(b) / bare torch   >= 1.2 onnx, >= 2.0 int8",
        [f"{ratios[c]['served_over_bare_torch']:.2f}" for c in cols],
    )
    row("(b) / (c)   logging on over off", [f"{ratios[c]['logging_on_over_off']:.2f}" for c in cols])
    row("p99 (d) / single   target <= 3", [f"{ratios[c]['p99_half_over_single']:.2f}" for c in cols])
    print_padding(report["padding"])
    if report.get("lengths"):
        print_lengths(report["lengths"])


if __name__ == "__main__":
    main()
