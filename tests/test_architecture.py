"""The one rule of imports (docs/architecture.md): a module imports only from its own layer or the layers below.

The import graph is read with ``ast`` from every module of the package, imports inside functions included: a lazy
import that dodges a cycle at import time is still an arrow between two modules, so it counts. Imports under
``if TYPE_CHECKING:`` are left out: they never run (type annotations only). The checks:

* ``kdh_ai.quality`` imports nothing else of ``kdh_ai`` (pure metrics on DataFrames and arrays);
* every module belongs to a layer, and no module imports from a layer above its own;
* the graph has no cycle, except the ones listed in :data:`ALLOWED_CYCLES`, each with the reason it is there.
"""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "kdh_ai"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("kdh_ai.quality", "kdh_ai.errors", "kdh_ai.records", "kdh_ai.segments", "kdh_ai.subtitles", "kdh_ai.items", "kdh_ai.audio", "kdh_ai.labels",
              "kdh_ai.calibration", "kdh_ai.registry", "kdh_ai.offline", "kdh_ai.guidelines", "kdh_ai.samples",
              "kdh_ai.evaluate_metrics")),
    ("models", ("kdh_ai.embeddings", "kdh_ai.heads", "kdh_ai.engines", "kdh_ai.tasks", "kdh_ai.second_opinion",
                "kdh_ai.config")),
    ("job", ("kdh_ai.job", "kdh_ai")),
    ("answers", ("kdh_ai.answers",)),
    ("loop", ("kdh_ai.prelabel", "kdh_ai.ray_runner", "kdh_ai.active_learning", "kdh_ai.routing")),
    ("people", ("kdh_ai.labelstudio", "kdh_ai.qualify", "kdh_ai.lab")),
    ("delivery", ("kdh_ai.deliver", "kdh_ai.realign")),
    ("report", ("kdh_ai.report",)),
    ("cli", ("kdh_ai.cli",)),
]
"""The layers, lowest first (docs/architecture.md says what each owns)."""

ALLOWED_CYCLES: dict[frozenset[str], str] = {}
"""Import cycles that are known and have a plan; any other cycle fails the test."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module (or package) of the package that ``name`` refers to."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> set[str]:
    """The modules of the package that ``module`` imports, anywhere in its code."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                 for stmt in block.body for n in ast.walk(stmt)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parent + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for name in names:
            if name.split(".")[0] == "kdh_ai":
                target = _resolve(name)
                if target and target != module:
                    out.add(target)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


GRAPH = {m: _imports(m) for m in MODULES}


def _layer(module: str) -> int:
    best, layer = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or (p != "kdh_ai" and module.startswith(p + "."))) and len(p) > best:
                best, layer = len(p), i
    if layer is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and to docs/architecture.md")
    return layer


def test_the_graph_is_read() -> None:
    # a check that cannot pass on an empty graph: known arrows of the package are found
    assert "kdh_ai.job" in GRAPH["kdh_ai.labelstudio.pull"]
    assert "kdh_ai.quality" in GRAPH["kdh_ai.answers"]
    assert "kdh_ai.routing" in GRAPH["kdh_ai.labelstudio.push"]  # a lazy or package import counts too


def test_quality_imports_nothing_else_of_kdh() -> None:
    bad = {m: sorted(t for t in GRAPH[m] if not t.startswith("kdh_ai.quality")) for m in MODULES
           if m.startswith("kdh_ai.quality")}
    assert {m: t for m, t in bad.items() if t} == {}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_no_import_runs_up_a_layer() -> None:
    up = sorted(f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
                for m, targets in GRAPH.items() for t in targets if _layer(t) > _layer(m))
    assert up == []


def _cycles() -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle() -> None:
    unexpected = [sorted(c) for c in _cycles() if c not in ALLOWED_CYCLES]
    assert unexpected == []


def test_allowed_cycles_still_exist() -> None:
    """An allowed cycle that is gone must leave the list, so the list never hides a new one (empty since issue 10)."""
    cycles = _cycles()
    gone = [sorted(c) for c in ALLOWED_CYCLES if c not in cycles]
    assert not gone, f"{gone} are no longer cycles: remove them from ALLOWED_CYCLES"
