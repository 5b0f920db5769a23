"""Batch prediction: bounded concurrency, input order kept, nothing that succeeded is lost.

Each worker owns a one-connection ``httpx.AsyncClient``: with many requests waiting on one shared pool,
httpcore rescans the whole pool for every waiting request and throughput collapses (about 15x slower at
concurrency 64 in our benchmark). Results go to an ordered sink: a list in memory, or a JSONL file written
in input order through a bounded reorder window, so memory stays flat however many inputs there are.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_baseten._transport import encode_json
from airflow_provider_baseten.exceptions import (
    BasetenAuthError,
    BasetenBatchError,
    BasetenError,
    BasetenModelError,
    BasetenNotFoundError,
    BasetenRateLimitError,
    BasetenServerError,
    BasetenTimeoutError,
    BasetenTransportError,
    BasetenValidationError,
)

if TYPE_CHECKING:
    from airflow_provider_baseten._transport import Transport
    from airflow_provider_baseten.hooks.baseten import _Call

ON_ERROR = ("fail", "record")
_UNAVAILABLE = (BasetenServerError, BasetenTimeoutError, BasetenTransportError)
# An item whose retries ran out on a transient error (5xx, timeout, dropped connection, 429) while the rest
# of the batch is being served gets this many retry sequences in all before it counts as failed: at a high
# but survivable fault rate (18% of attempts) one sequence of six attempts loses about one item in 30,000,
# three lose about one in 10^13. Every extra sequence counts towards the circuit breaker, so an outage
# still stops the batch as soon as before.
ITEM_ROUNDS = 3
# With on_error="record" and no budget given, a batch in which more than this share of the items failed
# fails the task: a green task should mean the predictions are there.
DEFAULT_RECORD_ERROR_RATE = 0.1
# A batch whose first this-many completed items all failed with the same non-transient error (404 model
# not found, 400/413/422 on every input, ...) stops: the rest would fail the same way, and be paid for.
EARLY_STOP_AFTER = 10


def _transient(exc: BasetenError) -> bool:
    """Baseten could not serve the request (5xx, timeout, dropped connection); not the model's own error."""
    return isinstance(exc, _UNAVAILABLE) and not isinstance(exc, BasetenModelError)


def _retryable_item(exc: BasetenError) -> bool:
    """Whether an item whose retries ran out is worth another retry sequence (see ``ITEM_ROUNDS``)."""
    return _transient(exc) or isinstance(exc, BasetenRateLimitError)


@dataclass(frozen=True)
class ErrorBudget:
    """How many failed items a batch may have and still succeed; checked as the batch runs.

    A batch fails (and stops as soon as the budget can no longer be met) when more than ``max_failures``
    items failed, or more than ``max_error_rate`` of all items (0.0-1.0). ``None`` sets no limit of that
    kind. See :meth:`resolve` for the defaults.
    """

    max_failures: int | None = None
    max_error_rate: float | None = None

    @classmethod
    def resolve(cls, on_error: str, max_failures: Any = None, max_error_rate: Any = None) -> ErrorBudget:
        """Validate the arguments and apply the defaults.

        ``on_error="fail"`` fails the task for any failed item (after attempting all of them); a budget
        there only decides when to stop early. ``on_error="record"`` with neither limit given allows
        ``DEFAULT_RECORD_ERROR_RATE`` (10%): pass ``max_error_rate=1.0`` to accept any number of failures.
        """
        if max_failures is not None and (
            isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0
        ):
            raise BasetenValidationError(
                f"max_failures must be a whole number >= 0 (or None), got {max_failures!r}.", field="max_failures"
            )
        if max_error_rate is not None and (
            isinstance(max_error_rate, bool)
            or not isinstance(max_error_rate, (int, float))
            or not 0.0 <= max_error_rate <= 1.0
        ):
            raise BasetenValidationError(
                f"max_error_rate must be a number from 0.0 to 1.0 (or None), got {max_error_rate!r}.",
                field="max_error_rate",
            )
        if on_error == "record" and max_failures is None and max_error_rate is None:
            max_error_rate = DEFAULT_RECORD_ERROR_RATE
        return cls(max_failures, None if max_error_rate is None else float(max_error_rate))

    def exceeded(self, failed: int, total: int | None) -> bool:
        """Whether ``failed`` failures already break the budget (``total``: the batch size, if known)."""
        if self.max_failures is not None and failed > self.max_failures:
            return True
        return self.max_error_rate is not None and bool(total) and failed > self.max_error_rate * total  # type: ignore[operator]

    @property
    def accepts_everything(self) -> bool:
        """A budget that tolerates every item failing (then no early stop either)."""
        return self.max_failures is None and self.max_error_rate == 1.0

    def __str__(self) -> str:
        parts = []
        if self.max_failures is not None:
            parts.append(f"max_failures={self.max_failures}")
        if self.max_error_rate is not None:
            parts.append(f"max_error_rate={self.max_error_rate:g}")
        return ", ".join(parts) or "no limit"


