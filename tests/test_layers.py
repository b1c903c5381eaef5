"""The package's imports point down its layers and never go round in a circle.

Layers, top to bottom: cli > bureau > engine > {jobs, journal} > {api, input} > core. jobs
may import api, input and core; journal, api and input only core; core nothing but itself.
The simulator (sim) may import only core, and only cli and (lazily, for ``--sandbox``)
engine/target.py import it. Every import counts: module level, under ``if TYPE_CHECKING:``
and inside functions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import flexpay_batch

PACKAGE = Path(flexpay_batch.__file__).parent
ROOT = "flexpay_batch"

#: The packages each package may import (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "cli": frozenset({"bureau", "engine", "jobs", "journal", "api", "input", "core", "sim"}),
    "bureau": frozenset({"engine", "jobs", "journal", "api", "input", "core"}),
    "engine": frozenset({"jobs", "journal", "api", "input", "core"}),
    "jobs": frozenset({"api", "input", "core"}),
    "journal": frozenset({"core"}),
    "api": frozenset({"core"}),
    "input": frozenset({"core"}),
    "core": frozenset(),
    "sim": frozenset({"core"}),
}
#: Modules outside cli/ that may import the simulator (lazily: a real run never loads it).
SIM_IMPORTERS = frozenset({"flexpay_batch.engine.target"})
#: Top-level modules: the entry point and ``python -m`` sit above every layer.
TOP = frozenset({"flexpay_batch", "flexpay_batch.__main__", "flexpay_batch.entry"})

#: Known violations being fixed on other branches; delete each line once its fix is merged.
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every flexpay_batch module ``module`` imports, wherever the import statement is."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            # ``from pkg import mod`` imports the submodule when there is one.
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for name in names:
            if name == ROOT or name.startswith(ROOT + "."):
                while name not in MODULES and "." in name:
                    name = name.rsplit(".", 1)[0]
                yield name


GRAPH: dict[str, frozenset[str]] = {
    module: frozenset(_imported(module, path)) - {module} for module, path in MODULES.items()
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def _layer_violations() -> list[str]:
    found = []
    for module, targets in GRAPH.items():
        if module in TOP:
            continue
        source = _layer(module)
        allowed = ALLOWED.get(source or "", frozenset())
        if module in SIM_IMPORTERS:
            allowed |= {"sim"}
        for target in sorted(targets):
            dest = _layer(target)
            if dest is None or dest == source or (module, target) in KNOWN_EXCEPTIONS:
                continue
            if dest not in allowed:
                found.append(f"{module} -> {target} ({source} may not import {dest})")
    return found


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in GRAPH.get(node, frozenset()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_is_read() -> None:
    """The parser sees module-level, TYPE_CHECKING and function-level imports."""
    # engine.run is imported inside a function:
    assert "flexpay_batch.engine.run" in GRAPH["flexpay_batch.cli.run_commands"]
    assert "flexpay_batch.sim" in GRAPH["flexpay_batch.engine.target"]  # inside a function
    assert "flexpay_batch.core.errors" in GRAPH["flexpay_batch.engine.request"]


def test_no_import_cycles() -> None:
    """No two flexpay_batch modules import each other, directly or through others."""
    assert _cycles() == []


def test_imports_point_down_the_layers() -> None:
    """Every import goes to the same package or one its layer may use (see the docstring)."""
    assert _layer_violations() == []


def test_known_exceptions_still_exist() -> None:
    """A known exception that was fixed is deleted from the list, so it cannot come back."""
    fixed = [edge for edge in KNOWN_EXCEPTIONS if edge[1] not in GRAPH[edge[0]]]
    assert fixed == []


#: Layers that own no display: what they have to say goes up to cli/ as data or events.
SILENT_LAYERS = frozenset({"bureau", "engine", "jobs", "journal", "api", "input", "core"})
#: Modules of those layers that may touch a terminal stream, each for its reason.
TERMINAL_USERS = frozenset(
    {
        # --debug's redacted traceback, written by the excepthook it installs.
        "flexpay_batch.core.redact",
    }
)


def _terminal_writes(path: Path) -> Iterator[str]:
    """Where ``path``'s code prints or names ``sys.stdout`` / ``sys.stderr``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "print":
                yield f"{path.name}:{node.lineno} print()"
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in {"stdout", "stderr"}
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            yield f"{path.name}:{node.lineno} sys.{node.attr}"


def test_only_cli_shows_anything() -> None:
    """Below cli/ nothing prints: the engine returns results and reports events, the command
    line renders them (plain text, a progress bar or JSON lines)."""
    found = [
        where
        for module, path in MODULES.items()
        if _layer(module) in SILENT_LAYERS and module not in TERMINAL_USERS
        for where in _terminal_writes(path)
    ]
    assert found == []
