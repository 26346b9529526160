"""The project's import graph: no circles, and engine/ stays below the front ends.

Every module's AST is read, module-level and function-level imports alike (an import inside a
function is still a dependency, only a later one); imports under ``if TYPE_CHECKING:`` are left
out because they never run. Relative imports are resolved, and ``from pkg import name`` counts as
an import of ``pkg.name`` when that is a module, else of ``pkg``. A test failure prints the circle
or the forbidden import with the file and line that makes it.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tradebot", "bot", "engine", "emulator", "mt5sim", "sandbox")
# engine/ is the core: it knows nothing of Telegram, the emulator, the simulated terminal or the sandbox.
ENGINE_FORBIDDEN = ("bot", "aiogram", "emulator", "mt5sim", "sandbox")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (dotted), project or not
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            modules[module_name(path)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` except the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _walk(other)
            continue
        yield child
        yield from _walk(child)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(name, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append(Import(name, child if child in modules else base, node.lineno))
    return found


def with_package_inits(edges: list[Import]) -> list[Import]:
    """Importing ``a.b.c`` first runs ``a/__init__.py`` and ``a/b/__init__.py``.

    That is an edge to each package above the target, except the importer's own packages
    (they are already initialised by the time any of their modules runs).
    """
    out = []
    for edge in edges:
        out.append(edge)
        parts = edge.target.split(".")
        for depth in range(1, len(parts)):
            package = ".".join(parts[:depth])
            if not (edge.source == package or edge.source.startswith(package + ".")):
                out.append(Import(edge.source, package, edge.line))
    return out


def import_graph() -> tuple[dict[str, Path], list[Import]]:
    modules = project_modules()
    edges = [edge for name, path in modules.items() for edge in imports_of(name, path, modules)]
    return modules, with_package_inits(edges)


def _strongly_connected(nodes: list[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (the graph is a few hundred modules deep at most)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
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
                if len(component) > 1 or node in graph[node]:
                    components.append(sorted(component))
    return components


def _one_circle(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return component


def circles(modules: dict[str, Path], edges: list[Import]) -> list[str]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    where: dict[tuple[str, str], int] = {}
    for edge in edges:
        if edge.target in modules:
            graph[edge.source].add(edge.target)
            where.setdefault((edge.source, edge.target), edge.line)
    found = []
    for component in _strongly_connected(sorted(modules), graph):
        circle = _one_circle(component, graph)
        steps = [f"{a} (line {where[(a, b)]})" for a, b in itertools.pairwise(circle)]
        found.append(" -> ".join([*steps, circle[-1]]))
    return found


def forbidden_engine_imports(modules: dict[str, Path], edges: list[Import], root: Path = ROOT) -> list[str]:
    bad = []
    for edge in edges:
        if edge.source.split(".")[0] != "engine":
            continue
        top = edge.target.split(".")[0]
        if top in ENGINE_FORBIDDEN:
            path = modules[edge.source].relative_to(root).as_posix()
            bad.append(f"{path}:{edge.line} imports {edge.target}")
    return bad


def test_the_project_has_no_import_circles() -> None:
    modules, edges = import_graph()
    found = circles(modules, edges)
    assert not found, "import circles:\n" + "\n".join(found)


def test_engine_imports_no_front_end_and_no_simulator() -> None:
    modules, edges = import_graph()
    bad = forbidden_engine_imports(modules, edges)
    assert not bad, "engine/ must not import bot/, aiogram, emulator/, mt5sim/ or sandbox/:\n" + "\n".join(
        bad
    )


def package_circles(edges: list[Import]) -> list[str]:
    """Circles between the top-level packages (``sandbox`` -> ``tradebot`` -> ``sandbox``, say)."""
    graph: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for edge in edges:
        source, target = edge.source.split(".")[0], edge.target.split(".")[0]
        if target in graph and target != source:
            graph[source].add(target)
    return [" -> ".join(_one_circle(c, graph)) for c in _strongly_connected(list(PACKAGES), graph)]


def test_the_top_level_packages_form_no_circle() -> None:
    _, edges = import_graph()
    found = package_circles(edges)
    assert not found, "circles between top-level packages:\n" + "\n".join(found)


# The checker itself: each rule on a small made-up project, so a broken checker cannot pass silently.


def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    modules = {}
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        parts = list(Path(relative).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _edges(modules: dict[str, Path]) -> list[Import]:
    edges = [e for name, path in modules.items() for e in imports_of(name, path, modules)]
    return with_package_inits(edges)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    modules = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from . import b\n",
            "pkg/b.py": "def later():\n    from pkg.a import thing\n",
        },
    )
    assert circles(modules, _edges(modules)) == ["pkg.a (line 1) -> pkg.b (line 2) -> pkg.a"]


def test_the_checker_ignores_type_checking_imports(tmp_path: Path) -> None:
    modules = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
        },
    )
    assert circles(modules, _edges(modules)) == []


def test_the_checker_counts_the_package_init_an_import_runs(tmp_path: Path) -> None:
    modules = _write(
        tmp_path,
        {
            "one/__init__.py": "def install():\n    from two import user\n",
            "one/part.py": "",
            "two/__init__.py": "",
            "two/user.py": "from one.part import x\n",
        },
    )
    assert circles(modules, _edges(modules)) == ["one (line 2) -> two.user (line 1) -> one"]


def test_the_checker_names_a_forbidden_engine_import(tmp_path: Path) -> None:
    modules = _write(tmp_path, {"engine/__init__.py": "", "engine/x.py": "def f():\n    import aiogram\n"})
    found = forbidden_engine_imports(modules, _edges(modules), root=tmp_path)
    assert found == ["engine/x.py:2 imports aiogram"]
