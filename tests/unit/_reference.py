"""Parse the LowCodeAPI reference's "Complete Endpoint Reference" tables (tests/specs/...)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REFERENCE = Path(__file__).parents[1] / "specs" / "lowcodeapi-baseten-reference.md"

# The reference's table headings, and the category names the code's route table uses.
CATEGORIES = {
    "Inference Endpoints": "inference",
    "Model Management": "models",
    "Chains": "chains",
    "Deployments": "deployments",
    "Environments": "environments",
    "Secrets": "secrets",
    "API Keys": "api_keys",
    "Training": "training",
}
EXPECTED_COUNTS = {
    "inference": 14,
    "models": 3,
    "chains": 3,
    "deployments": 17,
    "environments": 4,
    "secrets": 2,
    "api_keys": 3,
    "training": 10,
}

_ROW = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*([^|]+?)\s*\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|\s*$")


@dataclass(frozen=True)
class Row:
    category: str
    method: str
    title: str
    new: str  # as printed (may carry a query, e.g. /v1/api_keys?prefix={prefix})
    old: str

    @property
    def is_documented_slip(self) -> bool:
        """The deactivate rows print the activate path (a known slip of the reference)."""
        return self.title.lower().startswith("deactivate") and self.new.endswith("/activate")

    def corrected(self) -> Row:
        """The row with the slip fixed: deactivate rows end in /deactivate."""
        if not self.is_documented_slip:
            return self
        fix = lambda p: p[: -len("/activate")] + "/deactivate"  # noqa: E731
        return Row(self.category, self.method, self.title, fix(self.new), fix(self.old))

    @staticmethod
    def split(url: str) -> tuple[str, dict[str, str]]:
        """``/a/b?x={x}`` -> (``/a/b``, ``{"x": "{x}"}``)."""
        path, _, query = url.partition("?")
        pairs = (p.split("=", 1) for p in query.split("&") if p)
        return path, {k: v for k, v in pairs}


@cache
def rows() -> tuple[Row, ...]:
    """Every row of the Complete Endpoint Reference tables, in order."""
    text = REFERENCE.read_text()
    start = text.index("## Complete Endpoint Reference")
    end = text.index("## API Definition Endpoints", start)
    category = None
    found: list[Row] = []
    for line in text[start:end].splitlines():
        if line.startswith("### "):
            category = CATEGORIES.get(line[4:].strip())
            continue
        m = _ROW.match(line.strip())
        if m and category:
            found.append(Row(category, m.group(1), m.group(2), m.group(3), m.group(4)))
    return tuple(found)
