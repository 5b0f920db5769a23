"""Imports run one way (DESIGN.md, "Layers"): client core <- hooks <- triggers <- operators and sensors.

Read with ``ast`` (the import graph of tests/unit/test_import_cycles.py), so a forbidden import fails here
even when it is lazy (inside a function) or for types only, where it would not break any import at run time.
What operators and sensors share lives in ``airflow_provider_baseten._tasks``, which imports neither.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_import_cycles import PACKAGE, imports_of, module_names

P = "airflow_provider_baseten"

# (importer layer, forbidden layer, import-time only?): every import counts unless the third item says so.
CLIENT_MAY_NOT_IMPORT = ("hooks", "triggers", "operators", "sensors", "_tasks", "emulator", "assets", "_lineage")
RULES = [
    *((f"{P}.client", f"{P}.{layer}", False) for layer in CLIENT_MAY_NOT_IMPORT),
    (f"{P}.sensors", f"{P}.operators", False),
    (f"{P}.triggers", f"{P}.operators", False),
    (f"{P}.triggers", f"{P}.sensors", False),
    (f"{P}._tasks", f"{P}.operators", False),
    (f"{P}._tasks", f"{P}.sensors", False),
    (f"{P}._tasks", f"{P}.triggers", False),
    # The hook may lazily build a trigger-free helper of a higher layer one day; at module level it may not.
    (f"{P}.hooks", f"{P}.operators", True),
    (f"{P}.hooks", f"{P}.sensors", True),
    (f"{P}.hooks", f"{P}.triggers", True),
]


def _in(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def violations(root: Path, rules: list[tuple[str, str, bool]]) -> list[str]:
    """``"importer -> imported"`` for every import of ``root``'s modules that ``rules`` forbid."""
    names = module_names(root)
    found = []
    for name, path in sorted(names.items()):
        for importer, forbidden, import_time_only in rules:
            if not _in(name, importer):
                continue
            targets = imports_of(name, path, set(names), import_time_only=import_time_only)
            found += [f"{name} -> {t}" for t in sorted(targets) if _in(t, forbidden)]
    return found


def test_imports_run_one_way() -> None:
    assert violations(PACKAGE, RULES) == [], (
        "a lower layer imports a higher one: move what both need into airflow_provider_baseten._tasks "
        "(operators/sensors) or below"
    )


def test_the_check_finds_each_kind_of_forbidden_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    for sub in ("operators", "sensors", "hooks"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "operators" / "a.py").write_text("def f(): ...\n")
    (pkg / "sensors" / "lazy.py").write_text("def g():\n    from pkg.operators.a import f\n")
    (pkg / "sensors" / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..operators import a\n"
    )
    (pkg / "hooks" / "lazy.py").write_text("def h():\n    from pkg.sensors import lazy\n")  # allowed: lazy
    (pkg / "hooks" / "top.py").write_text("from pkg.operators import a\n")
    rules = [("pkg.sensors", "pkg.operators", False), ("pkg.hooks", "pkg.operators", True)]
    rules.append(("pkg.hooks", "pkg.sensors", True))
    assert violations(pkg, rules) == [
        "pkg.hooks.top -> pkg.operators",
        "pkg.hooks.top -> pkg.operators.a",
        "pkg.sensors.lazy -> pkg.operators.a",
        "pkg.sensors.typed -> pkg.operators",
        "pkg.sensors.typed -> pkg.operators.a",
    ]


def test_the_client_core_runs_without_airflow(tmp_path: Path) -> None:
    """Every client module imports, and a request is sent and answered, with ``airflow`` unimportable."""
    import subprocess
    import sys

    script = tmp_path / "no_airflow.py"
    script.write_text(
        """
import importlib, pkgutil, sys

class NoAirflow:
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"{name} is blocked: the client core must not need Airflow")
        return None

sys.meta_path.insert(0, NoAirflow())
import httpx
import airflow_provider_baseten.client as client

for info in pkgutil.walk_packages(client.__path__, "airflow_provider_baseten.client."):
    importlib.import_module(info.name)
from airflow_provider_baseten.client.settings import Settings
from airflow_provider_baseten.client.transport import Transport

seen = []
def answer(request):
    seen.append(str(request.url))
    return httpx.Response(200, json={"models": []})

settings = Settings.from_extra(api_key="k-not-a-secret", host=None, extra={}, register_key=False)
transport = Transport(settings, transport=httpx.MockTransport(answer))
assert transport.request("list_models", {}) == {"models": []}, seen
assert not any(m == "airflow" or m.startswith("airflow.") for m in sys.modules)
print("ok", len(seen))
"""
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert run.returncode == 0 and run.stdout.startswith("ok 1"), run.stdout + run.stderr
