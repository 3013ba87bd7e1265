"""Fine-tuning benchmark: what does the HF Trainer path cost over a plain torch loop doing the same work?

    .venv/bin/python -m bench.train                    # prints a table, writes bench/results/train.json
    .venv/bin/python -m bench.train --quick            # smoke run (64 rows, 1 layer), writes train-quick.json
    .venv/bin/python -m bench.train --rows 512 --epochs 1 --layers 6

Measured in one process, on the same rows of the VADER demo data (text, label), one after another:
  (a) ``retrain.train.fine_tune`` as Driftline calls it, with ``validation_fraction=0`` and no checkpoint
      folder: the Trainer, its data loader, its optimizer and schedule, nothing else;
  (b) a plain torch loop doing the same work: the same model init (``retrain.train.load_base``, seeded
      head), the same tokenization (``retrain.train._tokenized``: truncation at ``max_length``), batches of
      ``batch_size`` padded per batch by ``DataCollatorWithPadding``, shuffled; AdamW with the Trainer's
      settings (same lr, betas, eps, fused as the Trainer's default ``optim``, weight decay on all but
      biases and LayerNorm weights), linear schedule with the same warmup share, gradients clipped at 1.0
      (the Trainer's ``max_grad_norm``), the same class weights if any, the same number of steps;
  (c) the full protocol: ``fine_tune`` with its default validation share (10 %; ``--validation-fraction``),
      early stopping, and a checkpoint folder (checkpoints with optimizer state, best model reloaded at the end).
Examples/s are training rows x epochs over the training time: for (a) and (c) the Trainer's own
``train_samples_per_second`` (from the start to the end of ``Trainer.train``, evaluation and checkpoints
included in (c)); for (b) the loop from its first batch to its last step. Each row also gives the whole
call's seconds (model load and tokenization included) and the mean training loss: (a) and (b) should
be close (the shuffled order differs, so not equal). The ratio (a)/(b) is the Trainer's speed relative
to the plain loop (1.0: no overhead). Three runs each, interleaved (``--repeats``; the table shows the
median), after a 2-step warm-up of the plain loop that is not timed (first-call costs in torch).
Base model: the packaged MiniLM-L6, cut to ``--layers`` encoder layers (``TrainConfig.num_hidden_layers``);
the rest of ``TrainConfig`` at its defaults (batch 16, max_length 64, lr 1e-4, weight decay 0.01,
warmup 10 %), torch's default thread count (as a retrain run has it).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import demo_frame, describe_machine, go_offline, machine, parse_bench_args, write_json
from contracts.train import TrainConfig

TRAIN_DEFAULTS = TrainConfig()

LABELS = ("negative", "neutral", "positive")
# Quick: 64 rows, of which (c) sets 22 aside, enough for a validation split (20 rows at least).
QUICK = {"rows": 64, "epochs": 1.0, "layers": 1, "repeats": 1, "validation_fraction": 0.35}
# The parameter names the Trainer keeps out of weight decay (Trainer.get_decay_parameter_names).
NO_DECAY_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def training_rows(n: int, seed: int) -> Any:
    return demo_frame(seed).iloc[:n].reset_index(drop=True)


def config(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, num_hidden_layers=args.layers, seed=args.seed, **overrides)


def trainer_run(rows: Any, cfg: TrainConfig, checkpoint_dir: Path | None) -> dict[str, Any]:
    """``fine_tune`` as a retrain run calls it; the Trainer times its own training loop."""
    from retrain.train import default_base_model_path, fine_tune

    started = time.perf_counter()
    result = fine_tune(
        rows, LABELS, cfg, base_path=default_base_model_path(), progress=False, checkpoint_dir=checkpoint_dir
    )
    return {
        "examples_per_s": result.examples_per_second,
        "train_s": result.seconds,
        "call_s": time.perf_counter() - started,
        "loss": result.train_loss,
        "steps": result.steps,
        "n_train": result.n_train,
        "n_validation": result.n_validation,
        "validation": result.validation,
        "weighting": result.weighting,
        "stopped_early": result.stopped_early,
    }


def trainer_optimizer() -> str:
    """The ``optim`` a ``TrainingArguments`` gets when none is given (``fine_tune`` gives none)."""
    from transformers import TrainingArguments

    return str(TrainingArguments.__dataclass_fields__["optim"].default)


def plain_optimizer(model: Any, cfg: TrainConfig) -> Any:
    """AdamW as the Trainer builds it: weight decay on all trainable weights but biases and norms."""
    import torch
    from transformers.trainer_pt_utils import get_parameter_names

    decay = set(get_parameter_names(model, [torch.nn.LayerNorm], NO_DECAY_PATTERNS))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    fused = trainer_optimizer() == "adamw_torch_fused"
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.999), eps=1e-8, fused=fused)


def plain_run(rows: Any, cfg: TrainConfig, *, max_steps: int | None = None) -> dict[str, Any]:
    """The same training as ``fine_tune`` without validation, written as a plain torch loop."""
    import torch
    from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup, set_seed

    from retrain.train import (
        _tokenized,
        choose_weighting,
        class_weights,
        default_base_model_path,
        freeze_lower_layers,
        load_base,
    )

    started = time.perf_counter()
    model, tokenizer = load_base(default_base_model_path(), LABELS, cfg)
    freeze_lower_layers(model, cfg.freeze_layers)
    weighting = choose_weighting(rows["label"].tolist(), cfg)
    weights = class_weights(rows["label"].tolist(), LABELS, weighting)
    loader = torch.utils.data.DataLoader(
        _tokenized(rows, LABELS, tokenizer, cfg),
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(cfg.seed),
        collate_fn=DataCollatorWithPadding(tokenizer),
    )
    total = math.ceil(cfg.epochs * len(loader))  # the Trainer's max_steps for an epoch-based run
    steps = min(total, max_steps) if max_steps else total
    optimizer = plain_optimizer(model, cfg)
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(total * cfg.warmup_ratio), total)
    weight = torch.tensor(weights, dtype=torch.float32) if weights else None
    set_seed(cfg.seed)  # as the Trainer does before it trains: the dropout masks start from the seed
    model.train()
    losses: list[float] = []
    loop_started = time.perf_counter()
    while len(losses) < steps:
        for batch in loader:
            labels = batch.pop("labels")
            logits = model(**batch).logits
            loss = torch.nn.functional.cross_entropy(logits, labels, weight=weight)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if len(losses) == steps:
                break
    loop_s = time.perf_counter() - loop_started
    examples = len(rows) * cfg.epochs * steps / total
    return {
        "examples_per_s": examples / loop_s,
        "train_s": loop_s,
        "call_s": time.perf_counter() - started,
        "loss": statistics.fmean(losses),
        "steps": steps,
        "n_train": len(rows),
        "n_validation": 0,
        "validation": "none",
        "weighting": weighting,
        "stopped_early": False,
    }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median examples/s (the lower middle one for an even count), with every run's."""
    ordered = sorted(runs, key=lambda r: r["examples_per_s"])
    return {**ordered[(len(ordered) - 1) // 2], "runs_examples_per_s": [r["examples_per_s"] for r in runs]}


def print_table(report: dict[str, Any]) -> None:
    rows = report["results"]
    print()
    print(describe_machine(report["machine"]))
    print(
        f"data: {report['rows']} VADER demo rows; MiniLM-L6 cut to {report['layers']} layer(s); "
        f"{report['epochs']} epoch(s); batch {report['config']['batch_size']}, max_length "
        f"{report['config']['max_length']}; optimizer {report['trainer_optimizer']}; "
        f"median of {report['repeats']} run(s)"
    )
    print()
    head = f"{'run':<46}{'ex/s':>8}{'train s':>9}{'call s':>8}{'steps':>7}{'rows':>6}{'val':>5}{'loss':>8}"
    print(head)
    print("-" * len(head))
    for key, label in (
        ("a_trainer", "(a) fine_tune, no validation, no checkpoints"),
        ("b_plain_loop", "(b) plain torch loop, same work"),
        ("c_full_protocol", "(c) fine_tune, validation + checkpoints"),
    ):
        r = rows[key]
        print(
            f"{label:<46}{r['examples_per_s']:>8.1f}{r['train_s']:>9.2f}{r['call_s']:>8.2f}"
            f"{r['steps']:>7d}{r['n_train']:>6d}{r['n_validation']:>5d}{r['loss']:>8.4f}"
        )
    print("-" * len(head))
    ratios = report["ratios"]
    print(f"{'(a)/(b) examples/s: Trainer over plain loop':<46}{ratios['trainer_over_plain']:>8.2f}")
    print(f"{'(c)/(b) examples/s: full protocol over plain':<46}{ratios['full_over_plain']:>8.2f}")
    print(f"{'loss (a) - (b)':<46}{ratios['loss_a_minus_b']:>8.4f}")
    print(
        "train s: (a), (c) the Trainer's train_runtime, (b) the loop; call s: the whole call "
        "(model load, tokenization)"
    )
    print(f"(c): {rows['c_full_protocol']['validation']}")
    print(f"\nwrote {report['out']}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=512, help="training rows (demo data)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--layers", type=int, default=6, help="MiniLM encoder layers kept (1-6)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the median is shown")
    parser.add_argument("--seed", type=int, default=TRAIN_DEFAULTS.seed)
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=TRAIN_DEFAULTS.validation_fraction,
        help="validation share of the full protocol (c); TrainConfig's default",
    )
    return parse_bench_args(parser, argv, name="train", quick=QUICK)


def main(argv: Sequence[str] | None = None) -> None:
    go_offline()
    args = parse_args(argv)
    rows = training_rows(args.rows, args.seed)
    same = config(args, validation_fraction=0.0)
    full = config(args, validation_fraction=args.validation_fraction)
    print("warm-up: 2 steps of the plain loop (not timed) ...", file=sys.stderr, flush=True)
    plain_run(rows, same, max_steps=2)
    runs: dict[str, list[dict[str, Any]]] = {"a_trainer": [], "b_plain_loop": [], "c_full_protocol": []}
    for i in range(args.repeats):
        print(f"run {i + 1}/{args.repeats}: (a) Trainer, (b) plain loop, (c) full ...", file=sys.stderr)
        runs["a_trainer"].append(trainer_run(rows, same, None))
        runs["b_plain_loop"].append(plain_run(rows, same))
        with tempfile.TemporaryDirectory(prefix="driftline-bench-train-") as tmp:
            runs["c_full_protocol"].append(trainer_run(rows, full, Path(tmp) / "checkpoints"))
    results = {key: median_run(value) for key, value in runs.items()}
    a, b, c = results["a_trainer"], results["b_plain_loop"], results["c_full_protocol"]
    report = {
        "machine": machine(["transformers", "accelerate", "datasets"]),
        "command": " ".join(["python -m bench.train", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "rows": args.rows,
        "epochs": args.epochs,
        "layers": args.layers,
        "repeats": args.repeats,
        "config": dataclasses.asdict(same),
        "trainer_optimizer": trainer_optimizer(),
        "results": results,
        "ratios": {
            "trainer_over_plain": a["examples_per_s"] / b["examples_per_s"],
            "full_over_plain": c["examples_per_s"] / b["examples_per_s"],
            "loss_a_minus_b": a["loss"] - b["loss"],
        },
        "same_steps": a["steps"] == b["steps"],
        "out": str(args.out),
    }
    write_json(args.out, report)
    print_table(report)


if __name__ == "__main__":
    main()
