"""Parquet primitives of batch I/O: the lazy pyarrow import, and result files as Parquet rows.

Shared by the batch sink (a ``.parquet`` ``output_path``) and :mod:`airflow_provider_baseten.batch_io`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from airflow_provider_baseten.client.batch.records import RawJson, result_line

ROWS_PER_BATCH = 8192  # rows per Parquet record batch read or written: the unit that bounds memory

PARQUET_INSTALL_HINT = "pip install 'airflow-provider-baseten[parquet]'"


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` that adds it."""


def pyarrow_modules() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or :class:`MissingExtraError` naming the extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise MissingExtraError(
            f"Parquet input and output need pyarrow, which is not installed: {PARQUET_INSTALL_HINT}"
        ) from None
    return pyarrow, pyarrow.parquet


READ_BUFFER = 1 << 20  # bytes read at a time from a column chunk


def open_parquet(fh: Any) -> Any:
    """``pyarrow.parquet.ParquetFile`` that reads through a small buffer, so memory stays flat.

    pyarrow's defaults keep what they read: ``pre_buffer`` caches every row group's column chunks read so far
    (memory grows with the file), and without ``buffer_size`` a whole column chunk is read at once (memory
    grows with the row group). Measured on a 207 MB file of one row group: 300 MB peak by default, 116 MB so.
    """
    _, pq = pyarrow_modules()
    return pq.ParquetFile(fh, pre_buffer=False, buffer_size=READ_BUFFER)


class ParquetRowWriter:
    """Write dict rows to a Parquet file, ``ROWS_PER_BATCH`` at a time; the schema comes from the first rows."""

    def __init__(self, fh: Any, schema: Any = None) -> None:
        self.pa, self.pq = pyarrow_modules()
        self.fh = fh
        self.schema = schema
        self.writer: Any = None
        self.rows: list[Any] = []
        self.count = 0
        self.columns: set[str] | None = set(schema.names) if schema is not None else None

    def add(self, row: Any) -> None:
        """Queue one dict row; a key that is not a column (of the schema, or of the first row) is refused."""
        if self.columns is None:
            self.columns = set(row)
        elif not self.columns.issuperset(row):
            from airflow_provider_baseten.exceptions import BasetenValidationError

            extra = sorted(set(row) - self.columns)
            raise BasetenValidationError(
                f"Parquet row {self.count + len(self.rows)} has key(s) {extra} that are not columns of the file "
                f"({sorted(self.columns)}, from the schema or the first row); they would be dropped. Give every "
                "column in the first row, or pass schema=.",
                field="records",
            )
        self.rows.append(row)
        if len(self.rows) >= ROWS_PER_BATCH:
            self.flush()

    def flush(self) -> None:
        """Write the queued rows as one row group."""
        if not self.rows:
            return
        try:
            table = self.pa.Table.from_pylist(self.rows, schema=self.schema)
        except (self.pa.ArrowInvalid, self.pa.ArrowTypeError) as exc:
            from airflow_provider_baseten.exceptions import BasetenValidationError

            raise BasetenValidationError(
                f"Parquet rows {self.count}-{self.count + len(self.rows) - 1} do not fit the file's column types "
                f"({exc}); the types come from the first rows unless schema= is given.",
                field="records",
            ) from None
        if self.writer is None:
            self.schema = table.schema
            self.writer = self.pq.ParquetWriter(self.fh, self.schema)
        self.writer.write_table(table)
        self.count += len(self.rows)
        self.rows = []

    def discard(self) -> None:
        """After a failure: drop the queued rows and close the Parquet writer (the file is thrown away)."""
        self.rows = []
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self) -> None:
        """Write the last row group and the footer (an empty file still gets its schema)."""
        self.flush()
        if self.writer is None and self.schema is not None:  # no rows: still a valid, empty file
            self.writer = self.pq.ParquetWriter(self.fh, self.schema)
        if self.writer is not None:
            self.writer.close()


RESULT_COLUMNS = ("index", "output", "error")


def result_schema(vectors: bool = False, carried: dict[str, Any] | None = None) -> Any:
    """The Parquet schema of a results file, one row per input in input order.

    - ``index`` int64: the input's position.
    - the ``passthrough_columns``, in the order given, between ``index`` and ``output``: each typed from its
      values (:func:`carried_type`: int64, double, bool or string; a column of nested or mixed values is a
      string holding each non-string value's JSON text).
    - ``output``: for embeddings (``vectors``) ``list<float>`` (float32: one vector per text, ready for a
      vector store); for every other batch (predict, chat completions, chains) the output as JSON text.
      Null on error.
    - ``error`` string: null on success.

    float32 rather than float64 because an embedding is float32 at its source: models compute and
    OpenAI's ``encoding_format="base64"`` sends float32, so float64 would double the file for digits
    the model never had, and vector stores (pgvector, FAISS, LanceDB) take float32.
    """
    pa, _ = pyarrow_modules()
    output = pa.list_(pa.float32()) if vectors else pa.string()
    columns = [("index", pa.int64())]
    columns += list((carried or {}).items())
    columns += [("output", output), ("error", pa.string())]
    return pa.schema(columns)