class _FirstFailures:
    """Watches the first completed items: if they all fail with the same non-transient error, stop."""

    def __init__(self, budget: ErrorBudget) -> None:
        self.active = not budget.accepts_everything
        self.seen: list[tuple[str, int | None, str | None]] = []

    def passed(self) -> None:
        self.active = False  # something works: per-item errors are the budget's business

    def failed(self, exc: BasetenError) -> bool:
        """Record a failure; ``True`` when the batch should stop."""
        if not self.active:
            return False
        same_for_every_input = isinstance(exc, (BasetenAuthError, BasetenNotFoundError)) or (
            isinstance(exc, BasetenValidationError) and exc.status_code in (400, 413, 422)
        )
        key = (type(exc).__name__, exc.status_code, exc.error_code)
        if not same_for_every_input or (self.seen and key != self.seen[0]):
            self.active = False
            return False
        self.seen.append(key)
        return len(self.seen) >= EARLY_STOP_AFTER

    def why(self) -> str:
        return (
            f" early: the first {len(self.seen)} completed predictions all failed with the same error, so the "
            "rest would too"
        )


@dataclass
class BatchResult:
    """What a batch did.

    :ivar results: Outputs in input order (``None`` when written to ``output_path``). With
        ``on_error="record"`` a failed item holds ``{"index": i, "error": message}``.
    :ivar failures: ``{index: error message}`` for each failed item.
    """

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    not_attempted: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    results: list[Any] | None = None
    failures: dict[int, str] = field(default_factory=dict)
    output_path: str | None = None

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary (what operators push to XCom for file-backed batches)."""
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "not_attempted": self.not_attempted,
            "retries": dict(self.retries),
            "elapsed_seconds": round(self.elapsed, 3),
            "output_path": self.output_path,
            "failed_indices": sorted(self.failures)[:1000],
        }


# -- sinks ---------------------------------------------------------------------------------------------
class _MemorySink:
    ordered = True  # results arrive through the reorder window, in input order

    def __init__(self) -> None:
        self.items: list[Any] = []

    def put(self, index: int, output: Any, error: str | None) -> None:
        while len(self.items) <= index:
            self.items.append(None)
        self.items[index] = {"index": index, "error": error} if error is not None else output

    def done(self, index: int) -> bool:
        return False

    def close(self) -> None:
        pass


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
    (``resume=False``: the old file stays whole until the new results replace it).
    """

    ordered = False  # results are journalled as they complete; the merge puts them in order

    def __init__(self, path: Any, resume: bool) -> None:
        self.path = path
        self.local = _local_path(path)
        if self.local is not None:
            self.journal = self.local + ".journal"
        else:
            digest = hashlib.sha256(str(path).encode()).hexdigest()[:32]
            os.makedirs(journal_dir(), exist_ok=True)
            self.journal = os.path.join(journal_dir(), f"{digest}.journal")
        self._done = bytearray()
        if resume:
            if os.path.exists(self.journal):
                self._fold()  # a killed run's results go into the file before anything else happens
            if _exists(path):
                with _open(path, "rb") as old:
                    for line in old:
                        index, ok = _scan(line)
                        if ok:
                            self._mark(index)
        elif os.path.exists(self.journal):
            os.unlink(self.journal)  # a killed run that was replacing the file: start again
        self._fd: int | None = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if os.fstat(self._fd).st_size == 0:
            os.write(self._fd, b'{"journal":1,"replaces":%s}\n' % (b"false" if resume else b"true"))

    def _mark(self, index: int) -> None:
        if index >= len(self._done):
            self._done.extend(b"\0" * (index + 1 - len(self._done) + 1024))
        self._done[index] = 1

    def done(self, index: int) -> bool:
        return index < len(self._done) and self._done[index] == 1

    def put(self, index: int, output: Any, error: str | None) -> None:
        rec = {"index": index, "error": error} if error is not None else {"index": index, "output": output}
        data = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
        written = os.write(self._fd, data)  # type: ignore[arg-type]
        while written < len(data):  # a short write (rare on regular files): finish the line
            written += os.write(self._fd, data[written:])  # type: ignore[arg-type]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._fold()

    def _fold(self) -> None:
        """Merge the journal into the file, in index order, and replace the file atomically."""
        keys, replaces = _journal_keys(self.journal)
        with open(self.journal, "rb") as jfh:

            def from_journal() -> Iterator[tuple[int, bytes, bool]]:
                for key in keys:
                    line = _read_line(jfh.fileno(), key & _OFFSET_MASK)
                    yield key >> _OFFSET_BITS, line, _scan(line)[1]

            def from_file(fh: Any) -> Iterator[tuple[int, bytes, bool]]:
                for line in fh:
                    index, ok = _scan(line)
                    if index >= 0:
                        yield index, line if line.endswith(b"\n") else line + b"\n", ok

            if self.local is not None:
                tmp = self.local + ".tmp"
                with open(tmp, "wb") as out:
                    self._merge(out, from_journal(), from_file, replaces)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.local)
                _fsync_dir(os.path.dirname(os.path.abspath(self.local)))
            else:
                remote_tmp = self.path.with_name(self.path.name + ".tmp")
                with remote_tmp.open("wb") as out:
                    self._merge(out, from_journal(), from_file, replaces)
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
        if replaces or not _exists(self.path):
            _write_merged(out, iter(()), new)
            return
        with _open(self.path, "rb") as old:
            _write_merged(out, from_file(old), new)


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


