"""The package rules of docs/architecture.md: service, monitor and retrain never import each other;
registry imports nothing in-repo; contracts (the typed run contract they share) only registry; only the
driftline CLI composes them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"registry", "contracts", "service", "monitor", "retrain", "driftline"}
ALLOWED = {
    "registry": {"registry"},
    "contracts": {"contracts", "registry"},
    "service": {"service", "contracts", "registry"},
    "monitor": {"monitor", "contracts", "registry"},
    "retrain": {"retrain", "contracts", "registry"},
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


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_design(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in wrong.items() if v} == {}
