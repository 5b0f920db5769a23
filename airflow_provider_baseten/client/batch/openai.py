"""OpenAI-compatible batches on the batch engine: chat completions (one request per item) and embeddings
(many texts packed into each request, one vector per text in the results).

Both are :class:`~.engine._Run` subclasses given to :func:`~.engine.run_batch` as its ``run_factory``, so
they keep every guarantee of ``predict_batch`` (order, per-item errors, resume, error budget, outage
breaker, flat memory); they add reading the answer (its shape and token ``usage``) and, for embeddings,
packing. A packed request that fails fails each of its texts; counts, failures, the error budget, progress
and resume are all per text, as if each text had been sent alone. :class:`CheckedRun`, their base, fails a
bad item alone and unsent (``run_chain_batch`` uses it for chain inputs that are not dicts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.client.batch.engine import BatchResult, Unsendable, _Progress, _Run
from airflow_provider_baseten.client.checks import is_int
from airflow_provider_baseten.exceptions import BasetenError, BasetenValidationError

if TYPE_CHECKING:
    from airflow_provider_baseten.client.batch.budget import ErrorBudget
    from airflow_provider_baseten.client.batch.sinks import _JsonlSink, _MemorySink
    from airflow_provider_baseten.client.transport import Transport

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


class CheckedRun(_Run):
    """A run whose items are checked before sending: a bad one fails alone, unsent, and the others go on.

    :param check: Raises :class:`BasetenValidationError` for a bad item (e.g. a chain input that is not a
        dict); subclasses also turn each item into its request body (:meth:`body`).
    """

    def __init__(self, *args: Any, check: Callable[[Any], None] | None = None) -> None:
        super().__init__(*args)
        self.check = check

    def body(self, item: Any) -> Any:
        """The request body for one item (raise :class:`BasetenValidationError` to fail it unsent)."""
        if self.check is not None:
            self.check(item)
        return item

    async def attempt(self, prepared: Any, client: Any, item: Any, send: Any) -> tuple[Any, str | None, Any]:
        """Build the body (a bad item fails alone, unsent), then send it.

        The passthrough columns are not sent: a chat request or a chain's arguments have a schema they are
        not part of (``predict_batch`` sends its rows whole, as the model's input).
        """
        if self.carried and isinstance(item, dict):
            item = {k: v for k, v in item.items() if k not in self.carried}
        try:
            body = self.body(item)
        except BasetenValidationError as bad_item:
            return None, bad_item.message, bad_item
        return await super().attempt(prepared, client, body, send)


class ChainRun(CheckedRun):
    """One chain call (``run_remote``) per input."""

    kind, unit, verb = "chain", "chain inputs", "run"


class _OpenAIRun(CheckedRun):
    """A run whose answers are OpenAI-shaped: each is checked by :meth:`read` and its ``usage`` summed."""

    def __init__(self, *args: Any, model: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(*args)
        self.model = model
        self.extra = extra or {}
        self.result.usage = dict.fromkeys(USAGE_KEYS, 0)

    def add_usage(self, usage: Any) -> None:
        """Add one answer's ``usage`` (a ``TokenUsage`` or its dict) to the batch's."""
        if usage is None:
            return
        total = self.result.usage
        assert total is not None
        for key in USAGE_KEYS:
            value = usage.get(key) if isinstance(usage, dict) else getattr(usage, key, 0)
            total[key] += value if is_int(value) else 0

    def read(self, item: Any, answer: Any) -> Any:
        """Check one answer (raise ``BasetenResponseError`` on a bad shape) and return what the results keep."""
        raise NotImplementedError

    async def attempt(self, prepared: Any, client: Any, item: Any, send: Any) -> tuple[Any, str | None, Any]:
        """Build the body (a bad item fails alone, unsent), send it, then read the answer."""
        output, error, exc = await super().attempt(prepared, client, item, send)
        if exc is None:
            try:
                output = self.read(item, output)
            except BasetenError as bad:
                return None, bad.message, bad
        return output, error, exc


class ChatRun(_OpenAIRun):
    """One chat completion per item; the results keep each whole answer (``choices``, ``usage``...)."""

    kind, unit, verb = "chat completions", "prompts", "completed"

    def body(self, item: Any) -> Any:
        """The item (a chat request: ``{"messages": [...], ...}``) with the batch's ``model`` and options."""
        from airflow_provider_baseten.models import ChatCompletionRequest, options

        if not isinstance(item, dict):
            raise BasetenValidationError(
                f"Each chat request must be a dict with 'messages', got {type(item).__name__}.", field="requests"
            )
        body = {**self.extra, **({"model": self.model} if self.model else {}), **item}
        options(ChatCompletionRequest, body)
        return body

    def read(self, item: Any, answer: Any) -> Any:
        """Check the answer is a chat completion; sum its usage."""
        from airflow_provider_baseten.models import ChatCompletion, parse

        self.add_usage(parse(ChatCompletion, answer, "chat_completions").usage)
        return answer


class EmbedRun(_OpenAIRun):
    """Texts packed ``batch_size`` (and at most ``max_chars`` characters) per request.

    The engine sees one item per request (a chunk); :class:`_PerText` turns each chunk's outcome back into
    one result per text for the sink, and the counts are kept per text. With ``text_column`` each input is
    a row (a dict) and its text is that key's value (the other keys can be ``passthrough_columns``).
    """

    kind, unit, verb = "embeddings", "texts", "embedded"
    cache_per_item = False  # a request packs many texts: each text is looked up (pack) and stored on its own

    def __init__(
        self,
        transport: Transport,
        inputs: Iterable[Any],
        sink: _MemorySink | _JsonlSink,
        result: BatchResult,
        budget: ErrorBudget,
        max_concurrency: int,
        abort_after: int | None,
        adaptive: Any = None,
        *,
        batch_size: int,
        max_chars: int | None,
        model: str | None = None,
        extra: dict[str, Any] | None = None,
        text_column: str | None = None,
    ) -> None:
        super().__init__(
            transport, (), sink, result, budget, max_concurrency, abort_after, adaptive, model=model, extra=extra
        )
        self.batch_size, self.max_chars = batch_size, max_chars
        self.text_column = text_column
        self.texts = sink
        self.sink = _PerText(sink, self)  # type: ignore[assignment]  # the sinks' protocol, per request
        self.chunks: dict[int, list[int]] = {}  # chunk (request) index -> its texts' indices, until written
        self.made = 0
        self.texts_seen = 0
        self.last_size = 1
        self.progress: _Progress | None = None  # the batch's, once a worker runs: unsent texts count in it
        self.source = enumerate(self.pack(inputs))

    def inputs_seen(self) -> int:
        """Texts read, not requests."""
        return self.texts_seen

    def pack(self, texts: Iterable[Any]) -> Iterator[list[str]]:
        """Group the texts not already in the output into requests; a text that is not one fails alone."""
        batch: list[str] = []
        indices: list[int] = []
        chars = 0
        for i, text in enumerate(texts):
            self.texts_seen = i + 1
            if self.texts.done(i):
                self.result.skipped += 1
                continue
            if self.text_column is not None and not isinstance(text, Unsendable):
                text = self.text_of(text, i)
            if isinstance(text, Unsendable):
                self.fail_unsent(i, text.error)
                continue
            if not isinstance(text, str) or not text:
                message = f"Each text must be a non-empty string, got {type(text).__name__} {str(text)[:40]!r}."
                self.fail_unsent(i, BasetenValidationError(message, field="texts"))
                continue
            if self.cache is not None and self.from_cache(i, text):
                continue
            full = len(batch) >= self.batch_size or (self.max_chars is not None and chars + len(text) > self.max_chars)
            if batch and full:
                yield self.chunk(batch, indices)
                batch, indices, chars = [], [], 0
            batch.append(text)
            indices.append(i)
            chars += len(text)
        if batch:
            yield self.chunk(batch, indices)

    def chunk(self, batch: list[str], indices: list[int]) -> list[str]:
        self.chunks[self.made] = indices
        self.made += 1
        return batch

    def text_of(self, row: Any, index: int) -> Any:
        """The text of a row (``text_column``), or an :class:`Unsendable` saying it has none."""
        if isinstance(row, Mapping) and self.text_column in row:
            return row[self.text_column]
        return Unsendable(
            BasetenValidationError(f"texts[{index}] has no {self.text_column!r} (text_column).", field="text_column")
        )

    def fail_unsent(self, index: int, error: BasetenValidationError) -> None:
        """A text that cannot be sent (not a non-empty string, or a row without it): failed and written at once."""
        self.count_failed([index], error, error.message)
        self.texts.put(index, None, error.message)
        if self.progress is not None:
            self.progress.tick(True)

    def from_cache(self, index: int, text: str) -> bool:
        """Write the cached vector of ``text`` (counted as a success, never sent); ``False`` if there is none."""
        from airflow_provider_baseten.client.cache import MISS

        assert self.cache is not None
        vector = self.cache.get(self.cache.key(self.body(text)))
        if vector is MISS:
            return False
        self.result.succeeded += 1
        self.texts.put(index, vector, None)
        if self.progress is not None:
            self.progress.tick(False)
        return True

    def body(self, item: Any) -> Any:
        """``{"input": [texts], "model": ...}`` plus the batch's options (one text's own key: ``input`` a str)."""
        return {**self.extra, "input": item, **({"model": self.model} if self.model else {})}

    async def attempt(self, prepared: Any, client: Any, item: Any, send: Any) -> tuple[Any, str | None, Any]:
        """Send one packed request; with a cache, store each of its texts' vectors under the text's own key."""
        output, error, exc = await super().attempt(prepared, client, item, send)
        if exc is None and self.cache is not None:
            for text, vector in zip(item, output, strict=True):
                self.cache.put(self.cache.key(self.body(text)), vector)
        return output, error, exc

    def read(self, item: Any, answer: Any) -> Any:
        """The vectors of one answer, in input order; one per text, or the whole request fails.

        Checked by hand rather than with ``EmbeddingsResponse``: validating every float of 32 vectors of
        1,024 costs about 0.5 ms a request, more than the rest of the client's work on it.
        """
        data = answer.get("data") if isinstance(answer, dict) else None
        by_index: dict[Any, Any] = {}
        ok = isinstance(data, list) and len(data) == len(item)
        if ok and isinstance(data, list):
            for d in data:
                if not isinstance(d, dict) or not isinstance(d.get("embedding"), (list, str)):
                    ok = False
                    break
                by_index[d.get("index")] = d["embedding"]
            ok = ok and len(by_index) == len(item) and all(i in by_index for i in range(len(item)))
        if not ok:
            from airflow_provider_baseten.client.redact import redact
            from airflow_provider_baseten.exceptions import BasetenResponseError

            raise BasetenResponseError(
                f"The embeddings answer does not hold one vector for each of the request's {len(item)} text(s) "
                "(data[].index 0..n-1, each with an embedding): every text of that request is failed.",
                body_snippet=redact(str(answer)[:300]),
            )
        self.add_usage(_usage(answer))
        return [by_index[i] for i in range(len(item))]

    def finished(self, index: int, exc: BasetenError | None, error: str | None) -> None:
        """Count a request's outcome once per text it carried."""
        texts = self.chunks[index]
        self.last_size = len(texts)
        if exc is None:
            self.result.succeeded += len(texts)
            self.consecutive = 0
            self.watch.passed()
            return
        self.count_failed(texts, exc, error if error is not None else str(exc))

    async def worker(self, prepared: Any, progress: _Progress, slot: int = 0) -> None:
        """The engine's worker, with progress counted in texts."""
        self.progress = progress
        await super().worker(prepared, _TextProgress(progress, self), slot)  # type: ignore[arg-type]


def _usage(answer: dict[str, Any]) -> Any:
    usage = answer.get("usage")
    return usage if isinstance(usage, dict) else None


class _TextProgress:
    """Progress in texts: a request of n texts moves it by n."""

    def __init__(self, progress: _Progress, run: EmbedRun) -> None:
        self.progress, self.run = progress, run

    def tick(self, error: bool) -> None:
        extra = self.run.last_size - 1
        self.progress.done += extra
        self.progress.errors += extra * error
        self.progress.tick(error)


class _PerText:
    """The engine's sink for packed requests: one request's outcome becomes one line per text."""

    def __init__(self, texts: _MemorySink | _JsonlSink, run: EmbedRun) -> None:
        self.texts, self.run = texts, run
        self.ordered = texts.ordered

    def put(self, index: int, output: Any, error: str | None) -> None:
        indices = self.run.chunks.pop(index)
        for j, i in enumerate(indices):
            self.texts.put(i, None if error is not None else output[j], error)

    def done(self, index: int) -> bool:
        return False  # skipping is per text, while packing

    def close(self) -> None:
        self.texts.close()