def _journal_keys(journal: str) -> tuple[list[int], bool]:
    """The journal's records as sortable ints (index << 42 | offset), and whether it replaces the file.

    Only lines that end in a newline count (each record is written with its newline in one call, so a
    line without one was cut by a crash). Memory: one int per record, not the records.
    """
    keys: list[int] = []
    replaces = False
    offset = 0
    with open(journal, "rb") as fh:
        for n, line in enumerate(fh):
            if n == 0 and line.startswith(b'{"journal":'):
                replaces = b'"replaces":true' in line
            elif line.endswith(b"\n"):
                index, _ = _scan(line)
                if index >= 0:
                    keys.append(index << _OFFSET_BITS | offset)
            offset += len(line)
    keys.sort()
    return keys, replaces


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
        return os.fspath(path)
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
    blank = 0  # the first blank line not yet followed by an input
    with _open(path, "r") as fh:
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
                yield json.loads(line)
            except ValueError as exc:
                raise BasetenValidationError(
                    f"{path}: line {lineno} is not valid JSON ({exc.msg}). Fix or remove that line.",
                    field="inputs",
                ) from None


def validate_jsonl(path: Any) -> int:
    """Check every line of a JSONL file before anything is sent; return the number of inputs."""
    return sum(1 for _ in read_jsonl(path))


# -- engine --------------------------------------------------------------------------------------------
class _Progress:
    def __init__(self, total: int | None, interval: float, log: logging.Logger | Any) -> None:
        self.total, self.interval, self.log = total, interval, log
        self.done = self.errors = 0
        self.started = self._last = time.monotonic()

    def tick(self, error: bool) -> None:
        self.done += 1
        self.errors += error
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.report()

    def report(self, final: bool = False) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            eta = (self.total - self.done) / rate if rate else float("inf")
            where = f"{self.done}/{self.total} ({100 * self.done / self.total:.1f}%)"
            tail = "" if final else f", ETA {eta:.0f}s"
        else:
            where, tail = f"{self.done}", ""
        self.log.info(
            "Batch predict %s: %s done, %.1f req/s, %d error(s)%s",
            "finished" if final else "progress",
            where,
            rate,
            self.errors,
            tail,
        )


