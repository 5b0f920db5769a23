"""The chaos report: one row per case (what it tried, what happened, what was lost), printed as a table.

Tests fill a :class:`Row` through the ``chaos_row`` fixture; ``conftest.py`` adds the test's outcome and
prints the table at the end of the session (always for ``make chaos``; with ``BASETEN_CHAOS_REPORT=1``
otherwise).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

ROWS: list[Row] = []


@dataclass
class Row:
    """One case of the report."""

    case: str
    tried: str = ""
    happened: str = ""
    lost: str = ""
    outcome: str = "?"
    metrics: dict[str, object] = field(default_factory=dict)


def table(rows: list[Row], width: int = 160) -> str:
    """A plain-text table of ``rows`` (cells wrapped, so it reads in a terminal and in a PR comment)."""
    heads = ("case", "what it tried", "what happened", "lost", "result")
    widths = [24, 44, 58, 22, 6]
    out = [_line(heads, widths), "-" * (sum(widths) + 3 * (len(widths) - 1))]
    for r in sorted(rows, key=_number):  # cases are numbered as in the issues (10.3 = issue 10, section 3)
        out.append(_line((r.case, r.tried, r.happened, r.lost, r.outcome), widths))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _number(row: Row) -> tuple[float, ...]:
    """``"10.3 kill"`` -> (10, 3): numeric order, so case 10 comes after case 9, not after case 1."""
    head = row.case.split(" ", 1)[0]
    try:
        return tuple(float(part) for part in head.split("."))
    except ValueError:
        return (float("inf"),)


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    wrapped = [textwrap.wrap(str(c), w) or [""] for c, w in zip(cells, widths, strict=True)]
    height = max(len(w) for w in wrapped)
    lines = []
    for i in range(height):
        parts = [(w[i] if i < len(w) else "").ljust(width) for w, width in zip(wrapped, widths, strict=True)]
        lines.append(" | ".join(parts).rstrip())
    return "\n".join(lines)
