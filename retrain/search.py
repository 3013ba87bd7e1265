"""The recipe search inside a training job: several candidate recipes trained on the same rows, the one
with the best validation macro-F1 kept, within a budget.

What it does, in order:

1. **Validation rows only.** Trials are compared on the validation rows that :func:`retrain.train.fine_tune`
   carves out of the training rows it is given (seeded: every trial sees the same ones). The job's
   held-out rows (the gate's) are never passed here, so the gate stays an unbiased test of the chosen
   model. Without enough rows for a validation split there is nothing to compare on: the job trains its
   recipe once, and says so.
2. **Warm start.** Trial 0 is the recipe the job would train without a search: for a run, the champion's
   own chosen recipe; for ``bootstrap``, the given configuration. The search can therefore only find a
   better validation score than the job without it. Trial 1 is the space's centre, adapted to the
   data's balance (balanced class weights and augmentation where the classes are skewed); then Optuna's
   TPE sampler explores. A run searches near its warm start (:meth:`SearchSpace.around`); ``bootstrap``
   searches the whole space.
3. **Budget.** At most ``max_trials`` trials and a wall-clock budget: ``budget_factor`` times the warm
   start's seconds (at least ``min_budget_s``, at most ``budget_s``). A trial is reported to the pruner
   after each validation (once per epoch); a pruned trial (below the median of the earlier trials at
   the same epoch, from the second validation on) or one that would run past the budget stops at once.
4. **Records.** Every trial (parameters, validation macro-F1 per epoch, state, seconds) is returned as a
   :class:`Trial`, and the study lives in Optuna's storage: a SQLite file in the job's working folder
   by default (a killed run's retry resumes it), or a shared storage URL (PostgreSQL with a schema of
   its own: Optuna brings its own ``alembic_version`` table, which must not meet the registry's).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.search import SEARCHED, SearchConfig, SearchSpace
from contracts.train import TrainConfig
from registry.errors import InvalidInputError
from retrain.search_records import COMPLETE, FAILED, PRUNED, SearchResult, Trial, recipe_of, trials_of
from retrain.search_workers import WorkerPlan, plan_for, start_workers, study_storage, wait_for
from retrain.train import MIN_VALIDATION_ROWS, TrainResult, fine_tune

logger = logging.getLogger(__name__)

Trainer = Callable[..., TrainResult]
"""``fine_tune``'s signature: ``(train, labels, cfg, *, base_path, progress, callbacks) -> TrainResult``."""


def with_recipe(cfg: TrainConfig, recipe: Mapping[str, Any]) -> TrainConfig:
    """``cfg`` with the searched values of ``recipe``; "auto" weighting resolves where ``cfg`` trains."""
    values = {name: recipe[name] for name in SEARCHED if name in recipe}
    if "epochs" in values:
        values["epochs"] = float(values["epochs"])
    return dataclasses.replace(cfg, **values)


def skewed(labels: Sequence[str], ratio: float) -> bool:
    """Whether the largest class has at least ``ratio`` times the rows of the smallest."""
    counts = pd.Series(list(labels)).value_counts()
    return bool(len(counts) > 1 and counts.max() / counts.min() >= ratio)


def centre(space: SearchSpace, *, imbalanced: bool) -> dict[str, Any]:
    """The space's centre: the geometric middle of the learning rate, the most epochs (early stopping
    and the pruner end them when they stop helping), the middle of the continuous ranges; for skewed
    classes the strongest class weighting and augmentation on offer, else the mildest."""
    low, high = space.learning_rate
    order = ("balanced", "sqrt", "none") if imbalanced else ("none", "sqrt", "balanced")
    return {
        "learning_rate": float(math.sqrt(low * high)),
        "epochs": space.epochs[1],
        "class_weighting": next(w for w in order if w in space.class_weighting),
        "weight_decay": sum(space.weight_decay) / 2,
        "warmup_ratio": sum(space.warmup_ratio) / 2,
        "freeze_layers": min(space.freeze_layers),
        "head_warmup_epochs": max(space.head_warmup_epochs),
        "augment_strength": max(space.augment_strength) if imbalanced else min(space.augment_strength),
    }


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """A recipe from Optuna's sampler over ``space`` (a one-value range or choice is fixed)."""

    def floats(name: str, bounds: tuple[float, float], log: bool = False) -> float:
        low, high = bounds
        return float(low) if low == high else float(trial.suggest_float(name, low, high, log=log))

    def choice(name: str, values: tuple[Any, ...]) -> Any:
        return values[0] if len(values) == 1 else trial.suggest_categorical(name, list(values))

    low_e, high_e = space.epochs
    return {
        "learning_rate": floats("learning_rate", space.learning_rate, log=True),
        "epochs": low_e if low_e == high_e else int(trial.suggest_int("epochs", low_e, high_e)),
        "class_weighting": choice("class_weighting", space.class_weighting),
        "weight_decay": floats("weight_decay", space.weight_decay),
        "warmup_ratio": floats("warmup_ratio", space.warmup_ratio),
        "freeze_layers": choice("freeze_layers", space.freeze_layers),
        "head_warmup_epochs": choice("head_warmup_epochs", space.head_warmup_epochs),
        "augment_strength": choice("augment_strength", space.augment_strength),
    }


