"""``exampleinclude``: show the lines of an example DAG between ``# [START name]`` and ``# [END name]``.

Airflow's providers document each operator with code taken from a DAG that their tests run, through a directive
of the same name in Airflow's own docs tooling (not on PyPI). This is the same idea in one small directive, with
the same options, so the how-to pages read like Airflow's::

    .. exampleinclude:: /../example_dags/baseten_batch_inference.py
        :language: python
        :start-after: [START howto_operator_predict]
        :end-before: [END howto_operator_predict]

A missing file or marker is an error, not an empty block: a renamed marker must fail ``make docs``, or the page
would silently lose its code.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class ExampleInclude(SphinxDirective):
    """Include the marked region of an example file as a code block, dedented, with its source path as caption."""

    required_arguments = 1
    has_content = False
    option_spec = {
        "language": directives.unchanged,
        "start-after": directives.unchanged_required,
        "end-before": directives.unchanged_required,
        "dedent": directives.nonnegative_int,  # accepted for Airflow's spelling; the block is always dedented
    }

    def run(self) -> list[nodes.Node]:
        relative, path = self.env.relfn2path(self.arguments[0], self.env.docname)
        start = self.options.get("start-after")
        end = self.options.get("end-before")
        if not start or not end:
            raise self.error("exampleinclude needs :start-after: and :end-before: (the [START x] / [END x] markers)")
        file = Path(path)
        if not file.is_file():
            raise self.error(f"exampleinclude: no such file {self.arguments[0]} ({file})")
        self.env.note_dependency(relative)  # rebuild the page when the example changes
        lines = file.read_text().splitlines()
        first = _marker_line(lines, start)
        last = _marker_line(lines, end)
        if first is None or last is None or last <= first:
            missing = start if first is None else end
            raise self.error(f"exampleinclude: marker {missing!r} not found (in order) in {self.arguments[0]}")
        code = textwrap.dedent("\n".join(lines[first + 1 : last])).strip("\n")
        if not code:
            raise self.error(f"exampleinclude: nothing between {start!r} and {end!r} in {self.arguments[0]}")
        block = nodes.literal_block(code, code, language=self.options.get("language", "python"))
        self.set_source_info(block)
        shown = (
            str(file.relative_to(Path(self.env.srcdir).parent))
            if file.is_relative_to(Path(self.env.srcdir).parent)
            else file.name
        )
        caption = nodes.caption(shown, "", nodes.literal(shown, shown))
        container = nodes.container("", caption, block, classes=["literal-block-wrapper"], literal_block=True)
        return [container]


def _marker_line(lines: list[str], marker: str) -> int | None:
    """Index of the line that is a comment holding exactly ``marker`` (``# [START x]``), or None."""
    for index, line in enumerate(lines):
        if line.strip().lstrip("#").strip() == marker:
            return index
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("exampleinclude", ExampleInclude)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
