"""The package rules of docs/architecture.md: each package imports only the packages below it; service,
monitor and retrain never import each other; only the driftline CLI composes them all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "common",
    "registry",
    "runtime",
    "labeling",
    "contracts",
    "service",
    "monitor",
    "retrain",
    "orchestration",
    "driftline",
}
BASE = {"common", "registry"}
ALLOWED = {
    "common": {"common"},
    "registry": BASE,
    "runtime": BASE | {"runtime"},
    "labeling": BASE | {"runtime", "labeling"},
    "contracts": BASE | {"contracts"},
    "service": BASE | {"runtime", "labeling", "contracts", "service"},
    "monitor": BASE | {"runtime", "contracts", "monitor"},
    "retrain": BASE | {"runtime", "contracts", "retrain"},
    "orchestration": BASE | {"runtime", "contracts", "monitor", "orchestration"},
    "driftline": PACKAGES,
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & PACKAGES


def test_every_package_has_its_rule() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert on_disk == set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_design(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in wrong.items() if v} == {}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_module_over_500_lines(package: str) -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 500
    }
    assert long == {}
