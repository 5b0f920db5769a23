"""The Python examples of the README and of every docs page run as written, against the emulator.

Code blocks are collected from README.md and docs/ (```python fences in Markdown, ``.. code-block:: python``
in reStructuredText). The emulator's own section of the testing guide starts emulators of its own and runs in
tests/integration/test_emulator_startup.py. A block that is a DAG file with an ``if __name__ == "__main__":``
part (it runs ``dag.test()``) is written to the DAGs folder and run as a script, as its reader would; it takes
tens of seconds, so it runs with the real-Airflow tests (``make e2e``), not in ``make test``.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# Run by tests/integration/test_emulator_startup.py: (page, heading of the section).
EMULATOR_SECTION = (DOCS / "guides" / "testing.md", "## The emulator\n")


def _section(text: str, heading: str) -> tuple[int, int]:
    """Where the Markdown section starting at ``heading`` begins and ends (at the next heading of its level)."""
    start = text.index(heading)
    end = text.find("\n" + heading.split(" ", 1)[0] + " ", start + len(heading))
    return start, end if end != -1 else len(text)


def _page_blocks(page: Path) -> list[str]:
    text = page.read_text()
    if page == EMULATOR_SECTION[0]:
        start, end = _section(text, EMULATOR_SECTION[1])
        text = text[:start] + text[end:]
    if page.suffix == ".rst":
        blocks = re.findall(r"^( *)\.\. code-block:: python\n((?:\1 +.*\n|\s*\n)+)", text, re.M)
        return [textwrap.dedent(body).strip() + "\n" for _, body in blocks]
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def _pages() -> list[Path]:
    return [README, *sorted(p for p in DOCS.rglob("*") if p.suffix in (".md", ".rst") and "_build" not in p.parts)]


def _blocks() -> list[Any]:
    """Every Python example, as a pytest param named after its page; DAG files with a main part are slow."""
    params = []
    for page in _pages():
        for index, code in enumerate(_page_blocks(page)):
            name = f"{page.relative_to(ROOT)}:{index}"
            slow = 'if __name__ == "__main__":' in code
            marks = [pytest.mark.airflow_e2e] if slow else []
            params.append(pytest.param(page, index, code, id=name, marks=marks))
    return params


def test_readme_and_docs_have_python_examples() -> None:
    assert len([p for p in _blocks() if p.values[0] == README]) >= 1
    assert len(_blocks()) >= 10


@pytest.mark.parametrize(("page", "index", "code"), _blocks())
def test_python_example_runs(page: Path, index: int, code: str, emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(os, "environ", dict(os.environ))
    where = f"{page}:python[{index}]"
    if 'if __name__ == "__main__":' in code:  # a DAG file: dag.test() needs it in the DAGs folder, as a file
        from tests.dag_support import ensure_db

        ensure_db()
        folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / f"docs_example_{page.stem}_{index}.py"
        file.write_text(code)
        exec(compile(code, str(file), "exec"), {"__name__": "__main__", "__file__": str(file)})
        return
    exec(compile(code, where, "exec"), {"__name__": "docs_example"})
    if "predict(" in code and "BasetenHook" in code:
        name = "regional_predict" if "regional=True" in code else "production_predict"
        assert emulator.counters()["requests"][name] == 1
    if "model_apis=True" in code and "BasetenHook" in code:  # Model APIs reached once; model= alone refused unsent
        assert emulator.counters()["requests"]["model_apis_request"] == 1
    if "deploy_model(" in code:  # the dry run creates nothing, the deploy one deployment (counted on the server)
        assert emulator.counters()["submissions"]["deployment"] == 1


def test_the_demo_output_shown_names_every_example_dag() -> None:
    """The ``make demo`` transcript in the docs lists every DAG the demo runs, and their count."""
    from dev.demo import DAGS

    text = (DOCS / "example-dags.md").read_text()
    transcripts = re.findall(r"```console\n\$ [^\n]*make demo\n(.*?)```", text, re.S)
    assert len(transcripts) == 1
    for shown in transcripts:
        assert re.findall(r"^  (baseten_\w+) +success", shown, re.M) == list(DAGS)
        assert f"All {len(DAGS)} example DAGs succeeded" in shown


def test_every_operator_and_sensor_class_is_in_the_operators_table() -> None:
    """The table of docs/operators/index.md names every public operator and sensor the provider lists."""
    import importlib
    import inspect

    from airflow.sdk import BaseOperator

    from airflow_provider_baseten import get_provider_info

    section = (DOCS / "operators" / "index.md").read_text()
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


def test_every_how_to_page_is_in_the_toctree() -> None:
    """A how-to page left out of docs/operators/index.md's toctree would be built but never linked."""
    index = (DOCS / "operators" / "index.md").read_text()
    toctree = index.split("```{toctree}", 1)[1].split("```", 1)[0]
    pages = {p.stem for p in (DOCS / "operators").glob("*.md")} - {"index"}
    assert pages <= set(toctree.split())
