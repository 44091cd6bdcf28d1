"""The project's modules import on their own, and none of them takes part in an import cycle.

* Every module of the project's packages is imported as if first: a module that only
  works when something else was imported before it, or that needs an optional
  dependency at import time, fails here. A fresh interpreter per module costs about
  half a second each (over a minute for the project), so each package gets one
  interpreter that drops every project module from ``sys.modules`` before importing the
  next one: the project code is fresh each time, the third-party code is reused.
* The imports between project modules form no cycle. The graph is read from the source
  with ``ast``: module-level *and* function-level imports (a function-level import does
  not remove a cycle, it only hides it until the function runs), ``from . import x``
  resolved, a package's ``__init__`` a module of its own, and importing ``a.b.c`` also
  importing the packages ``a.b`` and ``a`` (their ``__init__`` runs first). Imports of
  the standard library and third-party packages are not part of the graph.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [name for name in ("ngsi", "broker", "iot_agent", "orchestrator", "security", "analytics") if (ROOT / name / "__init__.py").is_file()]

Graph = dict[str, dict[str, int]]  # module -> {module it imports: line of the first such import}


def project_modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's ``__init__``) for every module of PACKAGES."""
    modules: dict[str, tuple[Path, bool]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            modules[".".join(parts)] = (path, is_package)
    return modules


def imported_names(tree: ast.AST, package: str) -> Iterable[tuple[str, int]]:
    """(absolute dotted name, line) of every import in ``tree``, at any depth. For
    ``from m import x`` both ``m.x`` and ``m`` are given: ``x`` may be a module or a name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                yield f"{module}.{alias.name}", node.lineno
            yield module, node.lineno


def import_graph() -> Graph:
    modules = project_modules()
    graph: Graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target, line in imported_names(tree, package):
            if target.split(".")[0] not in PACKAGES:
                continue  # standard library or third party
            # the module itself, else its nearest package (``from pkg import name``) ...
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # ... and the packages above it, whose __init__ runs first, except our own
            while target and target != name and not name.startswith(target + "."):
                edges.setdefault(target, line)
                target = target.rpartition(".")[0]
        graph[name] = edges
    return graph


def strongly_connected(graph: Graph) -> list[set[str]]:
    """The components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


def a_cycle(graph: Graph, component: set[str]) -> str:
    """One shortest cycle through the component, with the line of each import."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in graph[node]:
            if nxt == start:
                path = [*paths[node], start]
                return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(path)) + f" -> {start}"
            if nxt in component and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {sorted(component)}")


def test_cycles_are_found() -> None:
    graph: Graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e.f": 5}, "e.f": {}}
    assert strongly_connected(graph) == [{"a", "b", "c"}]
    assert a_cycle(graph, {"a", "b", "c"}) == "a (line 1) -> b (line 2) -> c (line 3) -> a"


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert {name.split(".")[0] for name in graph} == set(PACKAGES)
    cycles = [a_cycle(graph, component) for component in strongly_connected(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


IMPORT_EACH = """
import importlib, sys, traceback
packages = set(sys.argv[1].split(","))
failed = []
for name in sys.argv[2:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failed.append(name + ":\\n" + traceback.format_exc(limit=-3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone() -> None:
    modules = sorted(project_modules())

    def run(package: str) -> str:
        names = [m for m in modules if m.split(".")[0] == package]
        done = subprocess.run(
            [sys.executable, "-c", IMPORT_EACH, ",".join(PACKAGES), *names],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )
        return "" if done.returncode == 0 else done.stdout + done.stderr

    with ThreadPoolExecutor(len(PACKAGES)) as pool:
        failures = [text for text in pool.map(run, PACKAGES) if text]
    assert not failures, "modules that do not import on their own:\n" + "\n".join(failures)
