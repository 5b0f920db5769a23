"""No import cycles in the package: read every module's imports with ``ast`` and look for strongly connected
components of the module graph.

Three kinds of import edge: at import time (module level, outside ``if TYPE_CHECKING``), for types only
(module level, inside ``if TYPE_CHECKING``) and lazy (inside a function). An import-time cycle breaks
imports, so there must be none. Type-only and lazy cycles work but tie two modules together; the ones
left are listed in ``KNOWN`` with their reason, and no new one may appear.
"""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_baseten

PACKAGE = Path(airflow_provider_baseten.__file__).parent

_HOOKS = "airflow_provider_baseten.hooks"
KNOWN: dict[frozenset[str], str] = {
    frozenset({f"{_HOOKS}._api", f"{_HOOKS}._core"}): "type only: _api's builders and _exchange take a _HookCore",
}


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the package directory ``root``."""
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: set[str], *, import_time_only: bool) -> set[str]:
    """The package modules ``name`` imports (relative imports resolved; ``from m import sub`` counts ``m.sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST, top_level: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, top_level, True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False, type_only)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                if import_time_only and (type_only or not top_level):
                    continue
                if isinstance(child, ast.Import):
                    targets = [alias.name for alias in child.names]
                else:
                    base = child.module or ""
                    if child.level:
                        up = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                        base = ".".join([*up, base] if base else up)
                    targets = [base, *(f"{base}.{alias.name}" for alias in child.names)]
                found.update(t for t in targets if t in known and t != name)
            else:
                visit(child, top_level, type_only)

    visit(ast.parse(path.read_text()), True, False)
    return found


def cycles(root: Path, *, import_time_only: bool) -> list[frozenset[str]]:
    """The import cycles among the modules under ``root``: strongly connected components of two or more."""
    names = module_names(root)
    graph = {n: imports_of(n, p, set(names), import_time_only=import_time_only) for n, p in names.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def connect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_time_cycles() -> None:
    assert cycles(PACKAGE, import_time_only=True) == []


def test_no_new_cycles_of_any_kind() -> None:
    new = [sorted(c) for c in cycles(PACKAGE, import_time_only=False) if c not in KNOWN]
    assert new == [], f"new import cycles (move what both sides need into a module of its own): {new}"


def test_the_check_finds_each_kind_of_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from .. import a\n")  # relative, at import time
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n")
    (pkg / "d.py").write_text("def f():\n    from pkg import c\n")  # type only one way, lazy the other
    assert cycles(pkg, import_time_only=True) == [frozenset({"pkg.a", "pkg.sub.b"})]
    assert sorted(map(sorted, cycles(pkg, import_time_only=False))) == [["pkg.a", "pkg.sub.b"], ["pkg.c", "pkg.d"]]
