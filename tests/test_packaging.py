"""Every third-party module the package imports is a declared runtime dependency.

The test extras pull in many packages (schemathesis brings click, for one), so a missing
runtime dependency passes every other test and only breaks a user's plain ``pip install .``.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0] for spec in project["dependencies"]}
    return {name.lower().replace("_", "-") for name in names}


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "flexpay_batch").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"flexpay_batch"}


def test_every_imported_package_is_a_declared_dependency() -> None:
    """Each non-stdlib import of flexpay_batch comes from a package in [project] dependencies."""
    distributions = packages_distributions()
    declared = _declared()
    missing = {
        module: distributions.get(module, [module])
        for module in _imported_top_level_modules()
        if not {d.lower().replace("_", "-") for d in distributions.get(module, [module])} & declared
    }
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
