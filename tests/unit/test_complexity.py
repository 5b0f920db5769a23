"""No function in the package is rated D or worse by radon (cyclomatic complexity above 20).

A function that branches that much hides its rules; split it into small plain functions instead (as
``Settings.from_extra`` was: one function per connection field). Skipped where radon is not installed
(``uv pip install radon``); ``radon cc -s -n D airflow_provider_baseten`` gives the same answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import airflow_provider_baseten

radon = pytest.importorskip("radon.complexity")
from radon.visitors import Function  # noqa: E402  (after the skip: radon is optional)

PACKAGE = Path(airflow_provider_baseten.__file__).parent
WORST = 20  # radon's grade C ends at 20; D starts at 21


def test_no_function_is_rated_d_or_worse() -> None:
    too_complex = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for block in radon.cc_visit(path.read_text()):
            for item in (block, *getattr(block, "methods", ())):  # a class's methods are inside its block
                if isinstance(item, Function) and item.complexity > WORST:
                    too_complex.add(f"{path.relative_to(PACKAGE)}:{item.lineno} {item.fullname} ({item.complexity})")
    assert not too_complex, "split these into smaller functions:\n" + "\n".join(sorted(too_complex))
