"""What a batch's inputs were, in a few bytes: so a resume or a retry never matches results to other inputs.

A fingerprint is a small JSON-able dict: ``count`` (inputs), ``size`` (bytes hashed: the JSON encoding of a
list, or the file) and ``sha256`` (the first 16 hex digits). ``predict_batch(output_path=...)`` writes it
into its journal and beside the results file; ``resume=True`` compares it before anything is sent.
``AsyncPredictOperator``'s submit log keys its stored request ids by :func:`digest_json` of its inputs too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from airflow_provider_baseten.client.transport import encode_json

Fingerprint = dict[str, Any]

_ENDS = 1 << 20  # a file too costly to read twice is hashed by its size and its first and last MiB


def digest_json(values: Iterable[Any]) -> tuple[str, int, int]:
    """``(sha256[:16], count, size)`` of the JSON list of ``values``, encoded one value at a time.

    The digest equals ``sha256(encode_json(list(values)))`` without building the whole encoding in memory.
    """
    digest = hashlib.sha256(b"[")
    count = size = 0
    for value in values:
        data = encode_json(value, f"inputs[{count}]")
        digest.update(b"," + data if count else data)
        count += 1
        size += len(data)
    digest.update(b"]")
    return digest.hexdigest()[:16], count, size


def of_values(values: Iterable[Any]) -> Fingerprint:
    """The fingerprint of inputs given as a list."""
    sha, count, size = digest_json(values)
    return {"count": count, "size": size, "sha256": sha}


class LineHasher:
    """Fingerprint a file's input lines while they are read (the check that reads them all anyway)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.count = self.size = 0

    def add(self, line: bytes) -> None:
        self.digest.update(line.rstrip(b"\r\n") + b"\n")  # line endings are not the inputs
        self.count += 1
        self.size += len(line)

    def result(self) -> Fingerprint:
        return {"count": self.count, "size": self.size, "sha256": self.digest.hexdigest()[:16]}


def of_file_ends(fh: Any, count: int) -> Fingerprint:
    """The fingerprint of a file read by row groups (Parquet): its size and first and last MiB."""
    digest = hashlib.sha256(head := fh.read(_ENDS))
    size = len(head)
    if size == _ENDS:
        size = fh.seek(0, 2)
        fh.seek(max(_ENDS, size - _ENDS))
        digest.update(fh.read())
    return {"count": count, "size": size, "sha256": digest.hexdigest()[:16]}


def describe(fingerprint: Fingerprint | None) -> str:
    """``count=... size=... sha256=...`` (and any other key), for messages."""
    if fingerprint is None:
        return "unknown"
    return " ".join(f"{k}={v}" for k, v in fingerprint.items())
