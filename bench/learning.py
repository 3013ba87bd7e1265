"""Learning-quality benchmark: on one labeled stream, does retraining on drift keep accuracy up, with how
many retrains, at what cost, next to the baselines?

    .venv/bin/python -m bench.learning --demo                 # the demo stream (VADER), three policies
    .venv/bin/python -m bench.learning DATA --text-col C --label-col C [--domain-col C] [--time-col C]

Version 1 is trained once on the stream's first rows; each policy is then one ``driftline replay``
session starting from a copy of it (deterministic: a drift check every ``--check-every`` rows through the
control API, and the replay waits for any run it queues), on the same stream and seed:
  drift         the real trigger policy;
  never         version 1 serves throughout (checks still run and say what they see);
  every-window  a run every window regardless of drift, the gate on.
Writes ``bench/results/learning.json`` and ``learning.md`` (a table per policy) and checks the targets:
drift >= every-window's prequential accuracy - 1 pt with at most half its retrains; drift beats never on
the drifted domains; no promotion is more than 1 pt worse than the champion it replaced, on the rows
the promoted model served.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, describe_machine, go_offline, machine, write_json

POLICIES = ("drift", "never", "every-window")


def demo_file(out: Path, args: argparse.Namespace) -> Path:
    """The demo stream as a file: v1's movie rows first, then amazon, tweets and NYT rows."""
    import pandas as pd

    from driftline.demo import DemoConfig, demo_stream
    from driftline.demo_data import fetch_vader

    config = DemoConfig(
        bootstrap_rows=args.bootstrap_rows, rows_per_domain=args.rows_per_domain, seed=args.seed
    )
    stream = demo_stream(pd.read_csv(fetch_vader(ROOT / ".driftline" / "cache" / "demo")), config)
    rows = pd.DataFrame([{"text": r.text, "label": r.label, "domain": r.domain} for r in stream.rows])
    frame = pd.concat([stream.bootstrap[["text", "label", "domain"]], rows], ignore_index=True)
    path = out / "demo-stream.csv"
    frame.to_csv(path, index=False)
    return path


def bootstrap_domains(data: Path, args: argparse.Namespace) -> set[str]:
    """Domains version 1 was trained on: the stream's other domains are the drifted ones."""
    from retrain.data import ColumnSpec, load_labeled_file

    columns = ColumnSpec(text=args.text_col, label=args.label_col, time=args.time_col, domain=args.domain_col)
    frame = load_labeled_file(data, columns).frame
    if args.time_col:
        frame = frame.sort_values("time", kind="stable")
    return {str(d) for d in frame["domain"].iloc[: args.bootstrap_rows].dropna().unique()}


def session_config(policy: str, data: Path, args: argparse.Namespace, out: Path) -> Any:
    from driftline.session import SessionConfig

    train: dict[str, Any] = {"epochs": args.epochs}
    if args.layers is not None:
        train["num_hidden_layers"] = args.layers
    return SessionConfig(
        data=data,
        text_col=args.text_col,
        label_col=args.label_col,
        domain_col=args.domain_col,
        time_col=args.time_col,
        out=out,
        bootstrap_rows=args.bootstrap_rows,
        window=args.window,
        check_every=args.check_every,
        label_delay=args.label_delay,
        policy=policy,
        seed=args.seed,
        train=train,
        run_train={"epochs": args.run_epochs},
    )


def prepare_v1(data: Path, args: argparse.Namespace, out: Path) -> tuple[Path, float]:
    """Version 1, trained once for every policy: the same starting model by construction."""
    from driftline.session import prepare_v1 as prepare

    started = time.monotonic()
    home = prepare(
        session_config(POLICIES[0], data, args, out / "v1"), say=lambda line: print(f"[v1] {line}")
    )
    return home, time.monotonic() - started


def run_policy(policy: str, data: Path, args: argparse.Namespace, out: Path, v1: Path) -> dict[str, Any]:
    from driftline.session import run_session

    config = replace(session_config(policy, data, args, out / policy), v1_workspace=v1)
    started = time.monotonic()
    summary = run_session(config, say=lambda line: print(f"[{policy}] {line}", flush=True))
    return {"wall_s": time.monotonic() - started, **summary.to_dict()}


def drifted_accuracy(result: dict[str, Any], drifted: list[str]) -> float:
    rows = [(d["accuracy"], d["n"]) for name, d in result["domains"].items() if name in drifted]
    return sum(a * n for a, n in rows) / sum(n for _, n in rows) if rows else float("nan")


