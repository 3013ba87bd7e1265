"""The usage examples in the docstrings run: each module's doctests pass, and each module has some."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = (
    "contracts.run",
    "contracts.search",
    "monitor.guard",
    "monitor.policy",
    "monitor.signals",
    "retrain.augment",
    "retrain.cost",
    "retrain.gate",
    "retrain.lengths",
    "runtime.onnxrt",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(name), optionflags=flags, verbose=False)
    assert result.attempted > 0, f"{name} has no doctest"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (above)"
