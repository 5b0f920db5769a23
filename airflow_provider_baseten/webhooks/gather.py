"""Gather stored webhook results into one batch results file, in input order.

What :class:`~airflow_provider_baseten.operators.inference.AsyncPredictOperator` (and
:class:`~airflow_provider_baseten.sensors.inference.AsyncPredictSensor`) do with ``results_path`` and
``output_path`` once every request has a stored result or is settled without one. The file is a batch's
(:mod:`airflow_provider_baseten.batch_io`): JSONL or Parquet, ``{"index", "output"}`` or ``{"index",
"error"}`` per request, in ``request_ids`` order, written through the same sink, so the same rules hold:

- a kill at any instant loses nothing already gathered (the sink's journal), and ``resume=True`` skips the
  indices the file already holds with an output;
- a failed request is a per-item error: the webhook's ``errors`` (``code: message``), or, for a request
  without a stored result, its state (``WEBHOOK_FAILED``, ...) and why;
- the error budget (``on_error``, ``max_failures``, ``max_error_rate``) decides whether the task fails.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.client.batch.budget import ErrorBudget
from airflow_provider_baseten.client.batch.engine import BatchResult, check_failures
from airflow_provider_baseten.client.batch.sinks import open_sink

if TYPE_CHECKING:
    from airflow_provider_baseten.client.batch.fingerprint import Fingerprint
    from airflow_provider_baseten.webhooks.store import ResultStore

__all__ = ["DELIVERING", "LOST_REASONS", "NOT_STORED", "STORED", "gather_results", "open_store", "result_of"]

#: The provider's states of a request in a webhook wait (besides Baseten's own status values).
#: Its result is in the store.
STORED = "STORED"
#: Baseten says the request ended and is still delivering its result: keep listening.
DELIVERING = "DELIVERING"
#: Baseten says it delivered the result, but not to this store (another webhook URL, or a store that lost it).
NOT_STORED = "NOT_STORED"

#: Why a request settled without a stored result, by its state (the per-item error says it).
LOST_REASONS = {
    NOT_STORED: "Baseten delivered the result, but not to this store",
    "WEBHOOK_FAILED": "both webhook deliveries failed: the output is lost",
    "CANCELED": "the request was canceled",
    "UNKNOWN": "not in the store and Baseten no longer keeps its status: the output is lost",
}


def open_store(results_path: Any, results_conn_id: str | None = None) -> ResultStore:
    """The receiver's store at ``results_path``: a local folder, an ``ObjectStoragePath``, or a URL string
    opened as an ``ObjectStoragePath`` with ``results_conn_id``."""
    from airflow_provider_baseten.webhooks.store import ResultStore

    if isinstance(results_path, str) and "://" in results_path:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        results_path = ObjectStoragePath(results_path, conn_id=results_conn_id)
    return ResultStore(results_path)


def result_of(body: Mapping[str, Any]) -> tuple[Any, str | None]:
    """``(output, error)`` of a stored webhook body: its ``data``, or its ``errors`` as one message."""
    errors = body.get("errors") or []
    if errors:
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" if isinstance(e, Mapping) else str(e) for e in errors)
        return None, text
    return body.get("data"), None


def gather_results(
    store: ResultStore,
    request_ids: Sequence[str],
    output_path: Any,
    *,
    settled: Mapping[str, str] | None = None,
    why: Mapping[str, str] | None = None,
    resume: bool = False,
    fingerprint: Fingerprint | None = None,
    on_error: str = "fail",
    max_failures: int | None = None,
    max_error_rate: float | None = None,
    log: Any = None,
) -> BatchResult:
    """Write the stored result of each of ``request_ids`` to ``output_path``, in order; apply the error budget.

    :param store: The receiver's store.
    :param request_ids: The requests, in input order (index ``i`` of the file is ``request_ids[i]``).
    :param output_path: A local path or ``ObjectStoragePath``; ``.parquet`` writes Parquet, else JSONL.
    :param settled: ``{request_id: state}`` of the requests the wait settled without a stored result.
    :param why: ``{request_id: message}`` explaining those (Baseten's error codes when known).
    :param resume: Keep the outputs ``output_path`` already holds and gather only the rest.
    :param fingerprint: The inputs' fingerprint, recorded beside the file (a resume over other inputs is refused).
    :param on_error: ``fail`` (any failed request fails the task, after all are written) or ``record``.
    :param max_failures: Error budget: the most failed requests the task may have and succeed.
    :param max_error_rate: Error budget as a share of all requests (0.0-1.0).
    :raises BasetenBatchError: a failed request with ``on_error="fail"``, or over the budget. The file holds
        everything either way.
    """
    import logging

    log = log or logging.getLogger("airflow_provider_baseten")
    budget = ErrorBudget.resolve(on_error, max_failures, max_error_rate)
    started = time.monotonic()
    result = BatchResult(total=len(request_ids), output_path=str(output_path))
    settled, why = settled or {}, why or {}
    sink = open_sink(output_path, resume, fingerprint)
    try:
        for index, rid in enumerate(request_ids):
            if sink.done(index):
                result.skipped += 1
                continue
            body = store.get(rid)
            if body is not None:
                output, error = result_of(body)
            else:
                state = settled.get(rid, "MISSING")
                reason = why.get(rid) or LOST_REASONS.get(
                    state, "no result in the store (was it pruned? see the receiver's retention_days)"
                )
                output, error = None, f"{state}: {reason} (request {rid})"
            sink.put(index, output, error)
            if error is None:
                result.succeeded += 1
            else:
                result.failed += 1
                result.failures[index] = error
    finally:
        sink.close()  # what was gathered is merged into the file, even when this run fails part-way
    result.elapsed = time.monotonic() - started
    check_failures(result, on_error, budget, log)
    return result