def compare(results: dict[str, dict[str, Any]], drifted: list[str]) -> dict[str, Any]:
    """The targets, each with its numbers and met / not met."""
    drift, every, never = results.get("drift"), results.get("every-window"), results.get("never")
    targets: dict[str, Any] = {}
    if drift and every:
        runs_drift, runs_every = drift["counts"]["runs"], every["counts"]["runs"]
        targets["drift vs every-window"] = {
            "accuracy_drift": drift["accuracy"],
            "accuracy_every_window": every["accuracy"],
            "runs_drift": runs_drift,
            "runs_every_window": runs_every,
            "met": drift["accuracy"] >= every["accuracy"] - 0.01 and runs_drift <= runs_every / 2,
        }
    if drift and never:
        a, b = drifted_accuracy(drift, drifted), drifted_accuracy(never, drifted)
        targets["drift vs never on drifted domains"] = {"drift": a, "never": b, "met": a > b + 0.01}
    worst = [
        p["promoted_accuracy"] - p["replaced_accuracy"]
        for r in results.values()
        for p in r.get("promotion_checks", [])
    ]
    targets["no promotion worse by more than 1 pt"] = {
        "worst_delta": min(worst) if worst else None,
        "promotions": len(worst),
        "met": all(d >= -0.01 for d in worst),
    }
    return targets


def markdown(results: dict[str, dict[str, Any]], drifted: list[str], targets: dict[str, Any]) -> str:
    domains = sorted({d for r in results.values() for d in r["domains"]})
    head = [
        "policy",
        "accuracy",
        "macro-F1",
        *[f"acc. {d}" for d in domains],
        "runs",
        "promoted",
        "labels used",
        "training s",
        "wall s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for policy, r in results.items():
        cells = [
            policy,
            f"{r['accuracy']:.3f}",
            f"{r['macro_f1']:.3f}",
            *[f"{r['domains'][d]['accuracy']:.3f}" if d in r["domains"] else "" for d in domains],
            str(r["counts"]["runs"]),
            str(r["counts"]["promotions"]),
            str(r["labels_used"]),
            f"{r['training_seconds']:.0f}",
            f"{r['wall_s']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Drifted domains: {', '.join(drifted)}.")
    for name, t in targets.items():
        numbers = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in t.items() if k != "met"
        )
        lines.append(f"- {name}: {numbers}: **{'met' if t['met'] else 'not met'}**")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learning", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, help="labeled stream (CSV / JSONL / Parquet)")
    parser.add_argument(
        "--demo", action="store_true", help="the demo stream (VADER): movies, then amazon, tweets, NYT"
    )
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="label")
    parser.add_argument("--domain-col", default="domain")
    parser.add_argument("--time-col", default=None)
    parser.add_argument("--bootstrap-rows", type=int, default=2000)
    parser.add_argument("--rows-per-domain", type=int, default=600, help="--demo: stream rows per domain")
    parser.add_argument("--window", type=int, default=300)
    parser.add_argument("--check-every", type=int, default=150)
    parser.add_argument("--label-delay", type=int, default=50)
    parser.add_argument(
        "--layers", type=int, default=None, help="MiniLM encoder layers kept (default: all 6)"
    )
    parser.add_argument("--epochs", type=float, default=2.0, help="v1's epochs")
    parser.add_argument("--run-epochs", type=float, default=2.0, help="each run's epochs")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--out", type=Path, default=ROOT / ".driftline" / "bench-learning", help="sessions' folders"
    )
    args = parser.parse_args(argv)
    if not args.demo and args.data is None:
        parser.error("give DATA or --demo")
    go_offline()
    args.out.mkdir(parents=True, exist_ok=True)
    data = demo_file(args.out, args) if args.demo else args.data
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    v1, v1_seconds = prepare_v1(data, args, args.out)
    results = {p: run_policy(p, data, args, args.out, v1) for p in policies}
    first = next(iter(results.values()))
    boot_domains = bootstrap_domains(data, args)
    drifted = [d for d in first["domains"] if d not in boot_domains]
    targets = compare(results, drifted)
    table = markdown(results, drifted, targets) + (
        f"\nVersion 1 was trained once ({v1_seconds:.0f} s) and copied into each policy's workspace; "
        "wall s excludes it.\n"
    )
    info = machine(["transformers", "evidently", "bentoml"])
    print()
    print(describe_machine(info))
    print(table)
    report = {
        "machine": info,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "targets": targets,
        "v1_seconds": v1_seconds,
        "policies": {
            p: {
                k: r[k]
                for k in (
                    "accuracy",
                    "macro_f1",
                    "domains",
                    "counts",
                    "labels_sent",
                    "labels_used",
                    "training_seconds",
                    "wall_s",
                    "recovery",
                    "promotion_checks",
                    "windows",
                )
            }
            for p, r in results.items()
        },
    }
    write_json(RESULTS / "learning.json", report)
    (RESULTS / "learning.md").write_text(describe_machine(info) + "\n\n" + table)
    print(f"wrote {RESULTS / 'learning.json'} and {RESULTS / 'learning.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