async def run_batch(
    transport: Transport,
    route: _Call,
    inputs: Iterable[Any],
    *,
    max_concurrency: int = 32,
    on_error: str = "fail",
    output_path: Any = None,
    resume: bool = False,
    progress_interval: float = 5.0,
    total: int | None = None,
    abort_after_consecutive: int | None = None,
    log: Any = None,
    max_failures: int | None = None,
    max_error_rate: float | None = None,
) -> BatchResult:
    """Run ``route`` (a predict call) for every input. See ``BasetenHook.predict_batch``."""
    log = log or logging.getLogger("airflow_provider_baseten")
    if on_error not in ON_ERROR:
        raise BasetenValidationError(f"on_error must be 'fail' or 'record', got {on_error!r}.", field="on_error")
    budget = ErrorBudget.resolve(on_error, max_failures, max_error_rate)
    if not isinstance(max_concurrency, int) or not 1 <= max_concurrency <= 1024:
        raise BasetenValidationError(
            f"max_concurrency must be an integer from 1 to 1024, got {max_concurrency!r}.", field="max_concurrency"
        )
    if resume and output_path is None:
        raise BasetenValidationError("resume=True needs output_path (it skips lines already there).", field="resume")
    if total is None and hasattr(inputs, "__len__"):
        total = len(inputs)  # type: ignore[arg-type]
    if total == 0:
        raise BasetenValidationError("The batch is empty: give at least one input.", field="inputs")

    sink: _MemorySink | _JsonlSink = _JsonlSink(output_path, resume) if output_path is not None else _MemorySink()
    result = BatchResult(total=total or 0, output_path=str(output_path) if output_path is not None else None)
    progress = _Progress(total, progress_interval, log)
    window = max(1024, 16 * max_concurrency)
    abort_after = abort_after_consecutive or max(50, 4 * max_concurrency)
    source = enumerate(inputs)
    pending: dict[int, tuple[Any, str | None]] = {}
    state: dict[str, Any] = {
        "next_write": 0,
        "consecutive": 0,
        "aborted": None,  # the error that stops the batch: an outage, a refused key, a repeated error, the budget
        "why": "",
        "over_budget": False,
        "seen": 0,
        "waiting": 0,
    }
    watch = _FirstFailures(budget)
    room = asyncio.Condition()

    def emit(index: int, output: Any, error: str | None) -> None:
        if not sink.ordered and output is not _SKIP:
            sink.put(index, output, error)  # journalled the moment it arrives: a kill loses only what is in flight
            output, error = _SKIP, None  # the window below then only tracks order, for flow control
        pending[index] = (output, error)
        while state["next_write"] in pending:
            i = state["next_write"]
            out, err = pending.pop(i)
            if out is not _SKIP:
                sink.put(i, out, err)
            state["next_write"] += 1

    started = time.monotonic()

    def has_room() -> bool:
        return state["seen"] - state["next_write"] < window or state["aborted"] is not None

    async def take() -> tuple[int, Any] | None:
        # Single-threaded asyncio: nothing below awaits except the wait itself, so the condition's lock is
        # only needed to wait when the reorder window is full (a slow item holds back the writes).
        if not has_room():
            state["waiting"] += 1
            try:
                async with room:
                    await room.wait_for(has_room)
            finally:
                state["waiting"] -= 1
        while not state["aborted"]:
            try:
                index, item = next(source)
            except StopIteration:
                return None
            state["seen"] = index + 1
            if sink.done(index):
                result.skipped += 1
                emit(index, _SKIP, None)
                continue
            return index, item
        return None

    def unavailable(exc: BasetenError) -> None:
        # A run of items that Baseten could not serve (an outage) stops the batch: the circuit breaker.
        state["consecutive"] += 1
        if state["consecutive"] >= abort_after and not state["aborted"]:
            state["aborted"] = exc

    def finished(index: int, exc: BasetenError | None, error: str | None) -> None:
        if exc is None:
            result.succeeded += 1
            state["consecutive"] = 0
            watch.passed()
            return
        result.failed += 1
        result.failures[index] = error  # type: ignore[assignment]
        if isinstance(exc, BasetenAuthError):
            state["aborted"] = exc
        elif _transient(exc):
            unavailable(exc)
        if watch.failed(exc) and not state["aborted"]:
            state["aborted"], state["why"] = exc, watch.why()
        if budget.exceeded(result.failed, total) and not state["aborted"]:
            state["over_budget"], state["aborted"] = True, exc

    async def worker() -> None:
        client = transport.new_async_client(1)
        send = _direct_send(client)
        try:
            while (got := await take()) is not None:
                index, item = got
                output, error, exc = await ep_template.send(client, item, send)
                rounds = 1
                while exc is not None and _retryable_item(exc) and rounds < ITEM_ROUNDS:
                    if _transient(exc):
                        unavailable(exc)
                    if state["aborted"]:
                        break
                    rounds += 1
                    output, error, exc = await ep_template.send(client, item, send)
                finished(index, exc, error)
                progress.tick(exc is not None)
                emit(index, output, error)
                if state["waiting"]:
                    async with room:
                        room.notify_all()
        finally:
            await client.aclose()

    retries_before = transport.retry_counts.copy()
    quiet_before, transport.quiet_retries = transport.quiet_retries, True
    try:
        ep_template = _Prepared(transport, route)  # inside the try: the sink is closed whatever happens
        await asyncio.gather(*(worker() for _ in range(max_concurrency)))
    finally:
        # Keep what finished even if we stop early: flush buffered results in index order (gaps are items
        # never attempted), then close the file so every line is on disk.
        for i in sorted(pending):
            out, err = pending[i]
            if out is not _SKIP:
                sink.put(i, out, err)
        sink.close()
        transport.quiet_retries = quiet_before
        result.retries = dict(transport.retry_counts - retries_before)
    result.elapsed = time.monotonic() - started
    progress.report(final=True)
    if total is None:
        result.total = state["seen"]
    result.not_attempted = max(0, result.total - result.succeeded - result.failed - result.skipped)
    if isinstance(sink, _MemorySink):
        result.results = sink.items + [None] * (result.total - len(sink.items))
    _verdict(result, state, on_error, budget, log)
    return result


