"""``driftline bootstrap`` has one option per field of TrainConfig the command line takes, made from the
field: its name, type, default (or ``option_default``), help text and choices."""

from __future__ import annotations

import dataclasses
from typing import Literal

import click
import pytest

from contracts.train import TrainConfig
from driftline.cli import main
from driftline.cli.options import MaxLength, option_type


def test_every_field_the_command_line_takes_is_an_option_of_bootstrap() -> None:
    params = {p.name: p for p in main.commands["bootstrap"].params if isinstance(p, click.Option)}
    fields = [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("option", True)]
    assert len(fields) == 15 and {"eval_batch_size", "weight_decay"}.isdisjoint(params)
    for field in fields:
        option = params[field.name]
        assert option.opts == ["--" + field.name.replace("_", "-")]
        assert option.default == field.metadata.get("option_default", field.default)
        assert option.help == field.metadata.get("help")
    assert params["max_length"].default == "auto" and TrainConfig().max_length == 64
    assert params["class_weighting"].type.choices == ("auto", "balanced", "sqrt", "none")  # type: ignore[attr-defined]


def test_option_types_follow_the_field_types() -> None:
    assert [option_type(hint) for hint in (str, int, float, int | None, float | None)] == [
        str,
        int,
        float,
        int,
        float,
    ]
    assert isinstance(option_type(int | Literal["auto"]), MaxLength)
    with pytest.raises(TypeError, match="option=False"):
        option_type(tuple[int, ...])


@pytest.mark.parametrize(("given", "read"), [("auto", "auto"), (" AUTO ", "auto"), ("128", 128), (64, 64)])
def test_max_length_is_auto_or_a_whole_number(given: object, read: object) -> None:
    assert MaxLength().convert(given, None, None) == read
    with pytest.raises(click.BadParameter, match="neither 'auto' nor an integer"):
        MaxLength().convert("long", None, None)