class _Budget:
    """The search's deadline, in wall-clock time (workers in other processes share it): unknown until
    the warm start has run, then fixed."""

    def __init__(self, config: SearchConfig, started: float) -> None:
        self.config, self.started = config, started
        self.deadline: float | None = None if config.budget_s is None else started + config.budget_s
        self.sized = False  # from the warm start's seconds

    def set_from_warm_start(self, seconds: float) -> None:
        self.sized = True
        budget = max(self.config.min_budget_s, self.config.budget_factor * seconds)
        if self.config.budget_s is not None:
            budget = min(budget, self.config.budget_s)
        self.deadline = self.started + budget

    @property
    def seconds(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.started

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.time()

    def sync(self, study: Any) -> None:
        """Size the budget from the study's warm start, when another process ran it."""
        if self.sized:
            return
        for t in study.get_trials(deepcopy=False):
            attrs = t.user_attrs
            if attrs.get("origin") == "warm start" and attrs.get("state") in (COMPLETE, FAILED):
                self.set_from_warm_start(float(attrs.get("seconds", 0.0)))
                return


def _reporter(trial: Any, budget: _Budget, curve: list[float], stop: dict[str, str]) -> Any:
    """A Trainer callback: each validation's macro-F1 to the pruner; stop when pruned or out of time."""
    from transformers import TrainerCallback

    class Report(TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any) -> None:
            value = (metrics or {}).get("eval_macro_f1")
            if value is None:
                return
            curve.append(round(float(value), 4))
            trial.report(float(value), len(curve) - 1)
            if trial.should_prune():
                stop["why"] = PRUNED
                control.should_training_stop = True
            elif budget.left() <= 0:
                stop["why"] = "budget"
                control.should_training_stop = True

    return Report()


@dataclass
class _Study:
    """What the objective needs across trials: the job's inputs, the budget and the best model so far."""

    train: pd.DataFrame
    labels: Sequence[str]
    base: TrainConfig
    base_path: Path
    budget: _Budget
    trainer: Trainer
    best: TrainResult | None = None
    best_number: int = -1
    best_cfg: TrainConfig | None = None

    def objective(self, trial: Any, space: SearchSpace) -> float:
        import optuna

        origin = trial.user_attrs.get("origin", "sampler")
        recipe = dict(trial.user_attrs["recipe"]) if "recipe" in trial.user_attrs else suggest(trial, space)
        cfg = with_recipe(self.base, recipe)
        self.budget.sync(trial.study)
        curve: list[float] = []
        stop: dict[str, str] = {}
        started = time.monotonic()
        try:
            result = self.trainer(
                self.train,
                self.labels,
                cfg,
                base_path=self.base_path,
                progress=False,
                callbacks=[_reporter(trial, self.budget, curve, stop)],
            )
        # one bad recipe (e.g. more frozen layers than the model has) is one failed trial, not a failed job
        except Exception as exc:
            if origin == "warm start":
                self.budget.set_from_warm_start(time.monotonic() - started)
            _record(trial, recipe, origin, curve, started, FAILED, f"{type(exc).__name__}: {exc}")
            raise optuna.TrialPruned(f"failed: {type(exc).__name__}: {exc}") from exc
        seconds = time.monotonic() - started
        if origin == "warm start":
            self.budget.set_from_warm_start(seconds)
        value = result.best_val_macro_f1 if result.best_val_macro_f1 is not None else -1.0
        pruned = stop.get("why") == PRUNED
        note = "stopped by the budget" if stop.get("why") == "budget" else ""
        _record(trial, recipe, origin, curve, started, PRUNED if pruned else COMPLETE, note)
        if pruned:
            raise optuna.TrialPruned(f"validation macro-F1 {curve[-1] if curve else '-'} below the median")
        if self.best is None or value > (self.best.best_val_macro_f1 or -1.0):
            self.best, self.best_number, self.best_cfg = result, trial.number, cfg
        return value


def _record(
    trial: Any,
    recipe: Mapping[str, Any],
    origin: str,
    curve: list[float],
    started: float,
    state: str,
    note: str,
) -> None:
    """Keep what a reviewer reads of a trial with it in the study (every worker's trials in one place)."""
    seconds = round(time.monotonic() - started, 2)
    attrs = {"recipe": dict(recipe), "origin": origin, "curve": curve, "seconds": seconds, "state": state}
    attrs["process"] = f"{socket.gethostname()}:{os.getpid()}"  # which worker trained it
    for key, value in {**attrs, "note": note}.items():
        trial.set_user_attr(key, value)
    logger.info(
        "search trial %d (%s): %s, val macro-F1 %s, %.1f s %s",
        trial.number,
        origin,
        state,
        curve,
        seconds,
        note,
    )


def search(
    train: pd.DataFrame,
    labels: Sequence[str],
    base: TrainConfig,
    *,
    base_path: Path,
    config: SearchConfig,
    warm_start: Mapping[str, Any] | None = None,
    work_dir: Path,
    study_name: str,
    storage: str | None = None,
    workers: int = 1,
    trainer: Trainer = fine_tune,
) -> SearchResult:
    """Search the recipe of a job that would train ``base`` on ``train``; see the module docstring.

    ``warm_start`` is the champion's recipe (a run: the search stays near it), or None (``bootstrap``:
    ``base`` is the warm start and the whole space is searched). ``train`` must hold the training rows
    only: the validation rows the trials are compared on are carved out of it. ``storage`` is a shared
    Optuna storage URL (``DRIFTLINE_SEARCH_STORAGE``); by default the study is a SQLite file in
    ``work_dir``. With ``workers`` > 1 (a shared ``storage`` needed) that many processes in all train
    trials of the study (:mod:`retrain.search_workers`)."""
    if workers > 1 and not storage:
        raise InvalidInputError("search workers need a shared storage: set DRIFTLINE_SEARCH_STORAGE")
    started = time.monotonic()
    warm = recipe_of(base) if warm_start is None else {**recipe_of(base), **recipe_of(warm_start)}
    n_validation = round(len(train) * base.validation_fraction)
    if n_validation < MIN_VALIDATION_ROWS:
        note = (
            f"no search: {len(train)} training rows give {n_validation} validation rows, fewer than "
            f"{MIN_VALIDATION_ROWS} to compare trials on; the warm-start recipe trained once"
        )
        return _single(train, labels, with_recipe(base, warm), base_path, trainer, started, note)
    space = config.space if warm_start is None else config.space.around(warm)
    storage, where = study_storage(storage, work_dir)
    study = _open_study(storage, study_name, config)
    _enqueue(study, warm, centre(space, imbalanced=skewed(train["label"], base.imbalance_ratio)))
    budget = _Budget(config, float(study.user_attrs.get("started_at", time.time())))
    state = _Study(train, labels, base, base_path, budget, trainer)
    extra = _start_extra_workers(
        workers - 1, storage, study_name, train, labels, base, base_path, config, space, work_dir
    )
    optimize(study, state, space, config)
    if extra:
        left = state.budget.left()
        wait_for(extra, timeout_s=None if math.isinf(left) else max(60.0, left) + 600.0)
    trials = trials_of(study)
    best = _best_trial(trials)
    if state.best is None or state.best_cfg is None or _won_elsewhere(state, best):
        return _retrain_best(train, labels, base, warm, base_path, trainer, started, trials)
    return SearchResult(
        trained=state.best,
        cfg=state.best_cfg,
        trials=trials,
        chosen=state.best_number,
        seconds=time.monotonic() - started,
        budget_s=state.budget.seconds,
        storage=where,
    )


def _start_extra_workers(
    n: int,
    storage: str,
    study_name: str,
    train: pd.DataFrame,
    labels: Sequence[str],
    base: TrainConfig,
    base_path: Path,
    config: SearchConfig,
    space: SearchSpace,
    work_dir: Path,
) -> list[Any]:
    """``n`` more worker processes on the study (none when ``n`` < 1), given the plan they read."""
    if n < 1:
        return []
    plan = plan_for(
        work_dir,
        storage=storage,
        study_name=study_name,
        train=train,
        labels=list(labels),
        base=base.to_dict(),
        base_path=base_path,
        search=config.model_copy(update={"space": space}).model_dump(),
    )
    return start_workers(plan, n)


def optimize(study: Any, state: _Study, space: SearchSpace, config: SearchConfig) -> None:
    """Train trials of ``study`` until it holds ``config.max_trials`` (from every process) or time is up."""
    import optuna

    # trials trained or training, by any process; not the enqueued ones still waiting (the centre)
    counted = tuple(getattr(optuna.trial.TrialState, s) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"))

    study.optimize(
        lambda trial: state.objective(trial, space),
        n_trials=config.max_trials,
        callbacks=[
            _stop_when_out_of_time(state.budget),
            optuna.study.MaxTrialsCallback(config.max_trials, states=counted),
        ],
        catch=(),
    )


def work(plan: WorkerPlan) -> int:
    """A worker process's share of a search (``python -m retrain search-worker``): trials until the
    study is full or the budget is spent; returns how many this process trained."""
    config = SearchConfig.model_validate(plan.search)
    study = _open_study(plan.storage, plan.study_name, config)
    budget = _Budget(config, float(study.user_attrs.get("started_at", time.time())))
    state = _Study(
        plan.rows_frame(),
        plan.labels,
        TrainConfig.from_dict(plan.base),
        Path(plan.base_path),
        budget,
        fine_tune,
    )
    before = len(study.trials)
    optimize(study, state, config.space, config)
    return max(0, len(study.trials) - before)


def _won_elsewhere(state: _Study, best: Trial | None) -> bool:
    """Whether this process holds no model of the best trial (it trained none, or another worker's,
    or an earlier attempt's, scored higher)."""
    if state.best is None:
        return True
    local = round(state.best.best_val_macro_f1 or -1.0, 4)  # as the records round it
    return best is not None and best.number != state.best_number and (best.value or 0.0) > local


def _best_trial(trials: Sequence[Trial]) -> Trial | None:
    done = [t for t in trials if t.state == COMPLETE and t.value is not None]
    return max(done, key=lambda t: (t.value or 0.0, -t.number)) if done else None


def _retrain_best(
    train: pd.DataFrame,
    labels: Sequence[str],
    base: TrainConfig,
    warm: Mapping[str, Any],
    base_path: Path,
    trainer: Trainer,
    started: float,
    trials: list[Trial],
) -> SearchResult:
    """No model of this process won: the best finished trial's recipe (an earlier attempt's, another
    worker's) is trained again; with none, the warm start's."""
    best = _best_trial(trials)
    if best is None:
        note = "every trial was pruned or failed: the warm-start recipe trained once"
        return _single(train, labels, with_recipe(base, warm), base_path, trainer, started, note, trials)
    note = f"trial {best.number}'s recipe (trained by another worker or an earlier attempt) trained again"
    result = _single(train, labels, with_recipe(base, best.params), base_path, trainer, started, note, trials)
    return dataclasses.replace(result, trials=trials, chosen=best.number, searched=True)


def _single(
    train: pd.DataFrame,
    labels: Sequence[str],
    cfg: TrainConfig,
    base_path: Path,
    trainer: Trainer,
    started: float,
    note: str,
    trials: Sequence[Trial] = (),
) -> SearchResult:
    """The job without a search: ``cfg`` trained once (recorded as the only trial when none ran)."""
    logger.info("%s", note)
    t0 = time.monotonic()
    result = trainer(train, labels, cfg, base_path=base_path, progress=False, callbacks=[])
    value = result.best_val_macro_f1
    number = len(trials)
    single = Trial(number, recipe_of(cfg), COMPLETE, value, [], round(time.monotonic() - t0, 2), "warm start")
    return SearchResult(
        trained=result,
        cfg=cfg,
        trials=[*trials, single],
        chosen=number,
        seconds=time.monotonic() - started,
        budget_s=None,
        storage="none",
        note=note,
        searched=False,
    )


def _open_study(storage: str, name: str, config: SearchConfig) -> Any:
    """The study ``name`` in ``storage`` (resumed when it exists: a retried run keeps its trials)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Never at the first validation: a slow starter (a head-only warm-up, a small learning rate) is not
    # yet a weak recipe.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=3)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )


def _enqueue(study: Any, warm: Mapping[str, Any], centre_recipe: Mapping[str, Any]) -> None:
    """Trial 0: the warm start; trial 1: the space's centre (each skipped if already enqueued or run)."""
    if len(study.trials):
        return  # a resumed study keeps what it had
    study.set_user_attr("started_at", time.time())
    study.enqueue_trial({}, user_attrs={"origin": "warm start", "recipe": dict(warm)})
    if dict(centre_recipe) != dict(warm):
        study.enqueue_trial({}, user_attrs={"origin": "centre", "recipe": dict(centre_recipe)})


def _stop_when_out_of_time(budget: _Budget) -> Callable[[Any, Any], None]:
    def check(study: Any, _trial: Any) -> None:
        if budget.left() <= 0:
            study.stop()

    return check
