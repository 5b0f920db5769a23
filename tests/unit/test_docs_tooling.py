"""The docs' tooling: the exampleinclude directive fails the build on a missing marker, the link check is offline."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def _load(name: str, path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


check_links = _load("check_links", ROOT / "scripts" / "check_links.py")

EXAMPLE = """with DAG("x") as dag:
    # [START howto_thing]
    thing = Thing(
        task_id="thing",
    )
    # [END howto_thing]
"""


def _build(tmp_path: Path, directive: str) -> tuple[int, str]:
    """Build a one-page site with ``sphinx-build -W`` and the docs' extension; (status, warnings)."""
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "example.py").write_text(EXAMPLE)
    ext = str(ROOT / "docs" / "_ext")
    (src / "conf.py").write_text(f"import sys\nsys.path.insert(0, {ext!r})\nextensions = ['exampleinclude']\n")
    (src / "index.rst").write_text(f"Page\n====\n\n{directive}\n")
    status = build_main(["-W", "-q", "-E", "-b", "html", str(src), str(tmp_path / "out")])
    return status, (tmp_path / "out" / "index.html").read_text() if status == 0 else ""


def _directive(marker: str, file: str = "/../example.py") -> str:
    return (
        f".. exampleinclude:: {file}\n    :language: python\n"
        f"    :start-after: [START {marker}]\n    :end-before: [END {marker}]\n"
    )


def test_exampleinclude_shows_the_marked_lines_dedented(tmp_path: Path) -> None:
    status, html = _build(tmp_path, _directive("howto_thing"))
    assert status == 0
    assert "Thing" in html and "task_id" in html and "[START" not in html and "with DAG" not in html


@pytest.mark.parametrize(("marker", "file"), [("howto_missing", "/../example.py"), ("howto_thing", "/../nope.py")])
def test_exampleinclude_fails_the_build_on_a_missing_marker_or_file(
    tmp_path: Path, marker: str, file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = _build(tmp_path, _directive(marker, file))
    assert status != 0
    assert ("howto_missing" if marker == "howto_missing" else "no such file") in capsys.readouterr().err


def test_the_readme_and_docs_links_resolve(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_links.main([]) == 0, capsys.readouterr().err


def test_the_link_check_finds_a_broken_link_anchor_and_code_path() -> None:
    readme = ROOT / "README.md"
    assert check_links.check_target(readme, "docs/no-such-page.md")
    assert check_links.check_target(readme, "docs/guides/testing.md#no-such-heading")
    assert check_links.check_target(readme, "docs/guides/testing.md#the-emulator") is None
    assert check_links.check_target(readme, check_links.REPO_URL + "tests/nope.py")
    assert check_links.check_target(readme, "https://example.com/anything") is None  # external: not fetched
    assert check_links.check_code_path("tests/unit/test_docs_tooling.py", "::test_nothing_by_this_name")
    assert (
        check_links.check_code_path("tests/unit/test_docs_tooling.py", "::test_the_readme_and_docs_links_resolve")
        is None
    )


def test_every_exampleinclude_in_the_docs_finds_its_markers() -> None:
    """What ``make docs`` would fail on, checked in ``make test`` too: a marker renamed in an example DAG."""
    ext = _load("exampleinclude", ROOT / "docs" / "_ext" / "exampleinclude.py")
    found = 0
    for page in (ROOT / "docs").rglob("*.md"):
        for path, start, end in re.findall(
            r"```\{exampleinclude\} (\S+)\n(?::\w+: .*\n)*?:start-after: \"(.*)\"\n:end-before: \"(.*)\"",
            page.read_text(),
        ):
            lines = (ROOT / "docs" / path.lstrip("/")).resolve().read_text().splitlines()
            first, last = ext._marker_line(lines, start), ext._marker_line(lines, end)
            assert first is not None and last is not None and first < last, (page, path, start)
            found += 1
    assert found >= 10


def test_every_module_the_provider_lists_is_in_the_api_reference() -> None:
    """A module added to the provider info (a new operator family) must get its API reference page entry."""
    from airflow_provider_baseten import get_provider_info

    info = get_provider_info()
    listed = {
        m for kind in ("operators", "sensors", "triggers", "hooks") for e in info[kind] for m in e["python-modules"]
    }
    documented = {
        m for page in (ROOT / "docs" / "api").glob("*.rst") for m in re.findall(r"automodule:: (\S+)", page.read_text())
    }
    assert sorted(listed - documented) == []
