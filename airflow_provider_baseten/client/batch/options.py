"""The options every batch takes, defined once: their names and types (:class:`BatchOptions`), their defaults
and their checks (:func:`check_batch_options`).

``BasetenHook.predict_batch``, ``embed_batch``, ``chat_completions_batch`` and ``run_chain_batch`` (and their
async twins) take these as keyword arguments (``**options: Unpack[BatchOptions]``), so a type checker checks each
name and type; :func:`~airflow_provider_baseten.client.batch.engine.run_batch` and the batch operators
(``PredictOperator`` and its subclasses) check them with :func:`check_batch_options`, the operators when the DAG
is parsed, so a bad option fails the same way, with the same message, wherever it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

from airflow_provider_baseten.client.batch.adaptive import AUTO
from airflow_provider_baseten.client.batch.budget import ErrorBudget
from airflow_provider_baseten.client.checks import flag, int_in, number_in, one_of, optional_int_in
from airflow_provider_baseten.exceptions import BasetenValidationError

#: ``max_concurrency`` when none is given.
DEFAULT_MAX_CONCURRENCY = 32
#: ``progress_interval`` (seconds) when none is given.
DEFAULT_PROGRESS_INTERVAL = 5.0
#: The values of ``on_error``; the first is the default.
ON_ERROR = ("fail", "record")


class BatchOptions(TypedDict, total=False):
    """Keyword options of every batch method (all optional).

    :param max_concurrency: Requests in flight at once (1-1024, default 32); each worker has its own connection.
        ``"auto"`` finds the deployment's capacity as the batch runs: it starts at 8, grows while latency holds
        (doubling per round trip at first, then one per round trip) and backs off to 90% of the load in flight
        on a 429 or 503 (AIMD), between 4 and 512.
    :param on_error: ``"fail"`` (default) attempts every item then raises :class:`BasetenBatchError` naming the
        failed indices; ``"record"`` keeps ``{"index", "error"}`` entries in the results instead. An item whose
        retries run out on a transient error (5xx, 429, timeout, dropped connection) is given up to three retry
        sequences before it counts as failed; a run of such failures (an outage) stops the batch early, keeping
        what succeeded. A model's own error (a 4xx, or a 500 Baseten marks as the model's) is tried at most twice
        and is not an outage. If the first 10 completed items all fail with the same error that every input
        would get (401/403, 404 model or deployment not found, 400/413/422), the batch stops early and raises it.
    :param output_path: Write JSONL lines ``{"index", "output"|"error"}`` here (a path or ``ObjectStoragePath``)
        instead of keeping outputs in memory. Results are journalled as they arrive and merged into the file
        when the batch ends (an atomic replace): a ``kill -9`` at any moment loses only the requests in flight,
        and never what the file held before. A name ending in ``.parquet`` writes Parquet (embeddings as a
        ``list<float>`` column; see ``client.batch.parquet.result_schema``). Missing local folders are created.
    :param resume: With ``output_path``: keep the results already there and skip those indices. Refused
        (:class:`BasetenValidationError`, ``field="resume"``, nothing sent) when the file's results were written
        for other inputs: the fingerprint of the inputs (count, size, hash) is kept beside the file
        (``<output_path>.inputs.json``) and in its journal. Inputs given as an iterator are not checked (a
        warning says so) unless ``input_fingerprint`` is given.
    :param input_fingerprint: What the inputs are, for the resume check, when they are not a list (the operators
        pass a file's); a list's own is taken when it is not given.
    :param progress_interval: Seconds between progress log lines (default 5).
    :param total: The number of inputs, when they have no ``len()`` (for progress and ETA).
    :param log: The logger for progress and failures (default: the hook's).
    :param max_failures: Error budget: fail (and stop as soon as it is certain) when more than this many items
        failed.
    :param max_error_rate: Error budget as a share of all items (0.0-1.0). With ``on_error="record"`` and neither
        limit given, 0.1 (10%); ``1.0`` accepts any failures. Within budget the task succeeds and logs the
        failures at WARNING.
    :param passthrough_columns: Input columns (e.g. ``["id"]``) copied into each result, so a pipeline can
        join outputs back to its rows: each input must be a dict (a Parquet row, a JSONL object) holding them.
        A result then reads ``{"index", "output"|"error", <columns>}``: in the ``output_path`` file (JSONL
        keys; Parquet columns between ``index`` and ``output``) and, without ``output_path``, in ``results``.
        A row without one of them is a :class:`BasetenValidationError` naming the column and the row's index,
        before anything is sent when the inputs are a list (or, in the operators, a file, read whole first);
        from an iterator, that row fails alone, unsent, with that error. A name that is a result field
        (``index``, ``output``, ``error``) is refused up front.
    """

    max_concurrency: int | Literal["auto"]
    on_error: str
    output_path: Any
    resume: bool
    input_fingerprint: dict[str, Any] | None
    progress_interval: float
    total: int | None
    log: Any
    max_failures: int | None
    max_error_rate: float | None
    passthrough_columns: Sequence[str] | None


#: The fields of every result record, which a passthrough column may not replace.
RESULT_FIELDS = ("index", "output", "error")


def check_passthrough_columns(value: Any) -> list[str]:
    """``value`` as a list of column names, or a :class:`BasetenValidationError` saying what to fix."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise BasetenValidationError(
            f"passthrough_columns must be a list of column names (e.g. ['id']), got {type(value).__name__} {value!r}.",
            field="passthrough_columns",
        )
    for name in value:
        if not isinstance(name, str) or not name:
            raise BasetenValidationError(
                f"passthrough_columns holds {name!r}: each must be a column name (a non-empty string).",
                field="passthrough_columns",
            )
        if name in RESULT_FIELDS:
            raise BasetenValidationError(
                f"passthrough_columns: {name!r} is a field of every result ({', '.join(RESULT_FIELDS)}); the input "
                "column would overwrite it. Rename that column in the inputs.",
                field="passthrough_columns",
            )
    if len(set(value)) != len(value):
        raise BasetenValidationError(f"passthrough_columns names a column twice: {value}.", field="passthrough_columns")
    return list(value)


def check_concurrency(value: Any) -> int:
    """``value`` if it is a valid fixed ``max_concurrency`` (1-1024), else a :class:`BasetenValidationError`."""
    return int_in("max_concurrency", value, 1, 1024, also=repr(AUTO))


def missing_column(item: Any, columns: list[str], index: int) -> BasetenValidationError | None:
    """The error for an input row that lacks one of the ``passthrough_columns`` (``None`` if it has them all)."""
    if not isinstance(item, Mapping):
        return BasetenValidationError(
            f"passthrough_columns {columns} are read from each input row, but input {index} is a "
            f"{type(item).__name__}, not a dict of columns.",
            field="passthrough_columns",
        )
    for column in columns:
        if column not in item:
            return BasetenValidationError(
                f"passthrough_columns: input {index} has no column {column!r} (it has {sorted(item)[:20]}). "
                "Give every row that column, or drop it from passthrough_columns.",
                field="passthrough_columns",
            )
    return None


def check_batch_options(options: BatchOptions) -> BatchOptions:
    """Check each option given (a :class:`BasetenValidationError` naming it), before anything is sent.

    Returns ``options``. ``output_path``, ``log`` and ``input_fingerprint`` are not checked here: the sink
    checks the path when it opens it.
    """
    if options.get("max_concurrency", AUTO) != AUTO:
        check_concurrency(options["max_concurrency"])
    on_error = one_of("on_error", options.get("on_error", ON_ERROR[0]), ON_ERROR)
    ErrorBudget.resolve(on_error, options.get("max_failures"), options.get("max_error_rate"))
    if "resume" in options:
        flag("resume", options["resume"])
    if "progress_interval" in options:
        number_in("progress_interval", options["progress_interval"], 0)
    optional_int_in("total", options.get("total"), 0)
    check_passthrough_columns(options.get("passthrough_columns"))
    return options
