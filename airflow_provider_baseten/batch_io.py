"""Batch inputs and outputs as JSONL or Parquet, local or on object storage, streamed; and sharding.

Everything here streams: a file is read line by line (JSONL) or row group by row group (Parquet) and
written the same way, so memory stays flat however large the file. Paths are local paths (``str`` or
``pathlib.Path``) or ``ObjectStoragePath`` (``s3://...``, ``file://...``); a string with ``://`` is
opened as an ``ObjectStoragePath``. The format follows the file name: ``.parquet`` is Parquet, anything
else JSONL. Parquet needs the optional extra: ``pip install 'airflow-provider-baseten[parquet]'``.

Results files (what ``predict_batch(output_path=...)`` writes) hold one record per input, in input order:
JSONL lines ``{"index": i, "output": ...}`` or ``{"index": i, "error": "..."}`` (plus any
``passthrough_columns``); in Parquet the columns ``index`` (int64), the passthrough columns, ``output`` (the
output as JSON text, or for embeddings a ``list<float>`` vector; null on error) and ``error`` (null on
success): :func:`airflow_provider_baseten.client.batch.parquet.result_schema`.

Sharding, to spread one batch over many Airflow workers (mapped tasks)::

    shards = split_input("s3://bucket/in.jsonl", "s3://bucket/run-1/", rows_per_shard=100_000)
    # one mapped PredictOperator per shard: model_inputs=shard.path, output_path=shard.output_path
    merge_outputs(shards, "s3://bucket/run-1/predictions.jsonl")  # global indices, input order
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_baseten.client.batch.parquet import (
    PARQUET_INSTALL_HINT,
    RESULT_COLUMNS,
    CarriedKinds,
    MissingExtraError,
    ParquetResultWriter,
    ParquetRowWriter,
    open_parquet,
    parquet_result_lines,
    pyarrow_modules,
)
from airflow_provider_baseten.client.batch.sinks import _exists, _open, jsonl_lines, read_jsonl
from airflow_provider_baseten.client.checks import int_in
from airflow_provider_baseten.exceptions import BasetenValidationError

__all__ = [
    "PARQUET_INSTALL_HINT",
    "MissingExtraError",
    "Shard",
    "count_records",
    "is_parquet",
    "merge_outputs",
    "parquet_columns",
    "parquet_schema",
    "read_records",
    "read_results",
    "split_input",
    "write_records",
]

ROWS_PER_BATCH = 8192  # rows per Parquet record batch read: the unit that bounds memory


def as_path(value: Any) -> Any:
    """A string with ``://`` becomes an ``ObjectStoragePath``; anything else is returned as it is."""
    if isinstance(value, str) and "://" in value:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        return ObjectStoragePath(value)
    return value


def is_parquet(path: Any) -> bool:
    """Whether ``path`` names a Parquet file (its name ends in ``.parquet``)."""
    return str(path).lower().endswith(".parquet")


def _join(directory: Any, name: str) -> Any:
    directory = as_path(directory)
    if hasattr(directory, "joinpath"):
        return directory.joinpath(name)
    return os.path.join(os.fsdecode(directory), name)


def _makedirs(directory: Any) -> None:
    directory = as_path(directory)
    if hasattr(directory, "mkdir"):
        directory.mkdir(parents=True, exist_ok=True)
    else:
        os.makedirs(directory, exist_ok=True)


# -- records ---------------------------------------------------------------------------------------
def _parquet_batches(path: Any, batch_size: int = ROWS_PER_BATCH) -> Iterator[Any]:
    """The record batches of a Parquet file, read one row group's slice at a time."""
    pyarrow_modules()  # a missing extra is named before the file is opened
    with _open(as_path(path), "rb") as fh:
        yield from _parquet_file(path, fh).iter_batches(batch_size=batch_size)


def _parquet_file(path: Any, fh: Any) -> Any:
    """``pyarrow.parquet.ParquetFile`` of an open file; one that is not Parquet is a :class:`BasetenValidationError`."""
    pa, _ = pyarrow_modules()
    try:
        return open_parquet(fh)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BasetenValidationError(f"{path}: not a readable Parquet file ({exc}).", field="path") from None


def read_records(path: Any) -> Iterator[Any]:
    """Stream the records of a JSONL file (one JSON value per line) or a Parquet file (one dict per row).

    JSONL is checked as it is read (a blank line in the middle or invalid JSON is a
    :class:`BasetenValidationError` naming the line), as in ``PredictOperator``.
    """
    if is_parquet(path):
        for batch in _parquet_batches(path):
            yield from batch.to_pylist()
    else:
        yield from read_jsonl(as_path(path))


