"""The training options of ``driftline bootstrap``, made from the fields of ``contracts.train.TrainConfig``:
each field's type, default and help text (its metadata), in field order, so a new field is a new option."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, Literal

import click

from contracts.train import AUTO, TrainConfig


class MaxLength(click.ParamType):
    """``--max-length``: ``auto`` or a whole number of tokens."""

    name = "auto|INTEGER"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or str(value).strip().lower() == AUTO:
            return value if isinstance(value, int) else AUTO
        try:
            return int(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor an integer", param, ctx)


def option_type(hint: Any) -> Any:
    """The click type of a field's type: its own for str, int and float (``X | None`` as ``X``), and
    :class:`MaxLength` for ``int | Literal["auto"]``."""
    kinds = set(typing.get_args(hint)) - {type(None)} or {hint}
    if kinds == {int, Literal[AUTO]}:
        return MaxLength()
    if len(kinds) == 1 and (kind := kinds.pop()) in (str, int, float):
        return kind
    raise TypeError(f"TrainConfig: no command-line type for {hint!r}: give the field option=False")


def field_option(field: dataclasses.Field[Any], hint: Any) -> Callable[[Any], Any]:
    """``--<field-name>``, from the field's metadata: ``help``, ``choices``, ``option_default``."""
    default = field.metadata.get("option_default", field.default)
    choices = field.metadata.get("choices")
    return click.option(
        "--" + field.name.replace("_", "-"),
        type=click.Choice(list(choices)) if choices else option_type(hint),
        default=default,
        show_default=None if default is None else True,
        help=field.metadata.get("help"),
    )


def train_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command with an option for each field of TrainConfig the command line takes."""
    hints = typing.get_type_hints(TrainConfig)
    for field in reversed(dataclasses.fields(TrainConfig)):  # decorators apply bottom-up
        if field.metadata.get("option", True):
            fn = field_option(field, hints[field.name])(fn)
    return fn
