"""Dev-only tools stay out of the wheel (DESIGN.md, "Layers").

The wheel packages the ``airflow_provider_baseten`` folder and nothing else (pyproject's hatch wheel target),
so the demo runner and the local-Airflow harness live in the repository's ``dev/``; ``make wheel-check``
also checks the installed wheel's file list (scripts/wheel_check.py).
"""

from __future__ import annotations

from pathlib import Path

import airflow_provider_baseten

PACKAGE = Path(airflow_provider_baseten.__file__).parent
ROOT = PACKAGE.parent
DEV_ONLY = ("demo.py", "_local_airflow.py", "local_airflow.py")


def test_dev_only_tools_are_not_in_the_package() -> None:
    found = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if p.name in DEV_ONLY)
    assert found == [], f"dev-only tools belong in dev/, outside the wheel: {found}"
    assert (ROOT / "dev" / "demo.py").is_file() and (ROOT / "dev" / "local_airflow.py").is_file()


def test_the_wheel_holds_only_the_package_folder() -> None:
    # Read as text (tomllib is 3.11+): the hatch wheel target lists the package folder and adds nothing.
    text = (ROOT / "pyproject.toml").read_text()
    assert '[tool.hatch.build.targets.wheel]\npackages = ["airflow_provider_baseten"]\n' in text
    extra = [k for k in ("force-include", "only-include", "include =", "sources") if k in text]
    assert extra == [], f"the wheel would take more than the package folder: {extra}"


def test_the_package_never_imports_the_dev_tools() -> None:
    users = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if "from dev" in p.read_text()]
    assert users == [], f"package modules import dev/, which the wheel does not hold: {users}"