def count_records(path: Any) -> int:
    """The number of records: Parquet from its footer (nothing else read); JSONL by reading (and checking) it."""
    if is_parquet(path):
        pyarrow_modules()
        with _open(as_path(path), "rb") as fh:
            return int(_parquet_file(path, fh).metadata.num_rows)
    return sum(1 for _ in read_jsonl(as_path(path)))


def parquet_columns(path: Any) -> list[str]:
    """The column names of a Parquet file, from its footer (no row is read)."""
    return list(parquet_schema(path).names)


def parquet_schema(path: Any) -> Any:
    """The ``pyarrow.Schema`` of a Parquet file, from its footer (no row is read)."""
    pyarrow_modules()
    with _open(as_path(path), "rb") as fh:
        return _parquet_file(path, fh).schema_arrow


def write_records(path: Any, records: Iterable[Any], *, schema: Any = None) -> int:
    """Write ``records`` to a JSONL file (one JSON value per line) or a Parquet file (dict rows); return the count.

    Streamed: Parquet is written ``ROWS_PER_BATCH`` rows (one row group) at a time, with the schema of the
    first rows unless a ``pyarrow.Schema`` is given.
    """
    path = as_path(path)
    count = 0
    if is_parquet(path):
        with _replacing(path) as fh:
            writer = ParquetRowWriter(fh, schema)
            try:
                for record in records:
                    if not isinstance(record, Mapping):
                        raise BasetenValidationError(
                            f"Parquet rows must be dicts (one column per key), got {type(record).__name__}.",
                            field="records",
                        )
                    writer.add(dict(record))
                writer.close()
            except BaseException:
                writer.discard()
                raise
            return writer.count
    with _replacing(path) as fh:
        for record in records:
            fh.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
            count += 1
    return count


@contextlib.contextmanager
def _replacing(dest: Any) -> Iterator[Any]:
    """Write ``dest`` + ``.tmp`` (binary); it replaces ``dest`` when the block ends, and is removed if it fails.

    So ``dest`` is never left half written: it holds the old file or the whole new one.
    """
    tmp = dest.with_name(dest.name + ".tmp") if hasattr(dest, "with_name") else os.fsdecode(dest) + ".tmp"
    try:
        with _open(tmp, "wb") as fh:
            yield fh
    except BaseException:
        with contextlib.suppress(Exception):
            tmp.unlink() if hasattr(tmp, "unlink") else os.unlink(tmp)
        raise
    if hasattr(tmp, "rename"):
        tmp.rename(dest)
    else:
        os.replace(tmp, dest)


# -- results ---------------------------------------------------------------------------------------
def read_results(path: Any) -> Iterator[dict[str, Any]]:
    """Stream a results file: ``{"index": i, "output": ...}`` or ``{"index": i, "error": ...}`` per input."""
    path = as_path(path)
    if is_parquet(path):
        with _open(path, "rb") as fh:
            for line in parquet_result_lines(fh):
                yield json.loads(line)
    else:
        with _open(path, "rb") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


# -- sharding --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """One part of a split input: its file, its global index range ``[start, stop)``, and its output file.

    ``kwargs()`` is what a mapped ``PredictOperator`` needs (``model_inputs``, ``output_path``); a shard
    travels through XCom as ``as_dict()`` and comes back with :meth:`from_dict`.
    """

    number: int
    path: str
    start: int
    stop: int
    output_path: str

    @property
    def rows(self) -> int:
        """How many inputs the shard holds."""
        return self.stop - self.start

    @property
    def name(self) -> str:
        """A short label for the UI (``map_index_template``): ``shard 3 [3000, 4000)``."""
        return f"shard {self.number} [{self.start}, {self.stop})"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for XCom), with ``rows`` and ``name`` for convenience."""
        return {**asdict(self), "rows": self.rows, "name": self.name}

    def kwargs(self) -> dict[str, Any]:
        """The per-shard arguments of a mapped ``PredictOperator`` (``expand_kwargs``)."""
        return {"model_inputs": self.path, "output_path": self.output_path}

    @classmethod
    def from_dict(cls, data: Shard | Mapping[str, Any]) -> Shard:
        """A :class:`Shard` from its ``as_dict()`` (or a shard itself)."""
        if isinstance(data, Shard):
            return data
        return cls(
            number=int(data["number"]),
            path=str(data["path"]),
            start=int(data["start"]),
            stop=int(data["stop"]),
            output_path=str(data["output_path"]),
        )


