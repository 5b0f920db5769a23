"""``hooks/_endpoints.py`` is generated from the builders: a stale file (a builder changed, the script not run)
fails here, so the plain methods a reader, mypy and an IDE see always match what is sent."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import airflow_provider_baseten.hooks as hooks

ROOT = Path(__file__).resolve().parents[2]


def test_generated_endpoint_methods_match_the_builders() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_hook.py"), "--check"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


def test_no_runtime_machinery_makes_hook_methods() -> None:
    """Every public hook method is a plain ``def`` / ``async def`` in the source: no registry, descriptor,
    signature patching or ``__wrapped__`` (issue 22)."""
    banned = {"_twin", "_api", "_params_of", "_sign_like", "__wrapped__", "__signature__", "_TWINS"}
    for path in Path(hooks.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        used |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not used & banned, f"{path.name} uses {sorted(used & banned)}"


def test_every_public_hook_method_is_defined_in_source() -> None:
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    defined: set[str] = set()
    for path in Path(hooks.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                defined |= {f.name for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    public = {n for n in vars(BasetenHook) if not n.startswith("_")}
    for klass in BasetenHook.__mro__:
        if klass.__module__.startswith("airflow_provider_baseten"):
            public |= {n for n in vars(klass) if not n.startswith("_") and callable(vars(klass)[n])}
    missing = {n for n in public if n not in defined and not n.isupper()}
    assert not missing, f"made at runtime, not written in the source: {sorted(missing)}"
