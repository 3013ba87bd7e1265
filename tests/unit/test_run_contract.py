"""The run contract (contracts.RunSpec): unknown keys refused at every level, naming the key; a run's
record parses back to the same spec; the run reads it as the old untyped dict was read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts import AssemblyConfig, GateConfig, RunSpec, parse_run_config
from registry.errors import InvalidInputError
from retrain.run import config_from_run


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"gate": {"min_improvment": 1}}, ("gate", "min_improvment")),
        ({"assembly": {"min_new_label": 10}}, ("assembly", "min_new_label")),
        ({"train": {"epoch": 2}}, ("train", "epoch")),
        ({"modes": "manual"}, ("modes",)),
    ],
)
def test_an_unknown_key_is_refused_at_every_level_by_name(values: dict, where: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        RunSpec.model_validate(values)
    assert [error["loc"] for error in caught.value.errors()] == [where]
    with pytest.raises(InvalidInputError, match=".".join(where)):
        parse_run_config(values)


def test_refused_values_name_their_field() -> None:
    with pytest.raises(InvalidInputError, match="mode: input should be 'auto' or 'manual'"):
        parse_run_config({"mode": "later"})
    with pytest.raises(InvalidInputError, match=r"train: value error, training config: epochs=-1.0 must be > 0"):
        parse_run_config({"train": {"epochs": -1}})


def test_a_record_holds_what_was_asked_and_parses_back_to_the_same_spec() -> None:
    assert RunSpec().to_record() == {}
    spec = RunSpec.model_validate(
        {"train": {"epochs": 1}, "gate": {"min_improvement": 0.02}, "mode": "manual", "reason": "r"}
    )
    assert spec.to_record() == {
        "train": {"epochs": 1.0},  # differs from a run's 3 epochs: kept
        "gate": {"min_improvement": 0.02},
        "mode": "manual",
        "reason": "r",
    }
    assert RunSpec.model_validate(spec.to_record()) == spec
    assert RunSpec().train.epochs == 3.0 and RunSpec().assembly == AssemblyConfig()
    assert RunSpec().gate == GateConfig()


def test_max_length_comes_from_train_only_when_train_sets_it() -> None:
    assert RunSpec().max_length_from == "champion"
    given = RunSpec.model_validate({"train": {"max_length": 64}})  # the default value, given: still used
    assert given.max_length_from == "train" and given.to_record() == {"max_length_from": "train"}
    assert RunSpec.model_validate(given.to_record()) == given
    assert not config_from_run(given.to_record()).keep_champion_max_length
    assert config_from_run({"train": {"epochs": 2}}).keep_champion_max_length


def test_the_records_the_writers_stored_before_the_contract_still_parse() -> None:
    """What the API, the CLI, the monitor and replay sessions wrote as untyped dicts."""
    api = {"train": {}, "assembly": {}, "gate": {}, "reason": "try", "requested_by": "ops"}
    cli = {"reason": "manual retrain", "mode": "manual", "requested_by": "me"}
    monitor = {"train": {"epochs": 2}, "assembly": {"min_new_labels": 100}, "reason": "drift"}
    for record in (api, cli, monitor):
        parse_run_config(record)
    assert config_from_run(cli).mode == "manual"
    assert config_from_run(monitor).train.epochs == 2.0


def test_a_spec_that_asks_for_the_search_says_so_even_as_the_default() -> None:
    from retrain.run import config_from_run

    asked = RunSpec.model_validate({"search": {"enabled": True}}).to_record()
    assert asked == {"search": {"enabled": True}}
    assert config_from_run(asked).search.enabled  # whatever DRIFTLINE_SEARCH says (false in tests)
    assert not config_from_run({}).search.enabled  # unsaid: the setting decides
    assert RunSpec().to_record() == {}
