"""Structure of the production code, read statically (``ast``; nothing is imported).

- No cycle in the import graph: every ``import`` statement counts, wherever it
  stands (module level, inside a function, under ``if TYPE_CHECKING:``). A
  cycle hidden in a function or behind TYPE_CHECKING is still two modules that
  cannot be understood, tested or moved one without the other.
- No function or method longer than 80 lines.
- The pipeline never imports a simulator (docs/architecture.md): what a die
  really does reaches training only as a measurement, and only the modules
  whose job is to start a simulated bench import one.

Production code is the ``labctl`` package as ``pyproject.toml`` maps it
(``labctl.drivers`` lives in ``drivers/``, ``labctl.calibration`` in
``calibration/``, ``labctl.gui`` in ``gui/``).

Edges of the import graph: ``import a.b.c`` and ``from a.b.c import x`` import
the module ``a.b.c``; ``from a.b import c`` imports ``a.b.c`` when that is a
module, else ``a.b`` (its ``__init__``). The enclosing packages' ``__init__``
files, which Python also runs, are not edges: a package containing a module
does not import it, so a cycle goes through an ``__init__`` only where that
``__init__`` (or an ``import a.b`` of the package itself) really imports the
other module. Relative imports are resolved. Imports by name at run time
(``importlib``, the family registry's entry points) are not statements and are
not seen.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MAX_FUNCTION_LINES = 80

# A simulator is imported by name at run time, through the seam (DeviceFamily.simulator:
# `labctl demo`, `labctl sim serve`, replay's twin, the GUI's embedded die), never by an import
# statement: outside a simulator package no production module imports one.


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool

    @property
    def relpath(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


@cache
def production_modules() -> dict[str, Module]:
    """Every production module by dotted name, from pyproject.toml's package-dir."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    modules: dict[str, Module] = {}
    for package, folder in package_dir.items():
        base = ROOT / folder
        nested = [other for other in package_dir.values() if other != folder]
        for path in sorted(base.rglob("*.py")):
            if any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(ROOT).parts):
                continue
            if any(path.is_relative_to(ROOT / other) for other in nested):
                continue  # mapped to its own package (none of the folders nest today, but be safe)
            parts = list(path.relative_to(base).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join([package, *parts])
            modules[name] = Module(name, path, is_package)
    return modules


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _resolve_from(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module named by a ``from ... import`` (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def imports_of(module: Module) -> list[tuple[str, int]]:
    """(imported production module, line) for every import statement anywhere in ``module``."""
    modules = production_modules()
    found: list[tuple[str, int]] = []
    for node in ast.walk(parsed(module.path)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name in modules]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(module, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in modules:
                    found.append((submodule, node.lineno))
                elif source in modules:
                    found.append((source, node.lineno))
    return found


@cache
def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first statement importing it}."""
    graph: dict[str, dict[str, int]] = {}
    for name, module in production_modules().items():
        edges: dict[str, int] = {}
        for target, line in imports_of(module):
            if target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the strongly connected components, each a list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def shortest_cycle(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (breadth first)."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child in members and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component of several modules always has one


def describe_cycle(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    modules = production_modules()
    steps = [f"{a} ({modules[a].relpath}:{graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join([*steps, cycle[-1]])


def test_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 50, f"found only {len(graph)} production modules: is pyproject.toml's package-dir read?"
    cycles = [shortest_cycle(graph, c) for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, "import cycles (module (file:line of the import) -> ...):\n" + "\n".join(
        describe_cycle(graph, cycle) for cycle in cycles)


def test_cycle_finder_sees_cycles_in_functions_and_under_type_checking(tmp_path):
    """The finder itself: a cycle made of a function-level and a TYPE_CHECKING import is reported."""
    graph = {"a": {"b": 3}, "b": {"c": 9}, "c": {"a": 12, "d": 1}, "d": {}}
    components = [c for c in strongly_connected(graph) if len(c) > 1]
    assert components == [["a", "b", "c"]]
    assert shortest_cycle(graph, components[0]) == ["a", "b", "c", "a"]
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from labctl.families import seam\n"
              "def f():\n    from .cmna import chip\n    from .. import errors\n    import labctl.bench_file\n")
    module = Module("labctl.families.x", tmp_path / "x.py", False)
    module.path.write_text(source)
    assert sorted(imports_of(module)) == [("labctl.bench_file", 7), ("labctl.errors", 6),
                                          ("labctl.families.cmna.chip", 5), ("labctl.families.seam", 3)]


def long_functions() -> dict[str, int]:
    """"path::qualified name" -> lines (``def`` line to last line, decorators excluded) for every
    function and method over the limit, nested ones included."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str, relpath: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                lines = child.end_lineno - child.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found[f"{relpath}::{name}"] = lines
                visit(child, f"{name}.<locals>.", relpath)
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", relpath)
            else:
                visit(child, prefix, relpath)

    for module in production_modules().values():
        visit(parsed(module.path), "", module.relpath)
    return found


def test_no_function_is_longer_than_80_lines():
    offenders = long_functions()
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines (split into helpers that say why):\n" + \
        "\n".join(f"{name}: {lines} lines" for name, lines in sorted(offenders.items()))


def is_simulator(name: str) -> bool:
    """``labctl.sim`` and every family's ``sim`` sub-package (``labctl.families.<family>.sim``)."""
    parts = name.split(".")
    return parts[:2] == ["labctl", "sim"] or (parts[:2] == ["labctl", "families"] and parts[3:4] == ["sim"])


def simulator_imports() -> dict[str, list[str]]:
    """Production modules outside the simulator packages -> the simulator modules they import (file:line)."""
    graph, modules = import_graph(), production_modules()
    return {name: [f"{target} ({modules[name].relpath}:{line})" for target, line in sorted(edges.items())
                   if is_simulator(target)]
            for name, edges in graph.items()
            if not is_simulator(name) and any(is_simulator(target) for target in edges)}


def test_no_production_module_imports_a_simulator_statically():
    importers = simulator_imports()
    assert not importers, "modules importing a simulator (use DeviceFamily.simulator through the seam):\n" + \
        "\n".join(f"{name}: {', '.join(targets)}" for name, targets in sorted(importers.items()))


def test_every_production_package_is_installed():
    """A package missing from pyproject.toml's ``packages`` works in the editable install (tests, CI)
    and is silently left out of a wheel: the printed report and GUI parts nearly were."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    packages = {name for name, module in production_modules().items() if module.is_package}
    assert packages - listed == set(), "add to pyproject.toml [tool.setuptools] packages"
