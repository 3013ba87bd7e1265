"""What a replay did, scored: served accuracy per window, per domain and per version; the checks, runs
and decisions the registry recorded meanwhile, placed on the stream; an ``index.html`` that links every
drift and promotion report (``templates/replay_index.html.j2``) beside the timeline figure
(``driftline.timeline``)."""

from __future__ import annotations

import bisect
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from driftline.processes import ConsoleHint
from driftline.replay_types import Refused, ReplayLog, ServedRow
from registry.entities import DriftCheck, PromotionDecision, RetrainRun
from registry.settings import Settings
from registry.store import Registry

EXAMPLES = 5  # row indexes kept per refusal reason


@dataclass
class StreamSummary:
    rows: int
    seconds: float
    labels_sent: int
    accuracy: float
    windows: list[dict[str, Any]]
    domains: dict[str, dict[str, Any]]
    checks: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    holds: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    promotion_checks: list[dict[str, Any]] = field(default_factory=list)
    macro_f1: float = float("nan")
    counts: dict[str, int] = field(default_factory=dict)
    labels_used: int = 0  # training rows of the versions this stream's runs made (new labels + replay)
    training_seconds: float = 0.0
    recovery: dict[str, Any] | None = None
    # Rows /predict refused (not served: outside every score) and labels /feedback refused, by reason
    # (the service's error code and message, row-specific numbers folded), with a few row indexes each.
    rows_refused: int = 0
    rows_refused_reasons: dict[str, int] = field(default_factory=dict)
    rows_refused_examples: dict[str, list[int]] = field(default_factory=dict)
    labels_refused: int = 0
    labels_refused_reasons: dict[str, int] = field(default_factory=dict)
    labels_refused_examples: dict[str, list[int]] = field(default_factory=dict)
    ended_early: str | None = None  # why the replay stopped before the end of the stream
    stream_rows: int | None = None  # rows in the stream (served + refused + not reached)
    preflight: dict[str, Any] = field(default_factory=dict)  # rows over the service's limits, counted first
    # label-free accuracy estimates of each drift check against the accuracy its window's labels show
    estimates_backtest: dict[str, Any] = field(default_factory=dict)
    # who picked the labeled rows: rows labeled, and with the label queue, its asks and items
    labeling: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}

    @property
    def promotions(self) -> list[dict[str, Any]]:
        return [d for d in self.decisions if d["status"] in ("promoted", "approved")]

    def lines(self) -> list[str]:
        """The summary, one screen."""
        return [*self._stream_lines(), "", *self._domain_lines(), "", *self._record_lines()]

    def _stream_lines(self) -> list[str]:
        """What was served and what was refused."""
        out = [
            f"{self.rows} rows served in {self.seconds / 60:.1f} min, {self.labels_sent} labels sent; "
            f"served accuracy {self.accuracy:.3f}, macro-F1 {self.macro_f1:.3f}",
        ]
        if self.ended_early:
            of = f" of {self.stream_rows:,}" if self.stream_rows is not None else ""
            reached = self.rows + self.rows_refused
            out.append(f"ended early after {reached:,}{of} rows: {self.ended_early}")
        for what, n, reasons, examples in (
            (
                "rows refused by /predict (not served, not scored)",
                self.rows_refused,
                self.rows_refused_reasons,
                self.rows_refused_examples,
            ),
            (
                "labels refused by /feedback",
                self.labels_refused,
                self.labels_refused_reasons,
                self.labels_refused_examples,
            ),
        ):
            if n:
                out.append(f"{n:,} {what}:")
                for reason, count in reasons.items():
                    rows = ", ".join(map(str, examples.get(reason, [])))
                    out.append(f"  {count:,} x {reason} (rows {rows}{', ...' if count > EXAMPLES else ''})")
        return out

    def _domain_lines(self) -> list[str]:
        out = [f"  {'domain':<10}{'rows':>6}{'accuracy':>10}   by serving version"]
        for name, d in self.domains.items():
            versions = "  ".join(
                f"v{v}: {s['accuracy']:.3f} ({s['n']})" for v, s in sorted(d["by_version"].items())
            )
            out.append(f"  {name:<10}{d['n']:>6}{d['accuracy']:>10.3f}   {versions}")
        return out

    def _record_lines(self) -> list[str]:
        """The checks, runs and decisions the registry recorded, and what the promotions did."""
        drifted = sum(c["drifted"] for c in self.checks)
        out = [f"drift checks: {len(self.checks)} ({drifted} saw drift)"]
        out += [
            f"  check {c['id']} at row {c['row']}: {c['reason']}"
            for c in self.checks
            if c["decision"] == "retrain"
        ]
        out.append(f"retraining runs: {len(self.runs)}")
        verdicts = {d["run_id"]: d["status"] for d in self.decisions}
        for r in self.runs:
            detail = f" -> v{r['candidate_version']}" if r["candidate_version"] else ""
            detail += f" {verdicts[r['id']]}" if r["id"] in verdicts else ""
            error = f" ({r['error']})" if r["error"] else ""
            out.append(f"  run {r['id']} ({r['trigger']}) {r['status']}{detail}{error}")
        out.append(f"decisions: {len(self.decisions)} ({len(self.promotions)} promoted)")
        return out + self._promotion_lines()

    def _promotion_lines(self) -> list[str]:
        out = []
        if self.recovery and self.recovery.get("promotion"):
            r = self.recovery
            out.append(
                f"first drift seen at row {r['drift_row']} (check {r['drift_check']}); v{r['promoted_version']} "
                f"promoted {r['rows']} rows and {r['seconds']:.0f} s later"
            )
        out.append(
            f"labels sent {self.labels_sent}, used in training {self.labels_used} (with replayed rows); "
            f"time spent training {self.training_seconds:.0f} s"
        )
        for p in self.promotion_checks:
            out.append(
                f"  after the promotion of v{p['promoted']}: on the {p['rows']} rows it served, accuracy "
                f"{p['promoted_accuracy']:.3f} vs {p['replaced_accuracy']:.3f} for v{p['replaced']} "
                f"({(p['promoted_accuracy'] - p['replaced_accuracy']) * 100:+.1f} pts)"
            )
        for d in self.decisions:
            out.append(
                f"  v{d['candidate_version']} vs v{d['incumbent_version']}: {d['status']} - "
                + "; ".join(d["reasons"])
            )
        return out


