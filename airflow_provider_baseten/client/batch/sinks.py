"""Where batch results go: a list in memory, or a JSONL file that a ``kill -9`` cannot damage; JSONL input."""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from airflow_provider_baseten.client.batch.fingerprint import Fingerprint, LineHasher, describe
from airflow_provider_baseten.client.batch.records import result_line
from airflow_provider_baseten.exceptions import (
    BasetenValidationError,
)


class _MemorySink:
    """Results kept in a list, in input order.

    Without ``passthrough_columns`` each result is the output itself (``{"index", "error"}`` for a failed
    item); with them (``carry`` set), each is the record a results file holds:
    ``{"index", "output"|"error", <passthrough columns>}``.
    """

    ordered = True  # results arrive through the reorder window, in input order

    def __init__(self) -> None:
        self.items: list[Any] = []
        #: ``{index: passthrough values}`` of the inputs taken and not yet written (set by the engine).
        self.carry: dict[int, dict[str, Any]] | None = None

    def put(self, index: int, output: Any, error: str | None) -> None:
        while len(self.items) <= index:
            self.items.append(None)
        if self.carry is not None:
            carried = self.carry.pop(index, {})
            head = {"index": index, "error": error} if error is not None else {"index": index, "output": output}
            self.items[index] = {**head, **carried}
            return
        self.items[index] = {"index": index, "error": error} if error is not None else output

    def done(self, index: int) -> bool:
        return False

    def done_count(self) -> int:
        """Results kept from an earlier run: none in memory."""
        return 0

    def close(self) -> None:
        pass


log = logging.getLogger("airflow_provider_baseten")


def journal_dir() -> str:
    """Where journals of object-storage outputs live: ``$BASETEN_BATCH_JOURNAL_DIR`` or the temp dir."""
    return os.environ.get("BASETEN_BATCH_JOURNAL_DIR") or os.path.join(
        tempfile.gettempdir(), "airflow-provider-baseten-journals"
    )


