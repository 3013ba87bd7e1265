"""The recipe search in real jobs: `driftline bootstrap` with 3 trials on MiniLM cut to one layer, a run
whose search starts from the champion's recipe, and the honesty of the selection (the held-out rows the
gate judges on cannot change which trial is chosen)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from contracts import AssemblyConfig, TrainConfig
from contracts.search import SearchConfig, SearchSpace
from driftline.cli import main
from registry.entities import CHAMPION, RunTrigger
from registry.store import Registry
from retrain.assemble import RunData
from retrain.challenger import RunConfig, warm_start_recipe
from retrain.run import execute_run
from retrain.search_records import recipe_of
from tests.integration.test_retrain_run import finance_rows, open_home
from tests.models import copy_home
from tests.textgen import topic_rows

TINY = ["--num-hidden-layers", "1", "--max-length", "32", "--learning-rate", "5e-4", "--epochs", "2"]
SMALL_SPACE = SearchSpace(
    learning_rate=(2e-4, 1e-3),
    epochs=(1, 3),
    freeze_layers=(0,),
    head_warmup_epochs=(0, 1),
    augment_strength=(0.0, 0.5),
)


def test_bootstrap_with_three_trials_keeps_the_best_and_records_every_trial(tmp_path: Path) -> None:
    data = tmp_path / "topics.csv"
    rows = pd.DataFrame(topic_rows(600, seed=5))
    rows = pd.concat([rows[rows["label"] == "food"], rows[rows["label"] != "food"].iloc[::3]])  # skewed
    rows.to_csv(data, index=False)
    space = SMALL_SPACE.model_dump_json()
    result = CliRunner().invoke(
        main,
        ["bootstrap", "--data", str(data), "--text-col", "text", "--label-col", "label", *TINY,
         "--search", "--search-trials", "3", "--search-space", space, "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    search = out["search"]
    assert search["searched"] and search["n_trials"] == 3, search["note"]
    trials = sorted(search["trials"], key=lambda t: t["number"])
    assert trials[0]["origin"] == "warm start" and trials[0]["params"]["learning_rate"] == 5e-4
    assert trials[1]["origin"] == "centre" and trials[1]["params"]["class_weighting"] == "balanced"
    done = [t for t in trials if t["state"] == "complete"]
    assert search["chosen_val_macro_f1"] == pytest.approx(max(t["value"] for t in done), abs=1e-3)
    assert all(t["curve"] and t["seconds"] > 0 for t in trials)
    version = out["version"]
    assert version["config"]["recipe_from"] == "search"
    assert recipe_of(version["config"]) == search["chosen_params"]
    assert version["metrics"]["train"]["search"]["n_trials"] == 3
    # the chosen recipe trained with augmentation records what it added
    if search["chosen_params"]["augment_strength"]:
        assert version["metrics"]["train"]["augmentation"]["rows_added"] > 0


def test_a_bad_search_space_is_refused_before_anything_trains(tmp_path: Path) -> None:
    data = tmp_path / "topics.csv"
    pd.DataFrame(topic_rows(60, seed=5)).to_csv(data, index=False)
    result = CliRunner().invoke(
        main,
        ["bootstrap", "--data", str(data), "--text-col", "text", "--label-col", "label", *TINY,
         "--search-space", '{"learning_rate": [1e-3, 1e-5], "droput": [0.1]}'],
    )
    assert result.exit_code != 0
    assert "learning_rate" in result.output and "empty range" in result.output and "droput" in result.output
    assert Registry.open().list_models() == []


def _run_with_search(home: Path, config: RunConfig) -> tuple[object, list[set[str]], list[set[str]]]:
    """Queue and execute one run on ``home`` with 240 new labels; the rows its search and its gate saw."""
    import retrain.challenger as challenger_module

    registry, artifacts = open_home(home)
    champion = registry.get_version_by_alias("sentiment", CHAMPION)
    registry.add_labels(finance_rows(240), allowed_labels=champion.labels)
    seen: list[set[str]] = []
    judged: list[set[str]] = []
    real_search, real_compare = challenger_module.search, challenger_module.compare_models

    def spy_search(train: pd.DataFrame, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(set(train["text"]))
        return real_search(train, *args, **kwargs)

    def spy_compare(trained, loaded, data: RunData, *args, **kwargs):  # type: ignore[no-untyped-def]
        judged.append(set(data.recent_heldout["text"]) | set(data.old_heldout["text"]))
        return real_compare(trained, loaded, data, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(challenger_module, "search", spy_search)
        mp.setattr(challenger_module, "compare_models", spy_compare)
        outcome = execute_run(registry.create_run("sentiment", trigger=RunTrigger.MANUAL, config={}).id, registry, artifacts, config)
    return outcome, seen, judged


def _corrupted(assemble, labels: list[str]):  # type: ignore[no-untyped-def]
    """``assemble`` whose held-out rows (recent and the champion's) each carry the next label of ``labels``."""

    def wrong(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(label=[labels[(labels.index(v) + 1) % len(labels)] for v in frame["label"]])

    def corrupting(*args, **kwargs):  # type: ignore[no-untyped-def]
        data = assemble(*args, **kwargs)
        return dataclasses.replace(data, recent_heldout=wrong(data.recent_heldout), old_heldout=wrong(data.old_heldout))

    return corrupting


def test_a_run_searches_from_the_champions_recipe_and_the_heldout_rows_cannot_sway_it(
    served_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrain.run as run_module

    twin = copy_home(served_home, tmp_path / "twin")
    config = RunConfig(
        train=TrainConfig(epochs=2, learning_rate=5e-4, seed=3),
        assembly=AssemblyConfig(min_new_labels=100, replay_ratio=0.5),
        search=SearchConfig(max_trials=2, space=SMALL_SPACE, min_budget_s=900),  # no budget cut: same trials
    )
    registry, _ = open_home(served_home)
    champion = registry.get_version_by_alias("sentiment", CHAMPION)
    assert warm_start_recipe(champion, config.train) == recipe_of(config.train)  # v1 was not searched

    outcome, seen, judged = _run_with_search(served_home, config)
    assert outcome.version is not None, outcome.reason
    recorded = outcome.version.metrics["train"]["search"]
    first_trial = min(recorded["trials"], key=lambda t: t["number"])
    assert first_trial["origin"] == "warm start" and first_trial["params"] == recipe_of(config.train)
    assert seen[0] and judged[0] and seen[0].isdisjoint(judged[0])  # the search never saw a held-out row
    assert outcome.version.config["recipe_from"] == "search"
    assert any("cost within the budget" in r for r in outcome.gate.reasons)
    _, artifacts = open_home(served_home)
    report = artifacts.read_report(outcome.decision.report_uri).decode()
    assert "Recipe search" in report and "(chosen)" in report and "<td>warm start</td>" in report
    from tests.integration.test_console import console_client

    run_page = console_client(*open_home(served_home)).get(f"/runs/{outcome.version.training_run_id}")
    assert run_page.status_code == 200 and "Recipe search" in run_page.text and "(chosen)" in run_page.text
    listed = CliRunner().invoke(main, ["runs"], catch_exceptions=False).output
    assert "search: 2 trials" in listed and "recipe: lr " in listed

    monkeypatch.setattr(run_module, "assemble", _corrupted(run_module.assemble, list(champion.labels)))
    corrupted, _, _ = _run_with_search(twin, config)
    assert corrupted.version is not None
    again = corrupted.version.metrics["train"]["search"]
    assert again["chosen"] == recorded["chosen"] and again["chosen_params"] == recorded["chosen_params"]
    assert corrupted.gate.recent.challenger_macro_f1 < outcome.gate.recent.challenger_macro_f1  # the gate saw it

    # the next run of the promoted (or registered) version starts from its searched recipe
    assert warm_start_recipe(outcome.version, config.train) == recorded["chosen_params"]
