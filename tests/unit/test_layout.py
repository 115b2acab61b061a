"""The code's layout: imports run one way (no cycle, lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

from lakehouse.config import PROJECT_ROOT

PACKAGES = ("lakehouse", "expectations")


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its code (a function's lazy imports too)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                found = resolve(target)
                # A module may import the packages it lives in (their __init__ runs first anyway).
                if found and found != name and not name.startswith(found + "."):
                    graph[name].add(found)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    graph = _import_graph()
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the whole package was read
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_suites_are_a_leaf_that_imports_only_great_expectations() -> None:
    graph = _import_graph()
    assert all(
        target.startswith("expectations") for name in graph if name.startswith("expectations") for target in graph[name]
    )


def test_no_module_imports_another_modules_private_names() -> None:
    borrowed = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGES):
                borrowed += [f"{name} <- {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert borrowed == []


# Modules over about 400 lines, and why they are one module.
LARGE_MODULES = {
    "lakehouse.config": "every setting of conf/lakehouse.yaml, section by section, with its check: one place to look",
    "lakehouse.sources.load": "loading the files: PostgreSQL COPY and the MongoDB bulk load share lock, log and checks",
    "lakehouse.modeling.runner": "the dbt runner: environment, command, streamed output and run_results in one flow",
    "lakehouse.sources.catalogue": "titles, seasons and episodes: one document built by pieces that share its arrays",
    "lakehouse.sources.sessions": "a session's draws in one order (the generated files depend on it)",
    "lakehouse.services.cluster": "a standalone master and worker: start, health and stop of both",
    "lakehouse.cli": "the argument parser: one subcommand per step, in one table",
}
MAX_LINES = 400


def test_modules_stay_small_or_say_why() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    large = {name for name, lines in sizes.items() if lines > MAX_LINES * 1.1}
    assert large <= set(LARGE_MODULES), sorted(large - set(LARGE_MODULES))
    assert all(sizes[name] > MAX_LINES for name in LARGE_MODULES), "a module got small: drop it from the list"
