"""Drift-check benchmark: how long does one drift check take, and how does it grow with the window?

    .venv/bin/python -m bench.monitor                     # prints a table, writes bench/results/monitor.json
    .venv/bin/python -m bench.monitor --quick             # smoke run at tiny sizes, writes monitor-quick.json
    .venv/bin/python -m bench.monitor --sizes 1000,10000,50000 --reference 10000 --embed 4000 --repeats 3

What runs is the monitor's own code path: ``monitor.check.compute_check`` on a ``monitor.check.Window``
against a reference profile written by ``retrain.reference.write_reference_profile`` and read back from
parquet, as ``monitor.job.run_drift_check`` does (minus the database and the artifact store).

Measured for each window size (1k, 10k, 50k logged predictions by default) against one reference:
  (a) the pure signals: ``compute_check`` on a window without embeddings (prediction drift, text-length
      drift, estimated and realized accuracy drop), so Evidently is not called;
  (b) the Evidently part alone: ``monitor.evidently_report.evidently_drift`` without a report folder;
  (c) a whole check without ``report_dir``: a + b + the 5-fold cross-validated AUC that must confirm
      Evidently's embedding-drift score;
  (d) a whole check with ``report_dir`` (c + writing the HTML and JSON report): what a scheduled check does.
Each is repeated (``--repeats``, 3 by default; one fewer at 50k rows and above, at least 1), the four
interleaved (a, b, c, d, a, b, ...) so a burst of load from elsewhere does not hit one of them only; the
table shows the median, the JSON keeps every run. Growth is each size's (d) over the smallest size's (d), and
the cost per 1,000 window rows is (d) / (rows / 1,000). Target: a 10k window against a 10k reference
checks in < 5 s with the report written (d).

Two one-off costs are rows of their own, outside the timed sections: the first import of Evidently
(timed at start-up, after numpy and pandas, before torch: the scheduler pays it once per process) and
the first check after it (cold caches in Evidently, pandas and scikit-learn).

Inputs, built without training: texts, labels and domains from the VADER demo sentences; logits and
mean-pooled embeddings from the packaged MiniLM-L6 (all 6 layers, new 3-class head: its weights do not
matter for speed) through ``retrain.evaluate.forward_outputs``, the serving computation, for ``--embed``
texts (4,000 by default). The reference and each window draw their rows from that one pool, each with
its own seed: N distinct real rows while the pool has that many; beyond that, rows drawn with
replacement, each embedding plus Gaussian noise (sigma ``--noise`` = 0.05 times each dimension's
standard deviation over the pool) so that no two rows are exact copies; texts, probabilities and
labels are the drawn row's. One pool for both sides, not one half each: copies of a row that only one
side has form tight clusters that Evidently's classifier (an SGDClassifier, fitted until it converges)
learns to tell apart: embedding drift where there is none (a score of 0.99 instead of 0.50 in a
1k-vs-1k trial). So the windows here are drift-free; each size's embedding-drift score is printed as a
check.
Window rows keep float16 embeddings (as logged), probabilities at temperature 1 (as served) and a
true label on ``--labeled`` (20 %) of them (as /feedback gives). Profiles written at training time
hold at most 2,000 rows (``retrain.reference.MAX_REFERENCE_ROWS``); the benchmark raises that cap to
``--reference`` while it writes its profile.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import (
    Timing,
    demo_frame,
    describe_machine,
    go_offline,
    machine,
    parse_bench_args,
    repeat,
    write_json,
)

LABELS = ("negative", "neutral", "positive")
TARGET_ROWS = 10_000
TARGET_SECONDS = 5.0
# Quick: at 500 rows or fewer in all, PCA (the report's picture) takes a full SVD that can cost seconds on
# a loaded machine (seen here): a smoke run stays above that, to time what larger windows do.
QUICK = {"sizes": "300,600", "reference": 300, "embed": 200, "repeats": 1}


def import_evidently() -> dict[str, float]:
    """Seconds to import numpy + pandas, then what ``monitor.evidently_report`` imports from Evidently.

    Called first, before torch or transformers are loaded, so the Evidently figure is the one a fresh
    scheduler process pays at its first check."""
    started = time.perf_counter()
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    base = time.perf_counter() - started
    started = time.perf_counter()
    from evidently import DataDefinition, Dataset, Report  # noqa: F401
    from evidently.legacy.metrics.data_drift import embeddings_drift  # noqa: F401
    from evidently.metrics import EmbeddingsDrift, ValueDrift  # noqa: F401

    return {"numpy_pandas_s": base, "evidently_s": time.perf_counter() - started}


@dataclass(frozen=True)
class Pool:
    """Real rows: text, label, domain, class logits and pooled embedding from the MiniLM forward pass."""

    frame: Any  # pandas DataFrame: text, label, domain
    logits: Any  # (n, classes) float32
    pooled: Any  # (n, hidden) float32


def embed_pool(n: int, seed: int) -> tuple[Pool, float]:
    """Logits and pooled embeddings of ``n`` demo sentences, and the seconds the forward passes took."""
    import torch

    from contracts.train import TrainConfig
    from retrain.evaluate import forward_outputs
    from retrain.train import default_base_model_path, load_base

    frame = demo_frame(seed).iloc[:n].reset_index(drop=True)
    cfg = TrainConfig(seed=seed)
    model, tokenizer = load_base(default_base_model_path(), LABELS, cfg)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    started = time.perf_counter()
    logits, pooled = forward_outputs(
        model, tokenizer, frame["text"].tolist(), max_length=cfg.max_length, progress=False
    )
    return Pool(frame, logits, pooled), time.perf_counter() - started


def draw(pool: Pool, n: int, *, noise: float, seed: int) -> tuple[Any, Any]:
    """Row indices into ``pool`` and their embeddings: distinct real rows while the pool has ``n``,
    otherwise rows drawn with replacement plus Gaussian noise (``noise`` x each dimension's std)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if n <= len(pool.frame):
        idx = rng.choice(len(pool.frame), size=n, replace=False)
        return idx, pool.pooled[idx]
    idx = rng.integers(0, len(pool.frame), size=n)
    sigma = noise * pool.pooled.std(axis=0, keepdims=True)
    return idx, pool.pooled[idx] + rng.standard_normal((n, pool.pooled.shape[1])).astype("float32") * sigma


@contextlib.contextmanager
def reference_cap(rows: int) -> Iterator[None]:
    """Let ``write_reference_profile`` keep ``rows`` rows (its cap is 2,000) while the profile is written."""
    import retrain.reference as reference

    previous = reference.MAX_REFERENCE_ROWS
    reference.MAX_REFERENCE_ROWS = max(previous, rows)
    try:
        yield
    finally:
        reference.MAX_REFERENCE_ROWS = previous


def reference_profile(pool: Pool, n: int, folder: Path, *, noise: float, seed: int) -> Any:
    """A reference profile of ``n`` rows, written and read back by ``retrain.reference`` (parquet)."""
    from retrain.reference import read_reference_profile, write_reference_profile

    idx, pooled = draw(pool, n, noise=noise, seed=seed)
    heldout = pool.frame.iloc[idx].reset_index(drop=True)
    with reference_cap(n):
        path = write_reference_profile(
            folder / "reference.parquet", heldout, pool.logits[idx], pooled, LABELS, 1.0, seed=seed
        )
    return read_reference_profile(path)


def make_window(pool: Pool, n: int, *, noise: float, labeled: float, seed: int) -> Any:
    """``n`` logged predictions as ``run_drift_check`` assembles them from the database."""
    import numpy as np

    from monitor.check import Window
    from runtime.scores import softmax

    idx, pooled = draw(pool, n, noise=noise, seed=seed)
    probs = softmax(pool.logits[idx]).astype(np.float64)
    truth = pool.frame["label"].to_numpy()[idx]
    given = np.random.default_rng(seed + 1).random(n) < labeled
    return Window(
        texts=pool.frame["text"].to_numpy()[idx].tolist(),
        predicted=[LABELS[i] for i in probs.argmax(axis=1)],
        probs=probs,
        true_labels=[str(t) if g else None for t, g in zip(truth, given, strict=True)],
        embeddings=pooled.astype(np.float16),
        embedding_rows=list(range(n)),
    )


def check(reference: Any, window: Any, report_dir: Path | None = None) -> Any:
    from monitor.check import compute_check

    return compute_check(
        reference, window, labels=LABELS, temperature=1.0, reference_accuracy=0.7, report_dir=report_dir
    )


def measure_size(reference: Any, window: Any, repeats: int, folder: Path) -> dict[str, Any]:
    """The four timings (a)-(d) of one window size, the signals it gave and the report's size."""
    from monitor.evidently_report import REPORT_HTML, REPORT_JSON, evidently_drift

    bare = replace(window, embeddings=None, embedding_rows=None)
    timings: dict[str, Timing] = repeat(
        {
            "a_signals": lambda: check(reference, bare),
            "b_evidently": lambda: evidently_drift(reference, window),
            "c_check_no_report": lambda: check(reference, window),
            "d_check_with_report": lambda: check(reference, window, folder),
        },
        repeats,
    )
    outcome = check(reference, window)
    return {
        "rows": len(window.texts),
        "repeats": repeats,
        **{k: t.to_dict() for k, t in timings.items()},
        "report_write_s": timings["d_check_with_report"].median - timings["c_check_no_report"].median,
        "report_bytes": {
            "html": (folder / REPORT_HTML).stat().st_size,
            "json": (folder / REPORT_JSON).stat().st_size,
        },
        "scores": {s.name: None if s.score != s.score else s.score for s in outcome.signals},  # NaN: None
    }


def add_growth(results: list[dict[str, Any]]) -> None:
    """Each size's whole check (d) against the smallest size's, and its cost per 1,000 window rows."""
    first = results[0]["d_check_with_report"]["median_s"]
    for r in results:
        d = r["d_check_with_report"]["median_s"]
        r["ratio_to_smallest"] = d / first
        r["per_1k_rows_s"] = d / (r["rows"] / 1000)


def target(results: list[dict[str, Any]], reference_rows: int) -> dict[str, Any]:
    """The 10k-window-vs-10k-reference check against its < 5 s target (measured only at those sizes)."""
    row = next((r for r in results if r["rows"] == TARGET_ROWS), None)
    if row is None or reference_rows != TARGET_ROWS:
        return {"measured": False, "target_s": TARGET_SECONDS}
    seconds = row["d_check_with_report"]["median_s"]
    return {
        "measured": True,
        "target_s": TARGET_SECONDS,
        "seconds_with_report": seconds,
        "seconds_without_report": row["c_check_no_report"]["median_s"],
        "met": seconds < TARGET_SECONDS,
    }


def print_table(report: dict[str, Any]) -> None:
    results, cold = report["sizes"], report["one_off"]
    print()
    print(describe_machine(report["machine"]))
    print(f"reference: {report['reference_rows']} rows; {report['inputs']['note']}")
    print(f"timings: median of {report['repeat_note']}; seconds")
    print()
    print(f"{'one-off cost':<52}{'s':>10}")
    print("-" * 62)
    print(f"{'import numpy + pandas':<52}{cold['import']['numpy_pandas_s']:>10.2f}")
    print(f"{'first import of Evidently (after numpy, pandas)':<52}{cold['import']['evidently_s']:>10.2f}")
    label = f"first check after the import, {cold['first_check_rows']} rows, with report"
    print(f"{label:<52}{cold['first_check_s']:>10.2f}")
    print(f"{'MiniLM forward passes for the inputs (not a check)':<52}{report['inputs']['embed_s']:>10.2f}")
    print()
    header = ("rows", "(a) signals", "(b) Evidently", "(c) no report", "(d) + report")
    tail = ("report", "x 1st", "s/1k", "emb AUC")
    print(f"{header[0]:>7}" + "".join(f"{h:>14}" for h in header[1:]) + "".join(f"{h:>8}" for h in tail))
    print("-" * 95)
    for r in results:
        cells = [
            r[k]["median_s"] for k in ("a_signals", "b_evidently", "c_check_no_report", "d_check_with_report")
        ]
        print(
            f"{r['rows']:>7}"
            + "".join(f"{c:>14.3f}" for c in cells)
            + f"{r['report_write_s']:>8.2f}{r['ratio_to_smallest']:>8.2f}{r['per_1k_rows_s']:>8.3f}"
            + f"{r['scores'].get('embedding_drift', float('nan')):>8.3f}"
        )
    print("-" * 95)
    print("report = (d) - (c): writing the HTML + JSON report; x 1st = (d) / smallest size's (d);")
    print("emb AUC = Evidently's embedding-drift score (drift above 0.55; these windows are drift-free)")
    t = report["target"]
    if t["measured"]:
        verdict = "met" if t["met"] else "NOT met"
        print(
            f"10k window vs 10k reference, with report: {t['seconds_with_report']:.2f} s "
            f"(without: {t['seconds_without_report']:.2f} s)  target < {TARGET_SECONDS:.0f} s  {verdict}"
        )
    else:
        print(f"10k window vs 10k reference: not measured in this run (target < {TARGET_SECONDS:.0f} s)")
    print(f"\nwrote {report['out']}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,50000", help="window sizes, comma-separated")
    parser.add_argument("--reference", type=int, default=10_000, help="reference profile rows")
    parser.add_argument("--embed", type=int, default=4000, help="texts given real MiniLM embeddings")
    parser.add_argument("--noise", type=float, default=0.05, help="noise sigma, x each dimension's std")
    parser.add_argument("--labeled", type=float, default=0.2, help="share of window rows with a label")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (one fewer at 50k+)")
    parser.add_argument("--seed", type=int, default=0)
    return parse_bench_args(parser, argv, name="monitor", quick=QUICK)


def repeats_for(rows: int, repeats: int) -> int:
    """50k-row checks are long: one run fewer there."""
    return max(1, repeats - 1) if rows >= 50_000 else repeats


def repeat_note(sizes: Sequence[int], repeats: int) -> str:
    large = [n for n in sizes if repeats_for(n, repeats) != repeats]
    note = f"{repeats} run{'s' if repeats > 1 else ''}"
    return note + (f" ({repeats_for(large[0], repeats)} at {large[0]} rows and above)" if large else "")


def main(argv: Sequence[str] | None = None) -> None:
    go_offline()
    imported = import_evidently()  # first, before torch: see the docstring
    args = parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(f"MiniLM forward passes on {args.embed} demo sentences ...", file=sys.stderr, flush=True)
    pool, embed_s = embed_pool(args.embed, args.seed)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-monitor-") as tmp:
        folder = Path(tmp)
        reference = reference_profile(pool, args.reference, folder, noise=args.noise, seed=args.seed)
        first = make_window(pool, sizes[0], noise=args.noise, labeled=args.labeled, seed=args.seed + 1)
        started = time.perf_counter()
        check(reference, first, folder / "cold")
        cold_s = time.perf_counter() - started
        results = []
        for n in sizes:
            print(f"window of {n} rows ...", file=sys.stderr, flush=True)
            window = make_window(pool, n, noise=args.noise, labeled=args.labeled, seed=args.seed + n)
            results.append(measure_size(reference, window, repeats_for(n, args.repeats), folder / str(n)))
    add_growth(results)
    report = {
        "machine": machine(["evidently", "scikit-learn", "transformers"]),
        "command": " ".join(["python -m bench.monitor", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "reference_rows": args.reference,
        "repeat_note": repeat_note(sizes, args.repeats),
        "inputs": {
            "embedded_texts": args.embed,
            "embed_s": embed_s,
            "noise_sigma_x_std": args.noise,
            "labeled_share": args.labeled,
            "note": (
                f"{args.embed} real MiniLM-L6 embeddings shared by reference and windows; a side larger "
                f"than {args.embed} rows is resampled with Gaussian noise ({args.noise} x per-dimension std)"
            ),
        },
        "one_off": {"import": imported, "first_check_rows": sizes[0], "first_check_s": cold_s},
        "sizes": results,
        "target": target(results, args.reference),
        "out": str(args.out),
    }
    write_json(args.out, report)
    print_table(report)


if __name__ == "__main__":
    main()
