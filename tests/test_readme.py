"""README examples outside the emulator section run as written, against the emulator."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).parents[1] / "README.md"


def _blocks() -> list[str]:
    text = README.read_text()
    start = text.index("## Test your DAGs without Baseten")  # those run in test_emulator_startup.py
    end = text.find("\n## ", start + 3)
    outside = text[:start] + (text[end:] if end != -1 else "")
    return re.findall(r"```python\n(.*?)```", outside, re.S)


def test_readme_has_python_examples() -> None:
    assert len(_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_python_example_runs(index: int, emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(os, "environ", dict(os.environ))
    code = _blocks()[index]
    exec(compile(code, f"{README}:python[{index}]", "exec"), {"__name__": "readme_example"})
    if "predict(" in code and "BasetenHook" in code:
        assert emulator.counters()["requests"]["production_predict"] == 1
    if "model_apis=True" in code:  # Model APIs reached once; the ambiguous model= alone was refused unsent
        assert emulator.counters()["requests"]["model_apis_request"] == 1
    if "deploy_model(" in code:  # the dry run creates nothing, the deploy one deployment (counted on the server)
        assert emulator.counters()["submissions"]["deployment"] == 1


def test_the_demo_output_shown_names_every_example_dag() -> None:
    """The ``make demo`` transcripts in the README list every DAG the demo runs, and their count."""
    from dev.demo import DAGS

    text = README.read_text()
    transcripts = re.findall(r"```console\n\$ [^\n]*make demo\n(.*?)```", text, re.S)
    assert len(transcripts) == 2
    for shown in transcripts:
        assert re.findall(r"^  (baseten_\w+) +success", shown, re.M) == list(DAGS)
        assert f"All {len(DAGS)} example DAGs succeeded" in shown


def test_every_operator_and_sensor_class_is_in_the_readme_table() -> None:
    """The "Operators and sensors" table names every public operator and sensor the provider lists."""
    import importlib
    import inspect

    from airflow.sdk import BaseOperator

    from airflow_provider_baseten import get_provider_info

    section = README.read_text().split("## Operators and sensors", 1)[1].split("\n## ", 1)[0]
    info = get_provider_info()
    missing = [
        name
        for kind in ("operators", "sensors")
        for module in info[kind][0]["python-modules"]
        for name, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass)
        if issubclass(cls, BaseOperator)
        and cls.__module__ == module
        and not name.startswith("_")
        and f"`{name}`" not in section
    ]
    assert missing == []
