"""Imports only point down: ``core`` is the bottom layer and imports no other package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flexpay_batch"
ABOVE_CORE = {"api", "cli", "engine", "input", "jobs", "journal", "sim"}


def _imported_modules(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").rglob("*.py")), ids=lambda p: p.name)
def test_core_imports_nothing_above_it(path: Path) -> None:
    """No module in core/ imports from api/, engine/, jobs/, journal/, input/, cli/ or sim/."""
    upward = [
        name
        for name in _imported_modules(path)
        if name.startswith("flexpay_batch.") and name.split(".")[1] in ABOVE_CORE
    ]
    assert upward == []
