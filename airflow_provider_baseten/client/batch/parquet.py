"""Parquet primitives of batch I/O: the lazy pyarrow import, and result files as Parquet rows.

Shared by the batch sink (a ``.parquet`` ``output_path``) and :mod:`airflow_provider_baseten.batch_io`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

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


def result_schema() -> Any:
    """The Parquet schema of a results file: ``index`` int64, ``output`` JSON text, ``error`` text."""
    pa, _ = pyarrow_modules()
    return pa.schema([("index", pa.int64()), ("output", pa.string()), ("error", pa.string())])


def parquet_result_lines(fh: Any) -> Iterator[bytes]:
    """The records of a Parquet results file as the JSONL lines the batch journal uses (streamed)."""
    for batch in open_parquet(fh).iter_batches(batch_size=ROWS_PER_BATCH, columns=list(RESULT_COLUMNS)):
        cols = batch.to_pydict()
        for index, output, error in zip(cols["index"], cols["output"], cols["error"], strict=True):
            if error is not None:
                yield b'{"index":%d,"error":%s}\n' % (index, json.dumps(error).encode())
            else:
                yield b'{"index":%d,"output":%s}\n' % (index, (output if output is not None else "null").encode())


class ParquetResultWriter:
    """Takes results as JSONL lines (``write``), writes them as Parquet rows, one row group per batch."""

    def __init__(self, fh: Any) -> None:
        self.rows = ParquetRowWriter(fh, result_schema())

    def write(self, line: bytes) -> None:
        rec = json.loads(line)
        if "output" in rec:
            row = {"index": rec["index"], "output": json.dumps(rec["output"], separators=(",", ":")), "error": None}
        else:
            row = {"index": rec["index"], "output": None, "error": rec.get("error")}
        self.rows.add(row)

    def close(self) -> None:
        """Write the last row group and the footer."""
        self.rows.close()

    finish = close  # what the batch sink calls when the merge ends