def split_input(
    path: Any,
    shard_dir: Any,
    *,
    rows_per_shard: int | None = None,
    bytes_per_shard: int | None = None,
    output_format: str | None = None,
) -> list[Shard]:
    """Split a JSONL or Parquet input into shards in ``shard_dir``, streaming; return them in order.

    Give exactly one of ``rows_per_shard`` or ``bytes_per_shard`` (a shard closes once it holds that many
    bytes: JSONL bytes, or for Parquet the rows' in-memory Arrow size; every shard has at least one row).
    Shards keep the input's format: ``part-00000.jsonl``... or ``part-00000.parquet``..., and each names
    its global index range and its output file (``part-00000.out.jsonl``, or ``.out.parquet`` with
    ``output_format="parquet"``). A manifest of all shards is written to ``shard_dir/shards.json``.
    """
    if (rows_per_shard is None) == (bytes_per_shard is None):
        raise BasetenValidationError("Give exactly one of rows_per_shard or bytes_per_shard.", field="rows_per_shard")
    if rows_per_shard is not None:
        limit = int_in("rows_per_shard", rows_per_shard, 1)
    else:
        limit = int_in("bytes_per_shard", bytes_per_shard, 1)
    out_ext = {None: ".jsonl", "jsonl": ".jsonl", "parquet": ".parquet"}.get(output_format)
    if out_ext is None:
        raise BasetenValidationError(
            f"output_format must be 'jsonl' or 'parquet', got {output_format!r}.", field="output_format"
        )
    src = as_path(path)
    if not _exists(src):
        raise BasetenValidationError(f"{path}: no such input file.", field="path")
    _makedirs(shard_dir)
    parquet = is_parquet(src)
    ext = ".parquet" if parquet else ".jsonl"
    by_rows = rows_per_shard is not None

    def shard(number: int, start: int, stop: int) -> Shard:
        return Shard(
            number=number,
            path=str(_join(shard_dir, f"part-{number:05d}{ext}")),
            start=start,
            stop=stop,
            output_path=str(_join(shard_dir, f"part-{number:05d}.out{out_ext}")),
        )

    splitter = _split_parquet if parquet else _split_jsonl
    shards = splitter(src, shard_dir, ext, limit, by_rows, shard)
    if not shards:
        raise BasetenValidationError(f"{path}: the input has no records.", field="path")
    with _open(_join(shard_dir, "shards.json"), "w") as fh:
        fh.write(json.dumps([s.as_dict() for s in shards], indent=1))
    return shards


def _split_jsonl(src: Any, shard_dir: Any, ext: str, limit: int, by_rows: bool, shard: Any) -> list[Shard]:
    shards: list[Shard] = []
    out: Any = None
    start = n = size = 0
    try:
        for line, _ in jsonl_lines(src):
            if out is None:
                out = _open(_join(shard_dir, f"part-{len(shards):05d}{ext}"), "wb")
                start, size = n, 0
            data = line if line.endswith(b"\n") else line + b"\n"
            out.write(data)
            n += 1
            size += len(data)
            if (n - start if by_rows else size) >= limit:
                out.close()
                out = None
                shards.append(shard(len(shards), start, n))
        if out is not None:
            out.close()
            out = None
            shards.append(shard(len(shards), start, n))
    finally:
        if out is not None:
            out.close()
    return shards


