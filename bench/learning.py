"""Learning-quality benchmark: on one labeled stream, does retraining on drift keep accuracy up, with how
many retrains, at what cost, next to the baselines?

    .venv/bin/python -m bench.learning --demo                 # the demo stream (VADER), three policies
    .venv/bin/python -m bench.learning --demo --policies drift@queue,drift@random --results learning-budget
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

The machinery is reusable: :class:`StreamSpec` says what a stream is and how it is replayed,
:class:`ModelSpec` how the models are trained, and :func:`compare_policies` runs the policies on it and
returns the figures that :func:`markdown` tabulates (``bench.streams`` runs it on several public streams).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.baselines import REFERENCE, bow_refit
from bench.common import RESULTS, ROOT, describe_machine, go_offline, machine, write_json
from registry.entities import GUARD_ACTOR

POLICIES = ("drift", "never", "every-window")
# The drift policy with a label budget (``--label-budget``) spent by one strategy: the label queue, or rows
# drawn at random. Named ``drift@queue`` and ``drift@random`` in --policies and the results.
BUDGET_STRATEGIES = ("queue", "random")
PROMOTED = ("promoted", "approved")
# What each policy's entry in a result file keeps of its session's summary.
SUMMARY_KEYS = (
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
    "labeling",
    "estimates_backtest",
)


@dataclass(frozen=True)
class StreamSpec:
    """One labeled, time-ordered file and how it is replayed: its columns, v1's rows (the first
    ``bootstrap_rows``, after sorting by ``time_col`` when there is one), the monitor's cadence and the
    training values this stream needs (``train``: e.g. ``max_length`` for long texts)."""

    name: str
    data: Path
    text_col: str = "text"
    label_col: str = "label"
    domain_col: str | None = "domain"
    time_col: str | None = None
    bootstrap_rows: int = 2000
    window: int = 300
    check_every: int = 150
    label_delay: int = 50
    limit: int | None = None  # stream rows replayed (None: all)
    min_new_labels: int = 100
    label_budget: float = 0.2  # the share of rows the drift@queue and drift@random sessions may label
    train: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """How v1 and every run are trained: MiniLM-L6 with ``layers`` encoder layers (None: all 6), the
    epochs, the seed, and any other TrainConfig values (``train``, over the stream's)."""

    epochs: float = 2.0
    run_epochs: float = 2.0
    layers: int | None = None
    seed: int = 7
    train: dict[str, Any] = field(default_factory=dict)
    search: bool = True  # v1 and every run search their recipe (retrain.search); False: one recipe


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


def bootstrap_domains(stream: StreamSpec) -> set[str]:
    """Domains version 1 was trained on: the stream's other domains are the drifted ones."""
    from retrain.data import ColumnSpec, load_labeled_file

    columns = ColumnSpec(
        text=stream.text_col, label=stream.label_col, time=stream.time_col, domain=stream.domain_col
    )
    frame = load_labeled_file(stream.data, columns).frame
    if stream.time_col:
        frame = frame.sort_values("time", kind="stable")
    return {str(d) for d in frame["domain"].iloc[: stream.bootstrap_rows].dropna().unique()}


def session_config(policy: str, stream: StreamSpec, model: ModelSpec, out: Path) -> Any:
    """The replay session of ``policy``: one of POLICIES, or ``drift@queue`` / ``drift@random`` (the drift
    policy with the stream's label budget, spent by that strategy)."""
    from driftline.session import SessionConfig

    policy, _, strategy = policy.partition("@")
    if strategy and (policy != "drift" or strategy not in BUDGET_STRATEGIES):
        raise ValueError(f"unknown policy {policy}@{strategy}: use drift@queue or drift@random")
    budget = {"label_budget": stream.label_budget, "label_strategy": strategy} if strategy else {}

    train: dict[str, Any] = {**stream.train, "epochs": model.epochs}
    if model.layers is not None:
        train["num_hidden_layers"] = model.layers
    train.update(model.train)
    return SessionConfig(
        data=stream.data,
        text_col=stream.text_col,
        label_col=stream.label_col,
        domain_col=stream.domain_col,
        time_col=stream.time_col,
        out=out,
        bootstrap_rows=stream.bootstrap_rows,
        window=stream.window,
        check_every=stream.check_every,
        label_delay=stream.label_delay,
        limit=stream.limit,
        min_new_labels=stream.min_new_labels,
        policy=policy,
        seed=model.seed,
        train=train,
        run_train={"epochs": model.run_epochs},
        search=model.search,
        **budget,
    )


def prepare_v1(stream: StreamSpec, model: ModelSpec, out: Path) -> tuple[Path, float]:
    """Version 1, trained once for every policy: the same starting model by construction."""
    from driftline.session import prepare_v1 as prepare

    started = time.monotonic()
    home = prepare(
        session_config(POLICIES[0], stream, model, out / "v1"), say=lambda line: print(f"[v1] {line}")
    )
    return home, time.monotonic() - started


def run_policy(policy: str, stream: StreamSpec, model: ModelSpec, out: Path, v1: Path) -> dict[str, Any]:
    from driftline.session import run_session

    config = replace(session_config(policy, stream, model, out / policy), v1_workspace=v1)
    started = time.monotonic()
    summary = run_session(config, say=lambda line: print(f"[{policy}] {line}", flush=True))
    return {"wall_s": time.monotonic() - started, **summary.to_dict()}


def bow_reference(stream: StreamSpec, model: ModelSpec, out: Path) -> dict[str, Any]:
    """The ``bow-refit`` reference (``bench.baselines``) on the rows the sessions replay, loaded as they
    load them (time order, v1's rows, ``limit``), refitted every ``window`` rows on the labels
    ``label_delay`` rows late."""
    import pandas as pd

    from driftline.session import load_stream

    config = session_config(POLICIES[0], stream, model, out / REFERENCE)
    with tempfile.TemporaryDirectory(prefix="bench-bow-") as cache:
        loaded = load_stream(config, Path(cache))
    rows = pd.DataFrame(
        [{"text": r.text, "label": r.label, "domain": r.domain} for r in loaded.rows],
        columns=["text", "label", "domain"],
    )
    return bow_refit(loaded.bootstrap, rows, window=stream.window, label_delay=stream.label_delay)


def registry_facts(workspace: Path) -> dict[str, Any]:
    """What the session's registry holds beyond its summary: the guard's rollbacks (champion moves by
    actor ``guard``; none until a guard exists) and when each run was queued."""
    from driftline.session import session_settings
    from registry.store import Registry

    settings = session_settings(workspace)
    registry = Registry.open(settings, create_if_empty=False)
    try:
        events = registry.list_alias_events(settings.model_name, alias="champion", limit=10_000)
        runs = registry.list_runs(settings.model_name, limit=10_000)
    finally:
        registry.close()
    rollbacks = [
        {"from": ev.from_version, "to": ev.to_version, "reason": ev.reason, "at": ev.created_at.isoformat()}
        for ev in reversed(events)
        if ev.actor == GUARD_ACTOR
    ]
    return {"rollbacks": rollbacks, "run_queued_at": {r.id: r.created_at.isoformat() for r in runs}}


def drifted_domains(results: dict[str, dict[str, Any]], boot_domains: set[str]) -> list[str]:
    first = next(iter(results.values()))
    return [d for d in first["domains"] if d not in boot_domains]


def change_row(result: dict[str, Any], drifted: list[str]) -> int | None:
    """The first stream row of a drifted domain: where the change begins (None: no drifted domain)."""
    rows = [d["first_row"] for name, d in result["domains"].items() if name in drifted]
    return min(rows) if rows else None


def harm(result: dict[str, Any]) -> float | None:
    """The worst promoted-minus-replaced accuracy, on the rows each promoted model served (None: no
    promotion was scored)."""
    deltas = [p["promoted_accuracy"] - p["replaced_accuracy"] for p in result.get("promotion_checks", [])]
    return min(deltas) if deltas else None


def time_to_recover(
    result: dict[str, Any], change: int | None, facts: dict[str, Any]
) -> dict[str, Any] | None:
    """From the change to the first promotion at or after it whose model beat the one it replaced on the
    rows it served: in rows (from the change row), and in seconds from the first record at or after the
    change (a drift check; for ``every-window``, which checks nothing, the run it queued) to the
    promotion. None when the stream has no change."""
    if change is None:
        return None
    helped = {
        p["promoted"]: p["promoted_accuracy"] - p["replaced_accuracy"]
        for p in result.get("promotion_checks", [])
    }
    promotion = next(
        (
            d
            for d in result["decisions"]
            if d["status"] in PROMOTED and d["row"] >= change and helped.get(d["candidate_version"], -1.0) > 0
        ),
        None,
    )
    if promotion is None:
        return {"change_row": change, "promotion_row": None, "rows": None, "seconds": None}
    queued = facts.get("run_queued_at", {})
    anchors = [(c["row"], c["at"]) for c in result["checks"]]
    anchors += [(r["row"], queued[r["id"]]) for r in result["runs"] if r["id"] in queued]
    later = sorted((row, at) for row, at in anchors if row >= change)
    seconds = None
    if later:
        start = datetime.fromisoformat(later[0][1])
        seconds = round((datetime.fromisoformat(promotion["at"]) - start).total_seconds(), 1)
    return {
        "change_row": change,
        "promoted_version": promotion["candidate_version"],
        "promotion_row": promotion["row"],
        "rows": promotion["row"] - change,
        "seconds": seconds,
        "seconds_from_row": later[0][0] if later else None,
    }


def drifted_accuracy(result: dict[str, Any], drifted: list[str]) -> float:
    rows = [(d["accuracy"], d["n"]) for name, d in result["domains"].items() if name in drifted]
    return sum(a * n for a, n in rows) / sum(n for _, n in rows) if rows else float("nan")


def compare(
    results: dict[str, dict[str, Any]],
    drifted: list[str],
    references: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The targets, each with its numbers and met / not met."""
    drift, every, never = results.get("drift"), results.get("every-window"), results.get("never")
    targets: dict[str, Any] = {}
    bow = (references or {}).get(REFERENCE)
    if drift and bow:
        targets[f"drift vs {REFERENCE}"] = {
            "accuracy_drift": drift["accuracy"],
            f"accuracy_{REFERENCE}": bow["accuracy"],
            "macro_f1_drift": drift["macro_f1"],
            f"macro_f1_{REFERENCE}": bow["macro_f1"],
            "met": drift["accuracy"] >= bow["accuracy"] and drift["macro_f1"] >= bow["macro_f1"],
        }
    if drift and every:
        runs_drift, runs_every = drift["counts"]["runs"], every["counts"]["runs"]
        targets["drift vs every-window"] = {
            "accuracy_drift": drift["accuracy"],
            "accuracy_every_window": every["accuracy"],
            "runs_drift": runs_drift,
            "runs_every_window": runs_every,
            "met": drift["accuracy"] >= every["accuracy"] - 0.01 and runs_drift <= runs_every / 2,
        }
    if drift and never and drifted:
        a, b = drifted_accuracy(drift, drifted), drifted_accuracy(never, drifted)
        targets["drift vs never on drifted domains"] = {"drift": a, "never": b, "met": a > b + 0.01}
    worst = [
        p["promoted_accuracy"] - p["replaced_accuracy"]
        for r in results.values()
        for p in r.get("promotion_checks", [])
    ]
    queue, random_ = results.get("drift@queue"), results.get("drift@random")
    if queue and random_ and drifted:
        a, b = drifted_accuracy(queue, drifted), drifted_accuracy(random_, drifted)
        targets["queue vs random at the same label budget, drifted domains"] = {
            "queue": a,
            "random": b,
            "labels_queue": queue["labels_sent"],
            "labels_random": random_["labels_sent"],
            "met": a >= b + 0.02,
        }
    targets["no promotion worse by more than 1 pt"] = {
        "worst_delta": min(worst) if worst else None,
        "promotions": len(worst),
        "met": all(d >= -0.01 for d in worst),
    }
    return targets


def compare_policies(stream: StreamSpec, model: ModelSpec, policies: list[str], out: Path) -> dict[str, Any]:
    """Compute the ``bow-refit`` reference, train v1 once, run each policy's session on ``stream`` from a
    copy of it, and return the comparison: the drifted domains, the targets, each policy's figures and
    the reference's (``references``)."""
    out.mkdir(parents=True, exist_ok=True)
    references = {REFERENCE: bow_reference(stream, model, out)}
    bow = references[REFERENCE]
    print(
        f"[{REFERENCE}] accuracy {bow['accuracy']:.3f}, macro-F1 {bow['macro_f1']:.3f}: "
        f"{bow['refits']} fits, {bow['fit_seconds']:.1f} s",
        flush=True,
    )
    v1, v1_seconds = prepare_v1(stream, model, out)
    results = {p: run_policy(p, stream, model, out, v1) for p in policies}
    drifted = drifted_domains(results, bootstrap_domains(stream))
    figures = {}
    for policy, result in results.items():
        facts = registry_facts(out / policy / "workspace")
        change = change_row(result, drifted)
        figures[policy] = {
            **{k: result[k] for k in SUMMARY_KEYS},
            "rollbacks": len(facts["rollbacks"]),
            "rollback_events": facts["rollbacks"],
            "time_to_recover": time_to_recover(result, change, facts),
            "harm": harm(result),
        }
    return {
        "stream": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(stream).items()},
        "model": asdict(model),
        "v1_seconds": v1_seconds,
        "drifted": drifted,
        "targets": compare(results, drifted, references),
        "policies": figures,
        "references": references,
    }


def _cell(value: float | int | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


HEAD = (
    "policy",
    "accuracy",
    "macro-F1",
    "drift alarms",  # the domains' columns go before this one
    "runs",
    "growth runs",
    "promoted",
    "rollbacks",
    "labels used",
    "training s",
    "recovery rows",
    "recovery s",
    "harm (pts)",
    "wall s",
)


def policy_cells(policy: str, r: dict[str, Any], domains: list[str]) -> list[str]:
    """One policy's row of the table (HEAD's columns, the domains' after macro-F1)."""
    recovery = r.get("time_to_recover") or {}
    worst = r.get("harm")
    return [
        policy,
        f"{r['accuracy']:.3f}",
        f"{r['macro_f1']:.3f}",
        *[f"{r['domains'][d]['accuracy']:.3f}" if d in r["domains"] else "" for d in domains],
        str(r["counts"].get("drift_alarms", 0)),
        str(r["counts"]["runs"]),
        str(r["counts"].get("runs_label_growth", 0)),
        str(r["counts"]["promotions"]),
        str(r.get("rollbacks", 0)),
        str(r["labels_used"]),
        f"{r['training_seconds']:.0f}",
        _cell(recovery.get("rows"), "d") if recovery else "n/a",
        _cell(recovery.get("seconds"), ".0f") if recovery else "n/a",
        _cell(None if worst is None else worst * 100, "+.1f"),
        f"{r['wall_s']:.0f}",
    ]


def reference_cells(name: str, r: dict[str, Any], domains: list[str]) -> list[str]:
    """A reference's row: its scores, its refits as runs, its fit seconds as training s."""
    scores = [f"{r['domains'][d]['accuracy']:.3f}" if d in r["domains"] else "" for d in domains]
    rest = ["", str(r["refits"]), "", "", "", "", f"{r['fit_seconds']:.1f}", "", "", "", f"{r['wall_s']:.0f}"]
    return [name, f"{r['accuracy']:.3f}", f"{r['macro_f1']:.3f}", *scores, *rest]


def markdown(report: dict[str, Any]) -> str:
    """A row per policy and per reference, then the drifted domains and the targets."""
    results, drifted, targets = report["policies"], report["drifted"], report["targets"]
    references = report.get("references", {})
    domains = list(dict.fromkeys(d for r in results.values() for d in r["domains"]))
    head = [*HEAD[:3], *[f"acc. {d}" for d in domains], *HEAD[3:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(policy_cells(p, r, domains)) + " |" for p, r in results.items()]
    lines += ["| " + " | ".join(reference_cells(n, r, domains)) + " |" for n, r in references.items()]
    lines.append("")
    lines.append(f"Drifted domains: {', '.join(drifted) if drifted else 'none (v1 saw every domain)'}.")
    lines.append(
        "Recovery: from the first row of a drifted domain to the first promotion after it that beat the "
        "model it replaced on the rows it served (blank: none did; n/a: no drifted domain); seconds from "
        "the first drift check (every-window: the first run) at or after that row. Harm: the worst "
        "promoted-minus-replaced accuracy on those rows (blank: no promotion). Growth runs: those of the "
        "runs the label-growth trigger queued (no drift that hurts; the labels since the champion outgrew "
        "its training set)."
    )
    if REFERENCE in references:
        lines.append(
            f"`{REFERENCE}` is a reference, not a session: TF-IDF + logistic regression (balanced class "
            "weights) refitted offline at the start of every window on v1's rows and every stream label "
            "that has arrived by then (the same window and label delay), scoring that window's rows; runs: "
            "its fits; training s: their seconds together."
        )
    for name, t in targets.items():
        numbers = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in t.items() if k != "met"
        )
        lines.append(f"- {name}: {numbers}: **{'met' if t['met'] else 'not met'}**")
    lines.append("")
    lines.append(
        f"Version 1 was trained once ({report['v1_seconds']:.0f} s) and copied into each policy's "
        "workspace; wall s excludes it."
    )
    return "\n".join(lines) + "\n"


def add_policy_options(parser: argparse.ArgumentParser) -> None:
    """``--policies`` and ``--label-budget``, shared with bench.streams."""
    parser.add_argument(
        "--policies",
        default=",".join(POLICIES),
        help="comma-separated; also drift@queue and drift@random (the drift policy on --label-budget)",
    )
    parser.add_argument(
        "--label-budget", type=float, default=0.2, help="share of rows drift@queue / drift@random may label"
    )
    parser.add_argument(
        "--no-search",
        dest="search",
        action="store_false",
        help="v1 and every run train one recipe (no recipe search): the comparison's baseline",
    )


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
    add_policy_options(parser)
    parser.add_argument(
        "--results", default="learning", help="bench/results/NAME.json and NAME.md (default: learning)"
    )
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
    stream = StreamSpec(
        name="demo" if args.demo else Path(data).stem,
        data=data,
        text_col=args.text_col,
        label_col=args.label_col,
        domain_col=args.domain_col,
        time_col=args.time_col,
        bootstrap_rows=args.bootstrap_rows,
        window=args.window,
        check_every=args.check_every,
        label_delay=args.label_delay,
        label_budget=args.label_budget,
    )
    model = ModelSpec(
        epochs=args.epochs, run_epochs=args.run_epochs, layers=args.layers, seed=args.seed, search=args.search
    )
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    comparison = compare_policies(stream, model, policies, args.out)
    table = markdown(comparison)
    info = machine(["transformers", "evidently", "bentoml"])
    print()
    print(describe_machine(info))
    print(table)
    report = {
        "machine": info,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **comparison,
    }
    json_path, md_path = RESULTS / f"{args.results}.json", RESULTS / f"{args.results}.md"
    write_json(json_path, report)
    md_path.write_text(describe_machine(info) + "\n\n" + table)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
