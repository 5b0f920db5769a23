"""The batch engine: bounded concurrency, input order kept, nothing that succeeded is lost.

Each worker owns a one-connection ``httpx.AsyncClient``: with many requests waiting on one shared pool,
httpcore rescans the whole pool for every waiting request and throughput collapses (about 15x slower at
concurrency 64 in our benchmark). Results go to an ordered sink: a list in memory, or a JSONL file written
in input order through a bounded reorder window, so memory stays flat however many inputs there are.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import os
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_baseten.client.errors import retry_kind
from airflow_provider_baseten.exceptions import (
    BasetenAuthError,
    BasetenBatchError,
    BasetenError,
    BasetenValidationError,
)

if TYPE_CHECKING:
    from airflow_provider_baseten.client.cache import ScopedCache
    from airflow_provider_baseten.client.transport import Transport

from airflow_provider_baseten.client.batch.adaptive import AUTO, AUTO_CEILING, AdaptiveLimit
from airflow_provider_baseten.client.batch.budget import (
    ErrorBudget,
    _FirstFailures,
    _retryable_item,
    _transient,
)
from airflow_provider_baseten.client.batch.fingerprint import Fingerprint, of_values
from airflow_provider_baseten.client.batch.options import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_PROGRESS_INTERVAL,
    ON_ERROR,
    check_batch_options,
    check_concurrency,
    missing_column,
)
from airflow_provider_baseten.client.batch.prepared import Route, _direct_send, _Prepared
from airflow_provider_baseten.client.batch.sinks import _JsonlSink, _MemorySink, open_sink

# An item whose retries ran out on a transient error (5xx, timeout, dropped connection, 429) while the rest
# of the batch is being served gets this many retry sequences in all before it counts as failed: at a high
# but survivable fault rate (18% of attempts) one sequence of six attempts loses about one item in 30,000,
# three lose about one in 10^13. Every extra sequence counts towards the circuit breaker, so an outage
# still stops the batch as soon as before.
ITEM_ROUNDS = 3


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
    #: Summed token ``usage`` (``prompt_tokens``, ``completion_tokens``, ``total_tokens``) of an
    #: OpenAI-compatible batch (``embed_batch``, ``chat_completions_batch``); ``None`` for ``predict_batch``.
    usage: dict[str, int] | None = None
    #: What the batch's items are, for logs: ``"inputs"``, ``"texts"``, ``"prompts"``, ``"chain inputs"``.
    unit: str = "inputs"
    #: With ``cache=``: how many items were answered from the cache (not sent); ``None`` without a cache.
    cached: int | None = None
    #: With ``cache=``: the hit line, e.g. ``"9,500 of 10,000 texts from cache, 500 sent"``.
    cache_line: str | None = None

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
            **({"usage": dict(self.usage)} if self.usage is not None else {}),
            **({"cached": self.cached, "cache": self.cache_line} if self.cached is not None else {}),
        }


class _Progress:
    """Progress log lines, counted in the run's own unit: ``120/3000 texts embedded (4.0%)``.

    ``already``: the results a resumed run found in its output; they count as done but not in the rate.
    """

    def __init__(
        self, total: int | None, interval: float, log: logging.Logger | Any, run: _Run, already: int = 0
    ) -> None:
        self.total, self.interval, self.log = total, interval, log
        self.kind, self.unit, self.verb = run.kind, run.unit, run.verb
        self.already = already
        self.done = self.errors = 0
        self.started = self._last = time.monotonic()

    def tick(self, error: bool) -> None:
        self.done += 1
        self.errors += error
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.report()

    def resuming(self, where: Any) -> None:
        """Say what a resumed run keeps, before it sends anything."""
        if self.already:
            of = f" of {self.total}" if self.total else ""
            self.log.info(
                "Resuming: %d%s %s already done (in %s); sending the rest.", self.already, of, self.unit, where
            )

    def report(self, final: bool = False) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        count = self.already + self.done
        if self.total:
            eta = (self.total - count) / rate if rate else float("inf")
            where = f"{count}/{self.total} {self.unit} {self.verb} ({100 * count / self.total:.1f}%)"
            tail = "" if final else f", ETA {eta:.0f}s"
        else:
            where, tail = f"{count} {self.unit} {self.verb}", ""
        if self.already:
            where += f", {self.already} already done"
        self.log.info(
            "Batch %s %s: %s, %.1f %s/s, %d error(s)%s",
            self.kind,
            "finished" if final else "progress",
            where,
            rate,
            self.unit,
            self.errors,
            tail,
        )


async def run_batch(
    transport: Transport,
    route: Route,
    inputs: Iterable[Any],
    *,
    max_concurrency: int | Literal["auto"] = DEFAULT_MAX_CONCURRENCY,
    on_error: str = ON_ERROR[0],
    output_path: Any = None,
    resume: bool = False,
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
    total: int | None = None,
    abort_after_consecutive: int | None = None,
    log: Any = None,
    max_failures: int | None = None,
    max_error_rate: float | None = None,
    run_factory: Callable[..., _Run] | None = None,
    input_fingerprint: Fingerprint | None = None,
    passthrough_columns: Sequence[str] | None = None,
    vectors: bool = False,
    cache: ScopedCache | None = None,
) -> BatchResult:
    """Run ``route`` (a predict call) for every input. See ``BasetenHook.predict_batch``.

    ``run_factory`` (default :class:`_Run`) builds the run from the same arguments: a subclass can pack
    several inputs into one request or read the answers (``_batch.openai``). ``input_fingerprint``: what
    the inputs are (:mod:`.fingerprint`), for inputs that are not a list (a file being read); a list's
    own is taken when there is an ``output_path``. ``passthrough_columns``: see :class:`.options.BatchOptions`;
    the inputs of a list are checked before anything is sent, those of an iterator as each is taken (a row
    without a column then fails alone, unsent). ``vectors``: the outputs are embeddings (a ``list<float>``
    column in Parquet). ``cache``: the result cache bound to the batch's resolved target (the hook binds it);
    each item (each text of a packed embeddings batch) found there is not sent.
    """
    log = log or logging.getLogger("airflow_provider_baseten")
    check_inputs(inputs)
    check_batch_options(
        {
            "max_concurrency": max_concurrency,
            "on_error": on_error,
            "resume": resume,
            "progress_interval": progress_interval,
            "total": total,
            "max_failures": max_failures,
            "max_error_rate": max_error_rate,
            "passthrough_columns": passthrough_columns,
        }
    )
    carried = list(passthrough_columns or ())
    if carried and isinstance(inputs, (list, tuple)):
        for index, item in enumerate(inputs):  # in memory: every row is checked before anything is sent
            missing = missing_column(item, carried, index)
            if missing is not None:
                raise missing
    budget = ErrorBudget.resolve(on_error, max_failures, max_error_rate)
    adaptive = AdaptiveLimit() if max_concurrency == AUTO else None
    workers = AUTO_CEILING if adaptive is not None else check_concurrency(max_concurrency)
    total = _checked_total(inputs, total, resume, output_path)

    if output_path is not None and input_fingerprint is None and isinstance(inputs, (list, tuple)):
        input_fingerprint = of_values(inputs)
    sink: _MemorySink | _JsonlSink = (
        open_sink(output_path, resume, input_fingerprint, vectors=vectors, carried=carried)
        if output_path is not None
        else _MemorySink()
    )
    if carried:
        sink.carry = {}
        inputs = _carry(inputs, carried, sink)
    result = BatchResult(total=total or 0, output_path=str(output_path) if output_path is not None else None)
    run = (run_factory or _Run)(transport, inputs, sink, result, budget, workers, abort_after_consecutive, adaptive)
    result.unit = run.unit
    run.carried = carried
    run.cache = cache
    progress = _Progress(total, progress_interval, log, run, sink.done_count())
    progress.resuming(output_path)
    started = time.monotonic()
    await _run_workers(transport, route, run, progress, workers, log)
    result.elapsed = time.monotonic() - started
    progress.report(final=True)
    if cache is not None:
        result.cached, result.cache_line = cache.hits, cache.line(run.unit)
        log.info("Batch %s: %s.", run.kind, result.cache_line)
    if total is None:
        result.total = run.inputs_seen()
    result.not_attempted = max(0, result.total - result.succeeded - result.failed - result.skipped)
    if isinstance(sink, _MemorySink):
        result.results = sink.items + [None] * (result.total - len(sink.items))
    _verdict(result, run, on_error, budget, log)
    return result


class Unsendable:
    """In place of an input that cannot be sent (it lacks a passthrough column): it fails alone, unsent."""

    def __init__(self, error: BasetenValidationError) -> None:
        self.error = error


def _carry(inputs: Iterable[Any], columns: list[str], sink: _MemorySink | _JsonlSink) -> Iterator[Any]:
    """The inputs, each one's passthrough values kept in ``sink.carry`` until its result is written.

    Only inputs taken and not yet written are held (the reorder window bounds them), so memory stays flat.
    An input without a column becomes an :class:`Unsendable`.
    """
    carry = sink.carry
    assert carry is not None
    for index, item in enumerate(inputs):
        if sink.done(index):  # resumed: skipped, its row is already in the file
            yield item
            continue
        missing = missing_column(item, columns, index)
        if missing is not None:
            yield Unsendable(missing)
            continue
        carry[index] = {c: item[c] for c in columns}
        yield item


def _checked_total(inputs: Iterable[Any], total: int | None, resume: bool, output_path: Any) -> int | None:
    """The batch's size when it is known (given, or the inputs' length); refuses an empty batch and a
    resume with nowhere to resume from."""
    if resume and output_path is None:
        raise BasetenValidationError("resume=True needs output_path (it skips lines already there).", field="resume")
    if total is None and isinstance(inputs, Sized):
        total = len(inputs)
    if total == 0:
        raise BasetenValidationError("The batch is empty: give at least one input.", field="inputs")
    return total


async def _run_workers(
    transport: Transport, route: Route, run: _Run, progress: _Progress, workers: int, log: Any
) -> None:
    """Run every worker to the end; whatever happens, flush and close the sink, count the retries into the
    result, and give the transport back its retry logging."""
    adaptive = run.adaptive
    retries_before = transport.retry_counts.copy()
    quiet_before, transport.quiet_retries = transport.quiet_retries, True
    try:
        prepared = _Prepared(transport, route)  # inside the try: the sink is closed whatever happens
        await _all_or_none([run.worker(prepared, progress, slot) for slot in range(workers)])
    finally:
        if adaptive is not None:
            adaptive.close()
            log.info("Batch %s max_concurrency='auto': %s", run.kind, adaptive.summary())
        run.flush()  # keep what finished even if we stop early, then close the file
        transport.quiet_retries = quiet_before
        run.result.retries = dict(transport.retry_counts - retries_before)


class _Run:
    """One batch in flight: the workers share it. Single-threaded asyncio, so its counters need no lock.

    Results pass through a bounded reorder window (``pending``) so the sink sees them in input order and
    memory stays flat; a slow item holds the window and makes the workers wait for room.
    """

    #: What the items are and what the batch does to them, for the logs: "120/3000 inputs predicted".
    kind, unit, verb = "predict", "inputs", "predicted"

    def __init__(
        self,
        transport: Transport,
        inputs: Iterable[Any],
        sink: _MemorySink | _JsonlSink,
        result: BatchResult,
        budget: ErrorBudget,
        max_concurrency: int,
        abort_after_consecutive: int | None,
        adaptive: AdaptiveLimit | None = None,
    ) -> None:
        self.transport = transport
        self.source = enumerate(inputs)
        self.sink = sink
        self.result = result
        self.budget = budget
        self.window = max(1024, 16 * max_concurrency)
        # An auto batch backs off to a few workers in an outage: count its run of failures as a small batch's.
        breaker = adaptive.floor if adaptive is not None else max_concurrency
        self.abort_after = abort_after_consecutive or max(50, int(4 * breaker))
        self.adaptive = adaptive
        self.pending: dict[int, tuple[Any, str | None]] = {}
        self.next_write = 0
        self.seen = 0
        self.consecutive = 0
        self.waiting = 0
        #: The error that stops the batch: an outage, a refused key, a repeated error, the budget.
        self.aborted: BasetenError | None = None
        self.why = ""
        self.over_budget = False
        self.watch = _FirstFailures(budget)
        #: The passthrough columns (copied from each input into its result).
        self.carried: list[str] = []
        #: ``cache=``: looked up per item before sending (a packing subclass looks up per text instead).
        self.cache: ScopedCache | None = None
        self.room = asyncio.Condition()

    def inputs_seen(self) -> int:
        """How many inputs the run read (a packing subclass counts inputs, not requests)."""
        return self.seen

    def emit(self, index: int, output: Any, error: str | None) -> None:
        """Hand one result to the sink, through the reorder window."""
        if not self.sink.ordered and output is not _SKIP:
            self.sink.put(index, output, error)  # journalled on arrival: a kill loses only what is in flight
            output, error = _SKIP, None  # the window below then only tracks order, for flow control
        self.pending[index] = (output, error)
        while self.next_write in self.pending:
            out, err = self.pending.pop(self.next_write)
            if out is not _SKIP:
                self.sink.put(self.next_write, out, err)
            self.next_write += 1

    def flush(self) -> None:
        """Write what is buffered, in index order (gaps are items never attempted), and close the sink."""
        for i in sorted(self.pending):
            out, err = self.pending[i]
            if out is not _SKIP:
                self.sink.put(i, out, err)
        self.sink.close()

    def has_room(self) -> bool:
        return self.seen - self.next_write < self.window or self.aborted is not None

    async def take(self) -> tuple[int, Any] | None:
        """The next input to send, or ``None`` when there is none or the batch stopped."""
        # Nothing below awaits except the wait itself, so the condition's lock is only needed to wait when
        # the reorder window is full.
        if not self.has_room():
            self.waiting += 1
            try:
                async with self.room:
                    await self.room.wait_for(self.has_room)
            finally:
                self.waiting -= 1
        while not self.aborted:
            try:
                index, item = next(self.source)
            except StopIteration:
                return None
            self.seen = index + 1
            if self.sink.done(index):
                self.result.skipped += 1
                self.emit(index, _SKIP, None)
                continue
            return index, item
        return None

    def unavailable(self, exc: BasetenError) -> None:
        """A run of items that Baseten could not serve (an outage) stops the batch: the circuit breaker."""
        self.consecutive += 1
        if self.consecutive >= self.abort_after and not self.aborted:
            self.aborted = exc

    def finished(self, index: int, exc: BasetenError | None, error: str | None) -> None:
        """Count one item's outcome and decide whether the batch must stop."""
        result = self.result
        if exc is None:
            result.succeeded += 1
            self.consecutive = 0
            self.watch.passed()
            return
        self.count_failed([index], exc, error if error is not None else str(exc))

    def count_failed(self, indices: list[int], exc: BasetenError, message: str) -> None:
        """Fail the items at ``indices`` (one input, or the texts one embeddings request carried); stop the
        batch on a refused key, an outage, a repeated error or an exceeded budget."""
        result = self.result
        result.failed += len(indices)
        for i in indices:
            result.failures[i] = message
        if isinstance(exc, BasetenAuthError):
            self.aborted = exc
        elif _transient(exc):
            self.unavailable(exc)
        if self.watch.failed(exc) and not self.aborted:
            self.aborted, self.why = exc, self.watch.why()
        if self.budget.exceeded(result.failed, result.total or None) and not self.aborted:
            self.over_budget, self.aborted = True, exc

    #: Whether :meth:`attempt` looks each item up in ``cache`` (a packing subclass does it per text).
    cache_per_item = True

    async def attempt(self, prepared: _Prepared, client: Any, item: Any, send: Any) -> tuple[Any, str | None, Any]:
        """The item's cached output, or send it (and store what succeeded)."""
        cache = self.cache if self.cache_per_item else None
        if cache is None:
            return await self.send(prepared, client, item, send)
        from airflow_provider_baseten.client.cache import MISS

        key = cache.key(item)
        output = cache.get(key)
        if output is not MISS:
            return output, None, None
        output, error, exc = await self.send(prepared, client, item, send)
        if exc is None:
            cache.put(key, output)
        return output, error, exc

    async def send(self, prepared: _Prepared, client: Any, item: Any, send: Any) -> tuple[Any, str | None, Any]:
        """Send one item, with up to ``ITEM_ROUNDS`` retry sequences while Baseten is unavailable."""
        output, error, exc = await prepared.send(client, item, send)
        rounds = 1
        while exc is not None and _retryable_item(exc) and rounds < ITEM_ROUNDS:
            if _transient(exc):
                self.unavailable(exc)
            if self.aborted:
                break
            rounds += 1
            # Another attempt of this item after a failed one: a retry, counted by cause like the policy's.
            self.transport.retry_counts[retry_kind(exc)] += 1
            output, error, exc = await prepared.send(client, item, send)
        return output, error, exc

    async def worker(self, prepared: _Prepared, progress: _Progress, slot: int = 0) -> None:
        """Take inputs and send them on this worker's own one-connection client until none are left.

        With an adaptive limit, worker ``slot`` takes an item only while the limit admits it (it opens its
        connection when first admitted), and the limit sees the answer to every attempt it sends.
        """
        adaptive = self.adaptive
        if adaptive is not None and not await adaptive.admit(slot):
            return
        client = self.transport.new_async_client(1)
        send = _direct_send(client) if adaptive is None else adaptive.wrap(_direct_send(client))
        try:
            while (adaptive is None or await adaptive.admit(slot)) and (got := await self.take()) is not None:
                index, item = got
                error: str | None
                if isinstance(item, Unsendable):
                    output, error, exc = None, item.error.message, item.error
                else:
                    output, error, exc = await self.attempt(prepared, client, item, send)
                self.finished(index, exc, error)
                progress.tick(exc is not None)
                self.emit(index, output, error)
                if self.waiting:
                    async with self.room:
                        self.room.notify_all()
        finally:
            if adaptive is not None:
                adaptive.close()  # no inputs left (or the batch stopped): the waiting workers are not needed
            await client.aclose()


