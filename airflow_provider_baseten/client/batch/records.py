"""A batch result record as the JSONL line that journals, JSONL results files and the Parquet merge all use.

One home for the line's shape, shared by :mod:`.sinks` (which writes and scans lines) and :mod:`.parquet`
(which turns Parquet rows back into lines).
"""

from __future__ import annotations

import json
from typing import Any


class RawJson(str):
    """JSON text already encoded: :func:`result_line` writes it as it is."""


def result_line(index: int, output: Any, error: str | None, carried: dict[str, Any] | None = None) -> bytes:
    """One results record as a JSONL line: ``{"index", "output"|"error", <passthrough columns>}``.

    The passthrough columns come last so a reader that only needs the index and whether the item succeeded
    (``sinks._scan``) finds both in the first bytes.
    """
    if error is not None:
        head = b'{"index":%d,"error":%s' % (index, json.dumps(error).encode())
    elif isinstance(output, RawJson):
        head = b'{"index":%d,"output":%s' % (index, output.encode())
    else:
        head = b'{"index":%d,"output":%s' % (index, json.dumps(output, separators=(",", ":")).encode())
    if carried:
        head += b"," + json.dumps(carried, separators=(",", ":")).encode()[1:-1]
    return head + b"}\n"