def _verdict(result: BatchResult, state: dict[str, Any], on_error: str, budget: ErrorBudget, log: Any) -> None:
    """Raise if the batch stopped early, failed an item with ``on_error="fail"``, or is over its error budget."""
    kept = (
        f" Results so far are in {result.output_path}; rerun with resume=True to skip them."
        if result.output_path
        else ""
    )
    counts = (
        f"{result.succeeded} of {result.total} succeeded, {result.failed} failed, {result.not_attempted} not attempted."
    )
    aborted = state["aborted"]
    if aborted is not None and not state["over_budget"]:
        raise type(aborted)(
            f"Batch stopped{state['why']}: {aborted.message} {counts}{kept}",
            status_code=aborted.status_code,
            error_code=aborted.error_code,
        )
    if not result.failures:
        return
    shown = ", ".join(f"{i}: {m}" for i, m in list(sorted(result.failures.items()))[:10])
    more = f" (+{len(result.failures) - 10} more)" if len(result.failures) > 10 else ""
    if state["over_budget"] or budget.exceeded(result.failed, result.total):
        stopped = " The batch stopped once it could no longer meet the budget." if state["over_budget"] else ""
        message = f"{result.failed} of {result.total} predictions failed, over the error budget ({budget}).{stopped} "
        message += f"{counts}{kept}"
    elif on_error == "fail":
        message = f"{result.failed} of {result.total} predictions failed; the other {result.succeeded} succeeded "
        message += f"and are kept{' in ' + result.output_path if result.output_path else ''}."
    else:
        message = ""
    if message:
        raise BasetenBatchError(
            f"{message} Failed indices: {shown}{more}",
            failures=result.failures,
            results=result.results,
            total=result.total,
        )
    log.warning(
        '%d of %d predictions failed, within the error budget (%s); each is recorded as {"index", "error"}. '
        "Failed indices: %s%s",
        result.failed,
        result.total,
        budget,
        shown,
        more,
    )