class _JsonlSink:
    """JSONL results that a ``kill -9`` at any instant cannot damage.

    Nothing writes to the output file while the batch runs. Each result is appended, the moment it
    arrives, to a journal beside it (``<output>.journal``; for object storage a local file under
    :func:`journal_dir`) with one ``write`` call, so a killed process loses only the requests in flight.
    When the batch ends (or fails), the file and the journal are merged in index order into a new file
    that is fsynced and then atomically replaces the old one (``os.replace``; object storage: a
    ``.tmp`` object renamed over it), and only then is the journal deleted. A run that finds a journal
    (its predecessor was killed) first does that merge, so what the killed run paid for is kept.

    The journal's first line says whether it continues the file (``resume=True``) or replaces it
    (``resume=False``: the old file stays whole until the new results replace it), and the fingerprint of
    the inputs (:mod:`.fingerprint`), which the merge writes beside the file (:func:`inputs_file`).
    ``resume=True`` over results recorded for other inputs is refused before anything is sent.
    """

    ordered = False  # results are journalled as they complete; the merge puts them in order

    def __init__(self, path: Any, resume: bool, fingerprint: Fingerprint | None = None) -> None:
        #: ``{index: passthrough values}`` of the inputs taken and not yet written (set by the engine).
        self.carry: dict[int, dict[str, Any]] | None = None
        self.path = path
        self.local = _local_path(path)
        self.journal = _journal_of(path)
        if self.local is not None:
            # A missing folder would fail only when the results are merged, after every request was paid.
            os.makedirs(os.path.dirname(os.path.abspath(self.local)), exist_ok=True)
        else:
            os.makedirs(journal_dir(), mode=0o700, exist_ok=True)  # outputs are private to this user
        self._done = bytearray()
        if resume:
            _check_same_inputs(path, fingerprint)  # before anything is folded, read or sent
            if os.path.exists(self.journal):
                if _journal_header(self.journal).get("replaces"):
                    log.warning(
                        "A killed earlier run of this batch (resume=False) had begun replacing %s; completing what "
                        "it asked: its results replace the file's older lines before this run resumes.",
                        path,
                    )
                self._fold()  # a killed run's results go into the file before anything else happens
            if _exists(path):
                with _open(path, "rb") as old:
                    for line in self._old_lines(old):
                        index, ok = _scan(line)
                        if ok:
                            self._mark(index)
        elif os.path.exists(self.journal):
            os.unlink(self.journal)  # a killed run that was replacing the file: start again
        self._fd: int | None = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if os.fstat(self._fd).st_size == 0:
            header = {"journal": 1, "replaces": not resume, "inputs": fingerprint}
            os.write(self._fd, json.dumps(header, separators=(",", ":")).encode() + b"\n")

    def _mark(self, index: int) -> None:
        if index >= len(self._done):
            self._done.extend(b"\0" * (index + 1 - len(self._done) + 1024))
        self._done[index] = 1

    def done(self, index: int) -> bool:
        return index < len(self._done) and self._done[index] == 1

    def done_count(self) -> int:
        """How many results the file already holds (a resume skips them)."""
        return self._done.count(1)

    def put(self, index: int, output: Any, error: str | None) -> None:
        carried = self.carry.pop(index, None) if self.carry else None
        data = result_line(index, output, error, carried)
        fd = self._fd
        if fd is None:
            raise RuntimeError("The results file is closed: nothing more can be written to it.")
        written = os.write(fd, data)
        while written < len(data):  # a short write (rare on regular files): finish the line
            written += os.write(fd, data[written:])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._fold()

    def _fold(self) -> None:
        """Merge the journal into the file, in index order, and replace the file atomically."""
        keys = _journal_keys(self.journal)
        header = _journal_header(self.journal)
        replaces = bool(header.get("replaces"))
        _record_inputs(self.path, header.get("inputs"))  # first: a kill before the replace leaves the journal
        with open(self.journal, "rb") as jfh:

            def from_journal() -> Iterator[tuple[int, bytes, bool]]:
                for key in keys:
                    line = _read_line(jfh.fileno(), key & _OFFSET_MASK)
                    yield key >> _OFFSET_BITS, line, _scan(line)[1]

            def from_file(fh: Any) -> Iterator[tuple[int, bytes, bool]]:
                for line in self._old_lines(fh):
                    index, ok = _scan(line)
                    if index >= 0:
                        yield index, line if line.endswith(b"\n") else line + b"\n", ok

            self._prepare(lambda out: self._merge(out, from_journal(), from_file, replaces))
            if self.local is not None:
                tmp = self.local + ".tmp"
                with open(tmp, "wb") as out:
                    self._merge(self._writer(out), from_journal(), from_file, replaces)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.local)
                _fsync_dir(os.path.dirname(os.path.abspath(self.local)))
            else:
                remote_tmp = self.path.with_name(self.path.name + ".tmp")
                with remote_tmp.open("wb") as out:
                    self._merge(self._writer(out), from_journal(), from_file, replaces)
                remote_tmp.rename(self.path)
        os.unlink(self.journal)

    def _merge(
        self,
        out: Any,
        new: Iterator[tuple[int, bytes, bool]],
        from_file: Callable[[Any], Iterator[tuple[int, bytes, bool]]],
        replaces: bool,
    ) -> None:
        """Write old and new records in index order; for one index an output beats an error, then new beats old."""
        try:
            if replaces or not _exists(self.path):
                _write_merged(out, iter(()), new)
                return
            with _open(self.path, "rb") as old:
                _write_merged(out, from_file(old), new)
        finally:
            getattr(out, "finish", lambda: None)()

    def _old_lines(self, fh: Any) -> Iterator[bytes]:
        """The result lines of the existing output file (a format subclass reads its own)."""
        return iter(fh)

    def _prepare(self, merge: Callable[[Any], None]) -> None:
        """Before the merge: a format that must know something of every line first reads them with ``merge``."""

    def _writer(self, fh: Any) -> Any:
        """What the merged result lines are written to (``write(line)``; optional ``finish()``)."""
        return fh