def _split_parquet(src: Any, shard_dir: Any, ext: str, limit: int, by_rows: bool, shard: Any) -> list[Shard]:
    _, pq = pyarrow_modules()
    shards: list[Shard] = []
    fh: Any = None
    writer: Any = None
    start = n = size = 0

    def close() -> None:
        nonlocal fh, writer
        writer.close()
        fh.close()
        fh = writer = None
        shards.append(shard(len(shards), start, n))

    try:
        for batch in _parquet_batches(src, min(limit, ROWS_PER_BATCH) if by_rows else ROWS_PER_BATCH):
            offset = 0
            while offset < batch.num_rows:
                if writer is None:
                    fh = _open(_join(shard_dir, f"part-{len(shards):05d}{ext}"), "wb")
                    writer = pq.ParquetWriter(fh, batch.schema)
                    start, size = n, 0
                if by_rows:
                    take = min(limit - (n - start), batch.num_rows - offset)
                else:  # by bytes: at least one row, then as many as fit (Arrow's in-memory size)
                    per_row = max(1, batch.nbytes // max(1, batch.num_rows))
                    take = min(max(1, (limit - size) // per_row), batch.num_rows - offset)
                piece = batch.slice(offset, take)
                writer.write_batch(piece)
                offset += take
                n += take
                size += piece.nbytes
                if (n - start if by_rows else size) >= limit:
                    close()
        if writer is not None:
            close()
    finally:
        if writer is not None:
            writer.close()
            fh.close()
    return shards


def merge_outputs(shards: Sequence[Shard | Mapping[str, Any]], dest: Any) -> int:
    """Merge the shards' output files into ``dest``, in order, with global indices; return the count.

    Each shard's output holds local indices ``0..rows-1`` (what ``predict_batch`` writes for the shard's
    input); in ``dest`` record ``i`` of shard ``s`` has index ``s.start + i``. A shard whose output does
    not hold exactly its ``rows`` records, in order, is a :class:`BasetenValidationError` (nothing is
    lost silently). ``dest`` is JSONL or Parquet by its name, whatever the shards' formats; JSONL lines
    are copied byte for byte apart from the index. Streamed; written to ``dest`` + ``.tmp`` and renamed.
    A Parquet ``dest`` has the first shard's layout: its passthrough columns (typed from every shard's
    values, read in a first pass) and, when its output is a Parquet ``list<float>`` column, vectors.
    """
    parts = sorted((Shard.from_dict(s) for s in shards), key=lambda s: s.start)
    expected = 0
    for part in parts:
        if part.start != expected:
            raise BasetenValidationError(
                f"The shards do not cover the input: a gap or overlap at index {expected} (shard {part.number} "
                f"starts at {part.start}).",
                field="shards",
            )
        expected = part.stop
    dest = as_path(dest)
    total = 0
    with _replacing(dest) as fh:
        writer: Any = fh
        if is_parquet(dest):
            columns, vectors = _result_layout(parts[0])
            kinds = CarriedKinds(columns)
            if columns:
                for part in parts:
                    _copy_shard(part, kinds)
            writer = ParquetResultWriter(fh, vectors, kinds.types())
        try:
            for part in parts:
                total += _copy_shard(part, writer)
        except BaseException:
            if writer is not fh:
                writer.rows.discard()
            raise
        if writer is not fh:
            writer.close()
    return total


def _result_layout(part: Shard) -> tuple[list[str], bool]:
    """``(passthrough columns, vectors)`` of a shard's output: the columns beside ``index``, ``output`` and
    ``error``, and whether its output is a Parquet ``list<float>`` column."""
    src = as_path(part.output_path)
    if not _exists(src):
        return [], False
    if is_parquet(src):
        with _open(src, "rb") as fh:
            schema = _parquet_file(src, fh).schema_arrow
        columns = [n for n in schema.names if n not in RESULT_COLUMNS]
        return columns, str(schema.field("output").type) != "string"
    with _open(src, "rb") as fh:
        first = fh.readline()
    record = json.loads(first) if first.strip() else {}
    return [k for k in record if k not in RESULT_COLUMNS], False


def _copy_shard(part: Shard, out: Any) -> int:
    src = as_path(part.output_path)
    if not _exists(src):
        raise BasetenValidationError(f"{part.name}: its output {part.output_path} does not exist.", field="shards")
    local = 0
    with _open(src, "rb") as fh:
        lines = parquet_result_lines(fh) if is_parquet(src) else (line for line in fh if line.strip())
        for line in lines:
            index, rest = _split_index(line)
            if index != local:
                raise BasetenValidationError(
                    f"{part.name}: {part.output_path} holds index {index} where {local} was expected; "
                    "rerun that shard (resume=True completes it).",
                    field="shards",
                )
            out.write(b'{"index":%d%s' % (part.start + index, rest))
            local += 1
    if local != part.rows:
        raise BasetenValidationError(
            f"{part.name}: {part.output_path} holds {local} results for {part.rows} inputs; rerun that shard "
            "(resume=True completes it).",
            field="shards",
        )
    return local


def _split_index(line: bytes) -> tuple[int, bytes]:
    """``(index, the rest of the line after the index)`` of a results line."""
    line = line.rstrip(b"\r\n") + b"\n"  # a CRLF or unterminated last line: the merged file has plain LF lines
    if line.startswith(b'{"index":'):
        end = line.find(b",", 9)
        if end > 9 and line[9:end].isdigit():
            return int(line[9:end]), line[end:]
    rec = json.loads(line)  # written by something else: normalise it
    index = rec.pop("index")
    rest = json.dumps(rec, separators=(",", ":"))
    return int(index), (b"," + rest[1:].encode() if len(rec) else b"}") + b"\n"