def _kind(value: Any) -> str:
    """The JSON kind of one passthrough value, for :func:`carried_type`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


class CarriedKinds:
    """The JSON kinds of each passthrough column's values, collected from result lines (``write``)."""

    def __init__(self, columns: list[str]) -> None:
        self.kinds: dict[str, set[str]] = {c: set() for c in columns}

    def write(self, line: bytes) -> None:
        rec = json.loads(line)
        for column, kinds in self.kinds.items():
            kinds.add(_kind(rec.get(column)))

    def types(self) -> dict[str, Any]:
        """Each column's Arrow type (:func:`carried_type`)."""
        return {c: carried_type(k) for c, k in self.kinds.items()}


def carried_type(kinds: set[str]) -> Any:
    """The Arrow type of a passthrough column whose values have these JSON kinds (nulls fit any type).

    One kind: int64, double, bool or string; ints and floats: double; anything else (nested values, or
    kinds that do not mix, e.g. ints and strings): string, strings as they are and other values as their JSON
    text.
    """
    pa, _ = pyarrow_modules()
    kinds = kinds - {"null"}
    if kinds <= {"int"}:
        return pa.int64() if kinds else pa.string()
    if kinds <= {"int", "float"}:
        return pa.float64()
    if kinds == {"bool"}:
        return pa.bool_()
    if kinds == {"str"}:
        return pa.string()
    return pa.string()  # written as JSON text (see ParquetResultWriter.write)


def _decode_vector(value: Any) -> Any:
    """A vector as a list of floats: OpenAI's ``encoding_format="base64"`` is little-endian float32 bytes."""
    if isinstance(value, str):
        import array
        import base64
        import sys

        floats = array.array("f", base64.b64decode(value))
        if sys.byteorder == "big":
            floats.byteswap()
        return floats.tolist()
    return value


def parquet_result_lines(fh: Any) -> Iterator[bytes]:
    """The records of a Parquet results file as the JSONL lines the batch journal uses (streamed).

    The passthrough columns (any column but ``index``, ``output`` and ``error``) follow ``output`` or
    ``error`` in each line, as :func:`result_line` writes them; a ``list<float>`` output becomes a JSON array.
    """
    pf = open_parquet(fh)
    names = pf.schema_arrow.names
    carried = [n for n in names if n not in RESULT_COLUMNS]
    text_output = str(pf.schema_arrow.field("output").type) == "string"
    for batch in pf.iter_batches(batch_size=ROWS_PER_BATCH, columns=["index", *carried, "output", "error"]):
        cols = batch.to_pydict()
        for i, (index, output, error) in enumerate(zip(cols["index"], cols["output"], cols["error"], strict=True)):
            extra = {c: cols[c][i] for c in carried}
            if error is not None:
                yield result_line(index, None, error, extra)
            elif text_output:
                yield result_line(index, RawJson(output if output is not None else "null"), None, extra)
            else:
                yield result_line(index, output, None, extra)


class ParquetResultWriter:
    """Takes results as JSONL lines (``write``), writes them as Parquet rows (:func:`result_schema`), one row
    group per batch.

    :param vectors: The outputs are embeddings: a ``list<float>`` column (base64 ones are decoded).
    :param carried: The passthrough columns and their Arrow types (:class:`CarriedKinds`).
    """

    def __init__(self, fh: Any, vectors: bool = False, carried: dict[str, Any] | None = None) -> None:
        self.vectors = vectors
        self.carried = carried or {}
        pa, _ = pyarrow_modules()
        # A string column of mixed or nested values holds each non-string value's JSON text.
        self.as_json = [c for c, t in self.carried.items() if t == pa.string()]
        self.rows = ParquetRowWriter(fh, result_schema(vectors, self.carried))

    def write(self, line: bytes) -> None:
        rec = json.loads(line)
        row = {c: rec.get(c) for c in self.carried}
        for c in self.as_json:
            if row[c] is not None and not isinstance(row[c], str):
                row[c] = json.dumps(row[c], separators=(",", ":"))
        if "output" in rec:
            out = rec["output"]
            out = _decode_vector(out) if self.vectors else json.dumps(out, separators=(",", ":"))
            row.update({"index": rec["index"], "output": out, "error": None})
        else:
            row.update({"index": rec["index"], "output": None, "error": rec.get("error")})
        self.rows.add(row)

    def close(self) -> None:
        """Write the last row group and the footer."""
        self.rows.close()

    finish = close  # what the batch sink calls when the merge ends
