"""What a recipe search leaves for a reviewer: each trial as a record, the job's result, and the words
``driftline bootstrap`` and ``driftline runs`` print. The trials are read back from the study's storage,
so the trials of every worker process of one search are in one list."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts.search import SEARCHED
from contracts.train import TrainConfig
from retrain.train import TrainResult

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"


@dataclass(frozen=True)
class Trial:
    """One trained candidate recipe, as a reviewer reads it."""

    number: int
    params: dict[str, Any]
    state: str  # COMPLETE, PRUNED or FAILED
    value: float | None  # the best validation macro-F1 it reached
    curve: list[float]  # validation macro-F1 after each evaluation (once per epoch)
    seconds: float
    origin: str  # "warm start", "centre" or "sampler"
    note: str = ""
    process: str = ""  # host:pid of the worker that trained it

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SearchResult:
    """The chosen trial's model and recipe, and every trial."""

    trained: TrainResult
    cfg: TrainConfig  # the chosen recipe
    trials: list[Trial]
    chosen: int  # the chosen trial's number
    seconds: float
    budget_s: float | None
    storage: str  # where the study lives, in words (no secrets)
    note: str = ""  # why the search did not run, when it did not
    searched: bool = True  # False: the recipe was not chosen by comparing trials (see ``note``)

    def summary(self) -> dict[str, Any]:
        """What a version records (``metrics["search"]``): the chosen trial and every trial, best first."""
        ordered = sorted(self.trials, key=lambda t: (t.value is None, -(t.value or 0.0), t.number))
        warm = next((t for t in self.trials if t.origin == "warm start"), None)
        return {
            "trials": [t.to_dict() for t in ordered],
            "chosen": self.chosen,
            "chosen_params": recipe_of(self.cfg),
            "chosen_val_macro_f1": self.trained.best_val_macro_f1,
            "warm_start_val_macro_f1": warm.value if warm else None,
            "n_trials": len(self.trials),
            "n_pruned": sum(t.state == PRUNED for t in self.trials),
            "seconds": round(self.seconds, 1),
            "budget_s": None if self.budget_s is None else round(self.budget_s, 1),
            "storage": self.storage,
            "searched": self.searched,
            "note": self.note,
        }


def recipe_of(cfg: TrainConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The searched values of a training config (a TrainConfig or a version's recorded config)."""
    values = cfg.to_dict() if isinstance(cfg, TrainConfig) else dict(cfg)
    defaults = TrainConfig().to_dict()
    return {name: values.get(name, defaults[name]) for name in SEARCHED}


def trials_of(study: Any) -> list[Trial]:
    """Every finished trial of ``study`` as a :class:`Trial` (a trial still running elsewhere is left out)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        if "state" not in attrs:
            continue
        curve = [float(v) for v in attrs.get("curve", [])]
        value = t.value if attrs["state"] == COMPLETE and t.value is not None else (max(curve) if curve else None)
        out.append(
            Trial(
                number=t.number,
                params=dict(attrs["recipe"]),
                state=attrs["state"],
                value=None if value is None else round(float(value), 4),
                curve=curve,
                seconds=float(attrs.get("seconds", 0.0)),
                origin=attrs.get("origin", "sampler"),
                note=attrs.get("note", ""),
                process=attrs.get("process", ""),
            )
        )
    return out


def recipe_words(params: Mapping[str, Any]) -> str:
    """A recipe in a few words: ``lr 4.5e-05, 6 epochs, balanced, decay 0.05, warm-up 0.10, ...``."""
    words = [
        f"lr {float(params.get('learning_rate', 0)):.1e}",
        f"{float(params.get('epochs', 0)):g} epochs",
        str(params.get("class_weighting", "-")),
        f"decay {float(params.get('weight_decay', 0)):.2f}",
        f"warm-up {float(params.get('warmup_ratio', 0)):.2f}",
    ]
    if params.get("freeze_layers"):
        words.append(f"{params['freeze_layers']} frozen layers")
    if params.get("head_warmup_epochs"):
        words.append(f"head-only {params['head_warmup_epochs']} epoch(s)")
    if params.get("augment_strength"):
        words.append(f"augment {float(params['augment_strength']):.2f}")
    return ", ".join(words)


def describe(summary: Mapping[str, Any]) -> list[str]:
    """A search's summary in a few lines, for ``driftline bootstrap`` and ``driftline runs``."""
    if not summary.get("searched", True) or not summary.get("trials"):
        return [f"search: {summary.get('note') or 'off'}"]
    trials = summary["trials"]
    chosen = next((t for t in trials if t["number"] == summary["chosen"]), trials[0])

    def score(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"search: {len(trials)} trials ({summary.get('n_pruned', 0)} pruned) in {summary.get('seconds', 0):.0f} s; "
        f"chose trial {chosen['number']} ({chosen['origin']}): validation macro-F1 "
        f"{score(summary.get('chosen_val_macro_f1'))}, warm start {score(summary.get('warm_start_val_macro_f1'))}",
        f"  recipe: {recipe_words(chosen['params'])}",
    ]
    if summary.get("note"):
        lines.append(f"  {summary['note']}")
    return lines