async def _all_or_none(coroutines: list[Coroutine[Any, Any, None]]) -> None:
    """Run the workers; when one raises (or the batch is cancelled), cancel and await the others.

    ``asyncio.gather`` alone would return the error and leave the siblings sending (and writing to a sink
    that is being closed) in the caller's event loop. ``asyncio.TaskGroup`` does this from Python 3.11.
    """
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def check_inputs(inputs: Any, field: str = "inputs", each: str = "inputs") -> None:
    """Refuse, before anything is sent, what is not a batch of inputs though it can be iterated.

    A path (``str`` or ``os.PathLike``) or one text would be sent one paid request per character, a dict
    one per key.
    """
    if isinstance(inputs, (str, bytes, os.PathLike)):
        shown = os.fsdecode(inputs) if not isinstance(inputs, bytes) else repr(inputs)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise BasetenValidationError(
            f"{field} is one {type(inputs).__name__} ({shown!r}), not a batch of {each}: it would be sent one "
            "request per character. The hook's batch methods do not open files: to send a JSONL or Parquet "
            "file's records, pass airflow_provider_baseten.batch_io.read_records(path) (or give the path to the "
            "operator, which reads it); for one input, call the single-input method.",
            field=field,
        )
    if isinstance(inputs, dict) or not hasattr(inputs, "__iter__"):
        raise BasetenValidationError(
            f"{field} must be a list (or another iterable) of {each}, got one {type(inputs).__name__}"
            f"{' (it would be sent key by key)' if isinstance(inputs, dict) else ''}.",
            field=field,
        )


