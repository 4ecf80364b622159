"""The library's imports point one way: no cycle among fast_style's modules (function-level
imports included, since those are how cycles hide), and nothing in the library imports the
training loop, the training config into inference, or the visdom dashboard into the core."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

PACKAGE = REPO / "fast_style"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """fast_style modules ``path`` imports anywhere in its body (``from fast_style import x``
    counts as importing ``fast_style.x`` when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph = {}
    for name, path in paths.items():
        edges = imports_of(path, modules) - {name}
        # a module importing its own package (fast_style.x -> fast_style) only runs __init__
        graph[name] = {m for m in edges if not name.startswith(m + ".")}
    # an empty graph would pass every check here (it did, at a wrong PACKAGE path, after a move)
    assert {"fast_style.train", "fast_style.stylize", "fast_style.config"} <= set(graph), PACKAGE
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycle_in_the_library():
    assert find_cycle(import_graph()) is None


def test_no_library_module_imports_the_training_loop():
    graph = import_graph()
    assert sorted(m for m, edges in graph.items() if "fast_style.train" in edges) == []


def test_inference_does_not_pull_in_training_config_or_dashboard():
    graph = import_graph()
    for module in ("fast_style.stylize", "fast_style.distributed", "fast_style.evaluate", "fast_style.video",
                   "fast_style.export", "fast_style.measure"):
        pulled = reaches(graph, module)
        assert "fast_style.config" not in pulled, module
        assert not any(m.startswith("fast_style.dashboard") for m in pulled), module


def test_the_logger_interface_lives_outside_the_dashboard():
    graph = import_graph()
    assert not any(m.startswith("fast_style.dashboard") for m in reaches(graph, "fast_style.loggers"))
