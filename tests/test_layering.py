"""The library's imports point one way.

Core and extras: the core is what training and torch stylization need; the extras are optional
layers above it (onnx export and runtime, the machine profile behind ``backend=auto``, tiling,
video, Gatys optimisation and evaluation, style measurement, the visdom dashboard, writing
shards for ``scripts/preprocess.py``; training reads them with the core's :mod:`fast_style.data`). An extra may
import the core and other extras; the core imports an extra only inside the one function where a
user's option selects it (:data:`OPTION_POINTS`), never when it is itself imported. Two choices:

- :mod:`fast_style.color` is core: training's ``style.preserve_color`` and stylization both use it.
- :mod:`fast_style.distributed` is core: the loop calls its collectives, which are no-ops in one
  process (as in torchvision's reference training scripts).

Also: no cycle among fast_style's modules (function-level imports included, since those are how
cycles hide), nothing in the library imports the training loop, inference does not pull in the
training config or the dashboard, and the logger interface lives outside the dashboard."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from tests.helpers import REPO, script_env

PACKAGE = REPO / "fast_style"

# the optional layers; a package counts with its submodules (fast_style.dashboard.*)
EXTRAS = {
    "fast_style.onnx_backend", "fast_style.machine", "fast_style.export", "fast_style.tiling", "fast_style.video",
    "fast_style.optimize", "fast_style.evaluate", "fast_style.measure", "fast_style.dashboard", "fast_style.shards",
}
# everything else; a new module must be put in one of the two sets (test_every_module_is_core_or_extra)
CORE = {
    "fast_style", "fast_style.models", "fast_style.models.loss_nets", "fast_style.models.transformer",
    "fast_style.losses", "fast_style.images", "fast_style.data",
    "fast_style.styles", "fast_style.color", "fast_style.config", "fast_style.train", "fast_style.compile_policy",
    "fast_style.signals", "fast_style.rollback", "fast_style.finetune", "fast_style.run_checks",
    "fast_style.distributed", "fast_style.checkpoint", "fast_style.stylize", "fast_style.backends",
    "fast_style.loggers", "fast_style.errors", "fast_style.checks", "fast_style.device", "fast_style.fileio",
    "fast_style.cli", "fast_style.script_configs",
}
# (core module, function) -> the extras that function may import: the one place where a user's
# option (backend=, tile_size=, logger.kind=) selects them, imported when it is called
OPTION_POINTS = {
    ("fast_style.backends", "open_backend"): {"fast_style.onnx_backend", "fast_style.machine", "fast_style.tiling"},
    ("fast_style.train", "choose_logger"): {"fast_style.dashboard"},
}
# what `import fast_style.train, fast_style.stylize, fast_style.backends` must not load: the extras
# and the third-party packages only they use
OPTIONAL_PACKAGES = ("onnxruntime", "onnx", "onnxscript", "visdom", "av")


def is_extra(module: str) -> bool:
    return any(module == e or module.startswith(e + ".") for e in EXTRAS)


class Import(NamedTuple):
    importer: str
    target: str
    function: str | None  # the enclosing function ("Class.method", "outer.inner"); None: runs on import
    line: int

    def __str__(self) -> str:
        where = f"in {self.function}()" if self.function else "at module level"
        return f"{self.importer}:{self.line} imports {self.target} {where}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(path: Path, modules: set[str]) -> list[Import]:
    """The fast_style modules ``path`` imports anywhere in its body, each with the function it is
    imported in (``from fast_style import x`` counts as importing ``fast_style.x`` when that is a
    module). An import under ``if TYPE_CHECKING:`` counts as a module-level one: annotations are
    strings here (``from __future__ import annotations``), so a type needs no import."""
    importer = module_name(path)
    found: list[Import] = []

    def visit(node: ast.AST, function: str | None, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, prefix + child.name, prefix + child.name + ".")
                continue
            if isinstance(child, ast.ClassDef):  # a class body runs where the class is defined
                visit(child, function, prefix + child.name + ".")
                continue
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = [child.module, *(f"{child.module}.{alias.name}" for alias in child.names)]
            else:
                names = []
            found.extend(Import(importer, name, function, child.lineno) for name in names if name in modules)
            visit(child, function, prefix)

    visit(ast.parse(path.read_text(), str(path)), None, "")
    # a module importing its own package (fast_style.x -> fast_style) only runs __init__
    return [i for i in found if i.target != importer and not importer.startswith(i.target + ".")]


def all_imports() -> list[Import]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    # an empty list would pass every check here (it did, at a wrong PACKAGE path, after a move)
    assert {"fast_style.train", "fast_style.stylize", "fast_style.config"} <= set(paths), PACKAGE
    return [i for path in paths.values() for i in imports_in(path, set(paths))]


def import_graph(option_points: bool = True) -> dict[str, set[str]]:
    """module -> the fast_style modules it imports; ``option_points=False`` leaves out the
    :data:`OPTION_POINTS` edges."""
    graph: dict[str, set[str]] = {module_name(p): set() for p in PACKAGE.rglob("*.py")}
    for i in all_imports():
        if option_points or i.target not in OPTION_POINTS.get((i.importer, i.function), set()):
            graph[i.importer].add(i.target)
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
    # the OPTION_POINTS edges are left out: they are call-time plug-ins (open_backend imports
    # fast_style.machine, whose AutoNet builds on the backends module), not load-order dependencies
    assert find_cycle(import_graph(option_points=False)) is None


def test_every_module_is_core_or_extra():
    modules = set(import_graph())
    extras = {m for m in modules if is_extra(m)}
    assert not CORE & extras
    assert sorted(modules - CORE - extras) == [], "put each new module in CORE or EXTRAS"
    assert sorted(CORE - modules) == [] and sorted(EXTRAS - modules) == [], "CORE and EXTRAS name only modules"


def test_no_core_module_imports_an_extra_at_module_level():
    wrong = [str(i) for i in all_imports() if i.importer in CORE and is_extra(i.target) and i.function is None]
    assert not wrong, "\n".join(["a core module imports an extra when it is imported:", *wrong])


def test_a_core_module_imports_an_extra_only_where_an_option_selects_it():
    wrong = [str(i) for i in all_imports() if i.importer in CORE and is_extra(i.target) and i.function
             and i.target not in OPTION_POINTS.get((i.importer, i.function), set())]
    assert not wrong, "\n".join(["a core module imports an extra only in an OPTION_POINTS function:", *wrong])


def test_the_option_points_table_is_current():
    made = {(i.importer, i.function, i.target) for i in all_imports()}
    listed = {(module, function, extra) for (module, function), extras in OPTION_POINTS.items() for extra in extras}
    assert sorted(listed - made) == []  # each listed import is still made there
    assert all(module in CORE and is_extra(extra) for module, _, extra in listed)


def test_importing_training_and_stylization_loads_no_extra():
    # a real interpreter, so a re-added top-level import (anywhere down the chain) fails here
    code = "import fast_style.train, fast_style.stylize, fast_style.backends; import sys; print(sorted(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env=script_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert "fast_style.train" in loaded
    assert sorted(m for m in loaded if is_extra(m)) == []
    assert sorted(m for m in loaded if m.split(".")[0] in OPTIONAL_PACKAGES) == []


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