def _counts(result: BatchResult) -> tuple[str, str]:
    """The counts line of a failed batch's message, and where its kept results are."""
    kept = (
        f" Results so far are in {result.output_path}; rerun with resume=True to skip them."
        if result.output_path
        else ""
    )
    counts = (
        f"{result.succeeded} of {result.total} succeeded, {result.failed} failed, {result.not_attempted} not attempted."
    )
    return counts, kept


def _verdict(result: BatchResult, run: _Run, on_error: str, budget: ErrorBudget, log: Any) -> None:
    """Raise if the batch stopped early, failed an item with ``on_error="fail"``, or is over its error budget."""
    counts, kept = _counts(result)
    aborted = run.aborted
    if aborted is not None and not run.over_budget:
        # A copy keeps every field of the error that stopped the batch (request_id, field, maybe_created,
        # retry_after...); only the message says more. The error itself stays the cause.
        err = copy.copy(aborted)
        err.message = f"Batch stopped{run.why}: {aborted.message} {counts}{kept}"
        err.args = (err.message,)
        raise err from aborted
    check_failures(result, on_error, budget, log, over_budget=run.over_budget)


def check_failures(
    result: BatchResult, on_error: str, budget: ErrorBudget, log: Any, *, over_budget: bool = False
) -> None:
    """Raise :class:`BasetenBatchError` if ``result`` failed an item with ``on_error="fail"`` or is over its
    error budget; else log the failures within the budget (the rule every batch-like result follows: a
    predict batch, gathered webhook results)."""
    counts, kept = _counts(result)
    if not result.failures:
        return
    shown = ", ".join(f"{i}: {m}" for i, m in list(sorted(result.failures.items()))[:10])
    more = f" (+{len(result.failures) - 10} more)" if len(result.failures) > 10 else ""
    if over_budget or budget.exceeded(result.failed, result.total):
        stopped = " The batch stopped once it could no longer meet the budget." if over_budget else ""
        message = f"{result.failed} of {result.total} {result.unit} failed, over the error budget ({budget}).{stopped} "
        message += f"{counts}{kept}"
    elif on_error == "fail":
        message = f"{result.failed} of {result.total} {result.unit} failed; the other {result.succeeded} succeeded "
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
        '%d of %d %s failed, within the error budget (%s); each is recorded as {"index", "error"}. '
        "Failed indices: %s%s",
        result.failed,
        result.total,
        result.unit,
        budget,
        shown,
        more,
    )


_SKIP = object()


def run_batch_sync(transport: Transport, route: Route, inputs: Iterable[Any], **kwargs: Any) -> BatchResult:
    """Run :func:`run_batch` from synchronous code (an operator's ``execute``).

    Uses uvloop when it is installed (Airflow brings it: apache-airflow-core -> fastapi[standard] ->
    uvicorn[standard]); its event loop costs less CPU per request than asyncio's, and the batch is CPU-bound.
    """
    with _few_collections():
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


#: The youngest generation's collection threshold while a batch runs (Python's default is 700).
BATCH_GC_THRESHOLD = 20_000


@contextmanager
def _few_collections() -> Iterator[None]:
    """Run the batch with fewer garbage collections, and none over what existed before it started.

    Every request allocates a few dozen short-lived objects, and hundreds of requests in flight keep many
    coroutines and futures alive, so the default threshold (700) ran a young-generation collection every
    few requests: at concurrency 512 about a third of the client's CPU per request in the profile. During the
    batch the threshold is :data:`BATCH_GC_THRESHOLD` and the objects alive at its start (Airflow's, the
    provider's) are frozen out of collections; both are restored when it ends. Garbage is still collected,
    in larger steps, so memory stays flat.
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(before[0], BATCH_GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