class _ParquetSink(_JsonlSink):
    """Like :class:`_JsonlSink` (the journal is the same JSONL), but the merged file is Parquet.

    The atomic merge writes the columns of :func:`~.parquet.result_schema` (``index``, the passthrough
    columns, ``output``: JSON text, or ``list<float>`` for embeddings; ``error``), one row group per few
    thousand rows, and ``resume=True`` reads the existing Parquet file's indices row group by row group.
    With passthrough columns the merge reads the lines twice: first for the columns' types (a Parquet
    file has one type per column, fixed before its first row), then to write them.
    """

    def __init__(
        self,
        path: Any,
        resume: bool,
        fingerprint: Fingerprint | None = None,
        vectors: bool = False,
        carried: Sequence[str] = (),
    ) -> None:
        from airflow_provider_baseten.client.batch.parquet import pyarrow_modules

        pyarrow_modules()  # a missing extra fails before any request is sent
        self.vectors = vectors
        self.carried_columns = list(carried)
        self.carried_types: dict[str, Any] = {}
        super().__init__(path, resume, fingerprint)

    def _prepare(self, merge: Callable[[Any], None]) -> None:
        from airflow_provider_baseten.client.batch.parquet import CarriedKinds

        if self.carried_columns:
            kinds = CarriedKinds(self.carried_columns)
            merge(kinds)
            self.carried_types = kinds.types()

    def _old_lines(self, fh: Any) -> Iterator[bytes]:
        from airflow_provider_baseten.client.batch.parquet import parquet_result_lines

        return parquet_result_lines(fh)

    def _writer(self, fh: Any) -> Any:
        from airflow_provider_baseten.client.batch.parquet import ParquetResultWriter

        return ParquetResultWriter(fh, self.vectors, self.carried_types)


def open_sink(
    path: Any,
    resume: bool,
    fingerprint: Fingerprint | None = None,
    *,
    vectors: bool = False,
    carried: Sequence[str] = (),
) -> _JsonlSink:
    """The results file sink for ``path``: Parquet when its name ends in ``.parquet``, else JSONL.

    :param vectors: The outputs are embeddings (in Parquet a ``list<float>`` column).
    :param carried: The passthrough columns (in Parquet, columns of their own).
    """
    if str(path).lower().endswith(".parquet"):
        return _ParquetSink(path, resume, fingerprint, vectors, carried)
    return _JsonlSink(path, resume, fingerprint)


_OFFSET_BITS = 42  # journal offsets up to 4 TiB
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1


def _scan(line: bytes) -> tuple[int, bool]:
    """(index, has an output) of a result line; index -1 when it is not one (torn, blank, a header)."""
    if line.startswith(b'{"index":'):  # how this module writes them: cheap to read back
        end = line.find(b",", 9)
        if end > 9 and line.endswith(b"}\n") and line[9:end].isdigit():
            return int(line[9:end]), line.startswith(b'"output":', end + 1)
    try:
        rec = json.loads(line)
    except ValueError:
        return -1, False  # a torn last line from a crash: that item is redone
    if isinstance(rec, dict) and isinstance(rec.get("index"), int) and rec["index"] >= 0:
        return rec["index"], "output" in rec
    return -1, False


def _journal_header(journal: str) -> dict[str, Any]:
    """The journal's first line: ``replaces`` (it replaces the file) and ``inputs`` (their fingerprint)."""
    with open(journal, "rb") as fh:
        line = fh.readline()
    try:
        header = json.loads(line) if line.startswith(b'{"journal":') else {}
    except ValueError:
        header = {}  # a header torn by a kill: nothing was sent after it, and nothing is kept from it
    return header if isinstance(header, dict) else {}


