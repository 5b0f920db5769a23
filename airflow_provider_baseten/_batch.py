"""Batch prediction: bounded concurrency, input order kept, nothing that succeeded is lost.

Each worker owns a one-connection ``httpx.AsyncClient``: with many requests waiting on one shared pool,
httpcore rescans the whole pool for every waiting request and throughput collapses (about 15x slower at
concurrency 64 in our benchmark). Results go to an ordered sink: a list in memory, or a JSONL file written
in input order through a bounded reorder window, so memory stays flat however many inputs there are.
"""

from __future__ import annotations

import asyncio
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


class _JsonlSink:
    """Writes ``{"index", "output"|"error"}`` lines in index order, merging lines kept from a previous run."""

    def __init__(self, path: Any, resume: bool) -> None:
        self.path = path
        self._done = bytearray()
        self._kept: Any = None  # a local temp file of successful lines from the previous run
        if resume and _exists(path):
            self._kept = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed in close()
            with _open(path, "r") as old:
                for line in old:
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue  # a torn last line from a crash: redo that item
                    if "output" in rec and isinstance(rec.get("index"), int):
                        self._mark(rec["index"])
                        self._kept.write(line if line.endswith("\n") else line + "\n")
            self._kept.seek(0)
        self._next_kept = self._read_kept()
        self._fh = _open(path, "w")

    def _mark(self, index: int) -> None:
        if index >= len(self._done):
            self._done.extend(b"\0" * (index + 1 - len(self._done) + 1024))
        self._done[index] = 1

    def _read_kept(self) -> tuple[int, str] | None:
        if self._kept is None:
            return None
        line = self._kept.readline()
        return (json.loads(line)["index"], line) if line else None

    def done(self, index: int) -> bool:
        return index < len(self._done) and self._done[index] == 1

    def _flush_kept_before(self, index: int | None) -> None:
        while self._next_kept is not None and (index is None or self._next_kept[0] < index):
            self._fh.write(self._next_kept[1])
            self._next_kept = self._read_kept()

    def put(self, index: int, output: Any, error: str | None) -> None:
        self._flush_kept_before(index)
        rec = {"index": index, "error": error} if error is not None else {"index": index, "output": output}
        self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._flush_kept_before(None)
        self._fh.close()
        if self._kept is not None:
            self._kept.close()


def _exists(path: Any) -> bool:
    return path.exists() if hasattr(path, "exists") else os.path.exists(path)


def _open(path: Any, mode: str) -> Any:
    if hasattr(path, "open"):
        return path.open(mode, encoding="utf-8") if "b" not in mode else path.open(mode)
    return open(path, mode, encoding="utf-8")


# -- inputs --------------------------------------------------------------------------------------------
def read_jsonl(path: Any) -> Iterator[Any]:
    """Stream the JSON values of a JSONL file (blank lines skipped)."""
    with _open(path, "r") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
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
) -> BatchResult:
    """Run ``route`` (a predict call) for every input. See ``BasetenHook.predict_batch``."""
    log = log or logging.getLogger("airflow_provider_baseten")
    if on_error not in ON_ERROR:
        raise BasetenValidationError(f"on_error must be 'fail' or 'record', got {on_error!r}.", field="on_error")
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
    state = {"next_write": 0, "consecutive": 0, "aborted": None, "seen": 0, "waiting": 0}
    room = asyncio.Condition()

    def emit(index: int, output: Any, error: str | None) -> None:
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

    async def worker() -> None:
        client = transport.new_async_client(1)
        send = _direct_send(client)
        try:
            while (got := await take()) is not None:
                index, item = got
                output, error, exc = await ep_template.send(client, item, send)
                rounds = 1
                while isinstance(exc, (*_UNAVAILABLE, BasetenRateLimitError)) and rounds < ITEM_ROUNDS:
                    if isinstance(exc, _UNAVAILABLE):
                        state["consecutive"] += 1
                        if state["consecutive"] >= abort_after and not state["aborted"]:
                            state["aborted"] = exc
                    if state["aborted"]:
                        break
                    rounds += 1
                    output, error, exc = await ep_template.send(client, item, send)
                if exc is None:
                    result.succeeded += 1
                    state["consecutive"] = 0
                else:
                    result.failed += 1
                    result.failures[index] = error  # type: ignore[assignment]
                    if isinstance(exc, BasetenAuthError):
                        state["aborted"] = exc
                    elif isinstance(exc, _UNAVAILABLE):
                        state["consecutive"] += 1
                        if state["consecutive"] >= abort_after and not state["aborted"]:
                            state["aborted"] = exc
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
    aborted = state["aborted"]
    if aborted is not None:
        kept = (
            f" Results so far are in {result.output_path}; rerun with resume=True to skip them." if output_path else ""
        )
        raise type(aborted)(
            f"Batch stopped: {aborted.message} {result.succeeded} of {result.total} succeeded, {result.failed} failed, "
            f"{result.not_attempted} not attempted.{kept}",
            status_code=aborted.status_code,
            error_code=aborted.error_code,
        )
    if result.failures and on_error == "fail":
        shown = ", ".join(f"{i}: {m}" for i, m in list(sorted(result.failures.items()))[:10])
        more = f" (+{len(result.failures) - 10} more)" if len(result.failures) > 10 else ""
        raise BasetenBatchError(
            f"{result.failed} of {result.total} predictions failed; the other {result.succeeded} succeeded and are "
            f"kept{' in ' + result.output_path if output_path else ''}. Failed indices: {shown}{more}",
            failures=result.failures,
            results=result.results,
            total=result.total,
        )
    return result


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
