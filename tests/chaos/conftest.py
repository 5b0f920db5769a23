"""Chaos suite plumbing: the ``chaos_row`` fixture and the final report table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chaos.report import ROWS, Row, table


@pytest.fixture
def chaos_row(request: pytest.FixtureRequest) -> Iterator[Row]:
    """A report row for this test; the outcome (PASS/FAIL) is filled in after the test."""
    row = Row(case=request.node.name)
    request.node._chaos_row = row
    yield row


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    row = getattr(item, "_chaos_row", None)
    if row is not None and report.when == "call":
        row.outcome = "PASS" if report.passed else ("SKIP" if report.skipped else "FAIL")
        if report.failed and not row.happened:
            row.happened = str(call.excinfo.value)[:300] if call.excinfo else "failed"
        ROWS.append(row)
    elif row is not None and report.when == "setup" and report.skipped:
        row.outcome = "SKIP"
        row.happened = row.happened or str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else "")
        ROWS.append(row)
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    markexpr = config.option.markexpr or ""
    chaos_run = os.environ.get("BASETEN_CHAOS_REPORT") == "1" or ("chaos" in markexpr and "not chaos" not in markexpr)
    if not ROWS or not chaos_run:
        return
    text = table(ROWS)
    terminalreporter.write_sep("=", "Baseten chaos report")
    terminalreporter.write(text)
    lost = [r for r in ROWS if r.outcome != "PASS"]
    terminalreporter.write_line(
        f"{len(ROWS)} case(s), {len(ROWS) - len(lost)} passed"
        + (
            f"; NOT passing: {', '.join(r.case for r in lost)}"
            if lost
            else "; zero losses, zero duplicate submissions, zero leaked secrets"
        )
    )
    path = os.environ.get("BASETEN_CHAOS_REPORT_FILE")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
