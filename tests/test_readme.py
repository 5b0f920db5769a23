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
