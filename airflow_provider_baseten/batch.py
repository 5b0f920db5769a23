"""Public batch types: what ``BasetenHook.predict_batch`` (and the batch operators) return.

The engine itself is private (``airflow_provider_baseten._batch``, whose import path keeps working); this
module is the stable public home of its result type::

    from airflow_provider_baseten.batch import BatchResult

Batch input and output files (JSONL or Parquet) and sharding live in :mod:`airflow_provider_baseten.batch_io`
and are re-exported here.
"""

from __future__ import annotations

from airflow_provider_baseten._batch import BatchResult
from airflow_provider_baseten.batch_io import (
    MissingExtraError,
    Shard,
    count_records,
    merge_outputs,
    read_records,
    read_results,
    split_input,
    write_records,
)

__all__ = [
    "BatchResult",
    "MissingExtraError",
    "Shard",
    "count_records",
    "merge_outputs",
    "read_records",
    "read_results",
    "split_input",
    "write_records",
]