def _journal_keys(journal: str) -> list[int]:
    """The journal's records as sortable ints (index << 42 | offset), in index order.

    Only lines that end in a newline count (each record is written with its newline in one call, so a
    line without one was cut by a crash). Memory: one int per record, not the records.
    """
    keys: list[int] = []
    offset = 0
    with open(journal, "rb") as fh:
        for line in fh:
            if line.endswith(b"\n"):
                index, _ = _scan(line)
                if index >= 0:
                    keys.append(index << _OFFSET_BITS | offset)
            offset += len(line)
    keys.sort()
    return keys


# -- which inputs the results belong to -------------------------------------------------------------------
def inputs_file(path: Any) -> Any:
    """Where the fingerprint of the inputs of the results file ``path`` is kept: ``<path>.inputs.json``.

    Beside the file rather than in it, so the results stay one record per line (or row) for every reader.
    """
    if hasattr(path, "with_name"):
        return path.with_name(path.name + ".inputs.json")
    return os.fsdecode(path) + ".inputs.json"


def _record_inputs(path: Any, fingerprint: Fingerprint | None) -> None:
    """Write (or, for inputs that have none, remove) the fingerprint beside the results file."""
    sidecar = inputs_file(path)
    if fingerprint is None:
        if _exists(sidecar):
            sidecar.unlink() if hasattr(sidecar, "unlink") else os.unlink(sidecar)
        return
    with _open(sidecar, "wb") as fh:
        fh.write(json.dumps({"inputs": fingerprint}, separators=(",", ":")).encode() + b"\n")


def _journal_of(path: Any) -> str:
    """The journal of the results file ``path`` (see :class:`_JsonlSink`)."""
    local = _local_path(path)
    if local is not None:
        return local + ".journal"
    return os.path.join(journal_dir(), hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".journal")


def recorded_inputs(path: Any) -> list[tuple[Fingerprint | None, str]]:
    """``(fingerprint, where)`` of every earlier result a resume of ``path`` would keep.

    A killed run's journal (folded in first), and the file itself unless that journal replaces it. A
    fingerprint is ``None`` when the run that wrote it recorded none (an earlier version of the provider).
    """
    journal = _journal_of(path)
    found: list[tuple[Fingerprint | None, str]] = []
    header = _journal_header(journal) if os.path.exists(journal) else {}
    if header:
        found.append((header.get("inputs"), journal))
    if not header.get("replaces") and _exists(path):
        sidecar = inputs_file(path)
        recorded = None
        if _exists(sidecar):
            try:
                with _open(sidecar, "rb") as fh:
                    recorded = json.loads(fh.read()).get("inputs")
            except (ValueError, AttributeError):
                pass  # unreadable: as if an earlier version had written the file
        found.append((recorded, str(sidecar)))
    return found


def _check_same_inputs(path: Any, fingerprint: Fingerprint | None) -> None:
    """Refuse ``resume=True`` over results of other inputs, before anything is kept or sent."""
    for earlier, where in recorded_inputs(path):
        if earlier is None:
            log.info("Resuming %s: %s records no fingerprint of its inputs (an earlier version wrote it).", path, where)
        elif fingerprint is None:
            log.warning(
                "Resuming %s without checking that its results belong to these inputs: they are an iterator, "
                "which cannot be fingerprinted before sending. Pass a list to have them checked.",
                path,
            )
        elif earlier != fingerprint:
            raise BasetenValidationError(
                f"resume=True would keep results in {path} that belong to other inputs: they were written for "
                f"[{describe(earlier)}] (recorded in {where}), these inputs are [{describe(fingerprint)}]. "
                "Nothing was sent. Write to a new output_path, or pass resume=False to send every input again "
                "and replace the file.",
                field="resume",
            )