_SKIP = object()


class _Prepared:
    """A predict request built once and re-used with a new body per item (no per-item URL parsing)."""

    def __init__(self, transport: Transport, route: _Call) -> None:
        from airflow_provider_baseten._routes import endpoint

        self.transport = transport
        self.route = route
        self.ep = endpoint(route.name)
        self._probe_lock = asyncio.Lock()
        self.learn_format()

    def learn_format(self) -> None:
        """Build the template for the URL format known now (LowCodeAPI may need one probe to learn it)."""
        transport = self.transport
        formats = transport.formats(self.ep) if transport.settings.gateway == "lowcodeapi" else ("new",)
        self.template = transport.build(
            self.ep, self.route.params, model_id=self.route.model_id, body={}, url_format=formats[0]
        )
        self._headers = [(k, v) for k, v in self.template.headers.raw if k.lower() != b"content-length"]
        self.needs_probe = len(formats) > 1

    async def send(
        self, client: httpx.AsyncClient, item: Any, send: _Send | None = None
    ) -> tuple[Any, str | None, BasetenError | None]:
        try:
            body = encode_json(item, "input")
            if self.needs_probe:
                async with self._probe_lock:
                    if self.needs_probe:
                        out = await self.transport.arequest(
                            self.route.name, self.route.params, body=item, model_id=self.route.model_id, client=client
                        )
                        self.learn_format()
                        return out, None, None
            t = self.template
            # The template's headers plus this body's length, and the body as a ready stream: three times
            # cheaper than httpx.Request(content=...) re-validating the headers for every item.
            headers = httpx.Headers([*self._headers, (b"Content-Length", b"%d" % len(body))])
            req = httpx.Request(
                t.method, t.url, headers=headers, stream=httpx.ByteStream(body), extensions=t.extensions
            )
            outcome = await self.transport._asend_with_retries(client, self.ep, req, send)
            if outcome.error is not None:
                raise outcome.error
            return outcome.value, None, None
        except BasetenError as exc:
            return None, exc.message, exc


_Send = Callable[[httpx.Request], Awaitable[httpx.Response]]


def _direct_send(client: httpx.AsyncClient) -> _Send:
    """``client.send`` minus the client-level work a prepared batch request never needs.

    ``AsyncClient.send`` wraps the transport call in auth, redirect, cookie-jar, event-hook and per-request
    INFO-logging layers; for a batch request (headers already complete, no client auth, redirects not
    followed, no hooks, and a cookie jar nothing ever reads because prepared requests skip ``build_request``)
    those layers only cost CPU: about a quarter of it per request in the profile. The transport is still the
    client's own (its proxy mounts, limits, SSL context and mocked transports apply), chosen per request
    exactly as ``send`` would. Falls back to ``client.send`` on an httpx without ``_transport_for_url``.
    """
    pick = getattr(client, "_transport_for_url", None)
    if pick is None:  # pragma: no cover - an httpx that reorganised its internals: take the ordinary path
        return client.send

    async def send(request: httpx.Request) -> httpx.Response:
        response = await pick(request.url).handle_async_request(request)
        response.request = request
        return response

    return send


def run_batch_sync(transport: Transport, route: _Call, inputs: Iterable[Any], **kwargs: Any) -> BatchResult:
    """Run :func:`run_batch` from synchronous code (an operator's ``execute``).

    Uses uvloop when it is installed (Airflow brings it: apache-airflow-core -> fastapi[standard] ->
    uvicorn[standard]); its event loop costs less CPU per request than asyncio's, and the batch is CPU-bound.
    """
    try:
        import uvloop
    except ImportError:  # e.g. Windows, PyPy
        return asyncio.run(run_batch(transport, route, inputs, **kwargs))
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(run_batch(transport, route, inputs, **kwargs))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
