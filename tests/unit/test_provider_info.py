"""Every public operator, sensor and trigger module is listed in ``get_provider_info`` (what ``airflow providers
get --full`` and the providers manager show); a module added without its line there would be invisible."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger

import airflow_provider_baseten
from airflow_provider_baseten import get_provider_info

KINDS = {"operators": BaseOperator, "sensors": BaseOperator, "triggers": BaseTrigger}


def defining_modules(package: str, base: type) -> set[str]:
    """Public modules of ``airflow_provider_baseten.<package>`` that define a public subclass of ``base``."""
    pkg = importlib.import_module(f"airflow_provider_baseten.{package}")
    found = set()
    for info in pkgutil.iter_modules(pkg.__path__, f"{pkg.__name__}."):
        if info.name.rsplit(".", 1)[1].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        if any(
            issubclass(cls, base) and cls.__module__ == module.__name__ and not name.startswith("_")
            for name, cls in inspect.getmembers(module, inspect.isclass)
        ):
            found.add(info.name)
    return found


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_public_module_is_listed(kind: str) -> None:
    listed = {m for entry in get_provider_info()[kind] for m in entry["python-modules"]}
    defining = defining_modules(kind, KINDS[kind])
    assert defining, f"no {kind} found: the scan is broken"
    assert defining <= listed, f"{kind} modules missing from get_provider_info: {sorted(defining - listed)}"
    for module in listed:  # and every listed module imports
        importlib.import_module(module)


def test_the_watchers_deploy_and_openai_modules_are_listed() -> None:
    info = get_provider_info()
    modules = {m for kind in KINDS for entry in info[kind] for m in entry["python-modules"]}
    for name in ("operators.deploy", "operators.openai", "triggers.watchers", "triggers.checkpoint"):
        assert f"airflow_provider_baseten.{name}" in modules
    assert info["versions"] == [airflow_provider_baseten.__version__]


def test_the_changelog_names_the_assets_and_watchers() -> None:
    from pathlib import Path

    from airflow_provider_baseten.triggers import watchers

    unreleased = (Path(__file__).parents[2] / "CHANGELOG.md").read_text().split("## [0.1.0]")[0]
    for name in ["baseten://", "environment_asset", *(n for n in watchers.__all__ if n != "WatcherTrigger")]:
        assert name in unreleased, name