def _refusals(refused: list[Refused]) -> tuple[int, dict[str, int], dict[str, list[int]]]:
    """How many, how many per reason (most frequent first), and the first few row indexes of each."""
    counts = Counter(r.reason for r in refused)
    examples: dict[str, list[int]] = defaultdict(list)
    for r in refused:
        if len(examples[r.reason]) < EXAMPLES:
            examples[r.reason].append(r.index)
    reasons = dict(counts.most_common())
    return len(refused), reasons, {reason: examples[reason] for reason in reasons}


def _accuracy(rows: list[ServedRow]) -> float:
    return sum(r.label == r.predicted for r in rows) / len(rows) if rows else float("nan")


def _macro_f1(rows: list[ServedRow]) -> float:
    """Macro-F1 over the classes that occur (as truth or as prediction) in ``rows``."""
    if not rows:
        return float("nan")
    from sklearn.metrics import f1_score

    truth, predicted = [r.label for r in rows], [r.predicted for r in rows]
    return float(f1_score(truth, predicted, average="macro", zero_division=0))


def _row_at(times: list[float], started_at: datetime, when: datetime) -> int:
    """The number of rows served before ``when``: where a record sits on the stream."""
    return bisect.bisect_right(times, (when - started_at).total_seconds())


def _recovery(checks: list[dict[str, Any]], decisions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """From the first check that saw drift to the first promotion after it: in rows, and in seconds."""
    first = next((c for c in checks if c["drifted"]), None)
    if first is None:
        return None
    promoted = next(
        (d for d in decisions if d["status"] in ("promoted", "approved") and d["at"] >= first["at"]), None
    )
    if promoted is None:
        return {"drift_check": first["id"], "drift_row": first["row"], "promotion": None}
    seconds = (datetime.fromisoformat(promoted["at"]) - datetime.fromisoformat(first["at"])).total_seconds()
    return {
        "drift_check": first["id"],
        "drift_row": first["row"],
        "promotion": promoted["id"],
        "promoted_version": promoted["candidate_version"],
        "promotion_row": promoted["row"],
        "rows": promoted["row"] - first["row"],
        "seconds": round(seconds, 1),
    }


def summarize(settings: Settings, log: ReplayLog, *, window: int, seconds: float) -> StreamSummary:
    """The replay's scores (per ``window`` rows, per domain, per version) and the registry's records of
    it, placed on the stream."""
    served = log.served
    records = _records(settings, log)
    checks, runs, decisions = records["checks"], records["runs"], records["decisions"]
    rows_refused, rows_reasons, rows_examples = _refusals(log.refused_rows)
    labels_refused, labels_reasons, labels_examples = _refusals(log.refused_labels)
    return StreamSummary(
        rows_refused=rows_refused,
        rows_refused_reasons=rows_reasons,
        rows_refused_examples=rows_examples,
        labels_refused=labels_refused,
        labels_refused_reasons=labels_reasons,
        labels_refused_examples=labels_examples,
        ended_early=log.ended_early,
        macro_f1=_macro_f1(served),
        counts=_counts(checks, runs, decisions),
        training_seconds=sum(r["seconds"] or 0.0 for r in runs),
        recovery=_recovery(checks, decisions),
        rows=len(served),
        seconds=seconds,
        labels_sent=log.labels_sent,
        labeling={
            "rows_labeled": sum(r.labeled for r in served),
            "queue_asks": log.queue_asks,
            "queue_items": log.queue_items,
        },
        accuracy=_accuracy(served),
        windows=_windows(served, window),
        domains=_domains(served),
        holds=[
            {
                "row": h.row,
                "seconds": round(h.ended - h.started, 1),
                "runs": h.run_ids,
                "swapped_to": h.champion_after,
            }
            for h in log.holds
        ],
        interrupted=log.interrupted,
        **records,
    )


def _windows(served: list[ServedRow], window: int) -> list[dict[str, Any]]:
    """Each ``window`` rows in serving order: their domains, serving versions and scores."""
    windows = []
    for start in range(0, len(served), window):
        rows = served[start : start + window]
        windows.append(
            {
                "start": start,
                "end": start + len(rows),
                "domains": list(dict.fromkeys(r.domain for r in rows)),
                "versions": sorted({r.version for r in rows}),
                "accuracy": _accuracy(rows),
                "macro_f1": _macro_f1(rows),
            }
        )
    return windows


def _domains(served: list[ServedRow]) -> dict[str, dict[str, Any]]:
    """Per domain (in order of appearance): where it sits on the stream, its scores, and its accuracy
    per serving version."""
    by_domain: dict[str, list[ServedRow]] = defaultdict(list)
    for r in served:
        by_domain[str(r.domain)].append(r)
    domains = {}
    for name, rows in by_domain.items():
        versions: dict[int, list[ServedRow]] = defaultdict(list)
        for r in rows:
            versions[r.version].append(r)
        domains[name] = {
            "n": len(rows),
            "first_row": rows[0].index,
            "last_row": rows[-1].index,
            "accuracy": _accuracy(rows),
            "macro_f1": _macro_f1(rows),
            "by_version": {v: {"n": len(vr), "accuracy": _accuracy(vr)} for v, vr in versions.items()},
        }
    return domains


def _records(settings: Settings, log: ReplayLog) -> dict[str, Any]:
    """The registry's drift checks, runs and decisions, oldest first, each at the row it came after; the
    training rows of the versions the runs made; the checks' estimates against the served accuracy."""
    times = [r.at for r in log.served]

    def row_at(when: datetime) -> int:
        return _row_at(times, log.started_at, when)

    registry = Registry.open(settings)
    try:
        name = settings.model_name
        checks = [
            _check(c, row_at(c.created_at)) for c in reversed(registry.list_drift_checks(name, limit=10_000))
        ]
        runs = [
            _run(r, row_at(r.created_at))
            for r in reversed(registry.list_runs(name, limit=10_000))
            if r.trigger.value != "bootstrap"
        ]
        decisions = [
            _decision(d, row_at(d.created_at)) for d in reversed(registry.list_decisions(name, limit=10_000))
        ]
        made = {r["candidate_version"] for r in runs if r["candidate_version"]}
        labels_used = sum(
            int((v.metrics.get("train") or {}).get("n", 0))
            for v in registry.list_versions(name)
            if v.version in made
        )
        backtest = _backtest(log.served, checks, registry, name)
    finally:
        registry.close()
    records = {"checks": checks, "runs": runs, "decisions": decisions, "labels_used": labels_used}
    return {**records, "estimates_backtest": backtest}


def _check(c: DriftCheck, row: int) -> dict[str, Any]:
    return {
        "id": c.id,
        "row": row,
        "model_version": c.model_version,
        "drifted": c.drifted,
        "signals": [k for k, v in c.scores.items() if isinstance(v, dict) and v.get("drifted")],
        "embedding_auc": (c.scores.get("embedding_drift") or {}).get("score"),
        "embedding_threshold": (c.scores.get("embedding_drift") or {}).get("threshold"),
        "decision": c.decision,
        "reason": c.reason,
        "report": c.report_uri,
        "at": c.created_at.isoformat(),
        "n_current": c.n_current,
        "estimates": c.scores.get("accuracy_estimates"),
    }


def _run(r: RetrainRun, row: int) -> dict[str, Any]:
    return {
        "id": r.id,
        "trigger": r.trigger.value,
        "status": r.status.value,
        "row": row,
        "drift_check_id": r.drift_check_id,
        "candidate_version": r.candidate_version,
        "seconds": (r.finished_at - r.started_at).total_seconds() if r.finished_at and r.started_at else None,
        "error": r.error,
    }


def _decision(d: PromotionDecision, row: int) -> dict[str, Any]:
    return {
        "id": d.id,
        "run_id": d.run_id,
        "candidate_version": d.candidate_version,
        "incumbent_version": d.incumbent_version,
        "status": d.status.value,
        "reasons": list(d.reasons),
        "report": d.report_uri,
        "row": row,
        "at": d.created_at.isoformat(),
    }


def _counts(
    checks: list[dict[str, Any]], runs: list[dict[str, Any]], decisions: list[dict[str, Any]]
) -> dict[str, int]:
    return {
        "checks": len(checks),
        "drift_alarms": sum(c["drifted"] for c in checks),
        "runs": len(runs),
        "runs_label_growth": sum(r["trigger"] == "label_growth" for r in runs),
        "promotions": sum(d["status"] in ("promoted", "approved") for d in decisions),
        "rejections": sum(d["status"] in ("rejected", "refused") for d in decisions),
        "runs_skipped": sum(r["status"] == "skipped" for r in runs),
        "runs_failed": sum(r["status"] == "failed" for r in runs),
    }


def _backtest(
    served: Sequence[ServedRow], checks: list[dict[str, Any]], registry: Registry, name: str
) -> dict[str, Any]:
    """Each check's estimates against the realized accuracy of its window: the last ``n_current`` rows
    its version served before the check, every one of them scored (the replay knows every label, sent
    or not), and also only the rows that were labeled when a random strategy chose them."""
    from monitor.estimates import backtest

    per_check = []
    for c in checks:
        if not c.get("estimates"):
            continue
        before = [r for r in served[: c["row"]] if r.version == c["model_version"]][-c["n_current"] :]
        if not before:
            continue
        labeled = [r for r in before if r.labeled]
        per_check.append(
            {
                "check_id": c["id"],
                "row": c["row"],
                "version": c["model_version"],
                "rows": len(before),
                "realized": _accuracy(before),
                "realized_labeled": _accuracy(labeled) if labeled else None,
                "labeled": len(labeled),
                "estimates": c["estimates"],
            }
        )
    reference = {}
    for version in {c["version"] for c in per_check}:
        accuracy = registry.get_version(name, version).metrics.get("accuracy")
        if isinstance(accuracy, int | float):
            reference[version] = float(accuracy)
    return {**backtest(per_check, reference), "per_check": per_check}


def score_promotions(
    settings: Settings, texts: Sequence[str], summary: StreamSummary, log: ReplayLog
) -> list[dict[str, Any]]:
    """Did each promotion help? On the rows the promoted version served, its accuracy next to what the
    version it replaced scores on the same rows (predicted here, offline). Neither model had those rows'
    labels when it was trained: they were served after the promotion."""
    from registry.artifacts import artifact_store
    from retrain.evaluate import forward_outputs
    from runtime.modelio import load_version

    artifacts = artifact_store(settings)
    registry = Registry.open(settings)
    checks = []
    try:
        for decision in summary.promotions:
            rows = [r for r in log.served if r.version == decision["candidate_version"]]
            if not rows:
                continue
            replaced = load_version(
                artifacts, registry.get_version(settings.model_name, decision["incumbent_version"])
            )
            logits, _ = forward_outputs(
                replaced.model,
                replaced.tokenizer,
                [texts[r.index] for r in rows],
                max_length=replaced.max_length,
                progress=False,
            )
            old = [replaced.labels[i] for i in logits.argmax(1)]
            checks.append(
                {
                    "promoted": decision["candidate_version"],
                    "replaced": decision["incumbent_version"],
                    "rows": len(rows),
                    "promoted_accuracy": _accuracy(rows),
                    "replaced_accuracy": sum(p == r.label for p, r in zip(old, rows, strict=True))
                    / len(rows),
                }
            )
    finally:
        registry.close()
    summary.promotion_checks = checks
    return checks


def _report_link(settings: Settings, uri: str, out_dir: Path) -> dict[str, str]:
    """Where the index links a report: relative to ``out_dir`` when it is on disk; else (an object-store
    artifact root) no ``href``, the page names it and the control API serves it."""
    target = Path(settings.artifact_root) / "reports" / uri
    if not target.exists():
        return {"name": f"reports/{uri}"}
    return {"href": os.path.relpath(target, out_dir), "name": Path(uri).name}


def write_index(summary: StreamSummary, settings: Settings, out_dir: Path) -> Path:
    """One page linking the timeline and every drift and promotion report (``replay_index.html.j2``)."""
    from common.templating import environment

    reports = [r["report"] for r in (*summary.checks, *summary.decisions) if r["report"]]
    page = (
        environment("driftline")
        .get_template("replay_index.html.j2")
        .render(
            summary=summary,
            console=ConsoleHint.of(settings, decisions=bool(summary.decisions)),
            links={uri: _report_link(settings, uri, out_dir) for uri in reports},
        )
    )
    path = out_dir / "index.html"
    path.write_text(page)
    return path