def _write_merged(out: Any, old: Iterator[tuple[int, bytes, bool]], new: Iterator[tuple[int, bytes, bool]]) -> None:
    """Merge two index-ordered streams of (index, line, has output) into ``out``, one line per index."""
    entries = heapq.merge(((i, 0, line, ok) for i, line, ok in old), ((i, 1, line, ok) for i, line, ok in new))
    best: tuple[int, int, bytes, bool] | None = None
    for entry in entries:
        if best is not None and entry[0] != best[0]:
            out.write(best[2])
            best = None
        if best is None or entry[3] or not best[3]:  # a later record wins unless it is an error over an output
            best = entry
    if best is not None:
        out.write(best[2])


def _read_line(fd: int, offset: int) -> bytes:
    """The line at ``offset`` (``pread``: no buffer refilled per record, no file mapped into memory)."""
    chunk = os.pread(fd, 4096, offset)
    end = chunk.find(b"\n")
    while end < 0:
        more = os.pread(fd, 1 << 16, offset + len(chunk))
        if not more:
            return chunk
        chunk += more
        end = chunk.find(b"\n")
    return chunk[: end + 1]


def _local_path(path: Any) -> str | None:
    """The local filesystem path of ``path``, or ``None`` for object storage."""
    protocol = getattr(path, "protocol", None)
    if protocol is None:
        return os.fsdecode(path)
    return str(path.path) if protocol in ("file", "local") else None


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exists(path: Any) -> bool:
    return path.exists() if hasattr(path, "exists") else os.path.exists(path)


def _open(path: Any, mode: str) -> Any:
    if hasattr(path, "open"):
        return path.open(mode, encoding="utf-8") if "b" not in mode else path.open(mode)
    return open(path, mode, encoding="utf-8") if "b" not in mode else open(path, mode)


# -- inputs --------------------------------------------------------------------------------------------
def read_jsonl(path: Any) -> Iterator[Any]:
    """Stream the JSON values of a JSONL file: one input per line, and result ``index`` = line number - 1.

    So that indices match line numbers, a blank line between inputs is a :class:`BasetenValidationError`
    (it would shift every later index). Blank lines at the end of the file are ignored.
    """
    for _, value in jsonl_lines(path):
        yield value


def jsonl_lines(path: Any) -> Iterator[tuple[bytes, Any]]:
    """``(raw line, its JSON value)`` per input line of a JSONL file, checked as :func:`read_jsonl` says."""
    blank = 0  # the first blank line not yet followed by an input
    with _open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                blank = blank or lineno
                continue
            if blank:
                raise BasetenValidationError(
                    f"{path}: line {blank} is blank. Each line is one input and its result's index is its line "
                    "number - 1, so a blank line would shift every later index; remove it (blank lines at the "
                    "end of the file are fine).",
                    field="inputs",
                )
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise BasetenValidationError(
                    f"{path}: line {lineno} is not valid JSON ({getattr(exc, 'msg', exc)}). Fix or remove that line.",
                    field="inputs",
                ) from None
            yield line, value


def validate_jsonl(path: Any) -> int:
    """Check every line of a JSONL file before anything is sent; return the number of inputs."""
    return sum(1 for _ in read_jsonl(path))


def fingerprint_jsonl(path: Any, passthrough_columns: Sequence[str] = ()) -> Fingerprint:
    """Check every line of a JSONL file (as :func:`validate_jsonl`) and fingerprint it in the same pass.

    With ``passthrough_columns``, a line that is not an object holding them is a
    :class:`BasetenValidationError` naming the column and the input's index (its line number - 1).
    """
    from airflow_provider_baseten.client.batch.options import missing_column

    columns = list(passthrough_columns)
    hasher = LineHasher()
    for index, (line, value) in enumerate(jsonl_lines(path)):
        if columns and (missing := missing_column(value, columns, index)) is not None:
            raise missing
        hasher.add(line)
    return hasher.result()


# -- engine --------------------------------------------------------------------------------------------
