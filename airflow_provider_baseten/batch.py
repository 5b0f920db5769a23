"""Public batch types: what ``BasetenHook.predict_batch`` (and the batch operators) take and return.

The engine itself is internal (``airflow_provider_baseten.client.batch``); this module is the stable public home
of its options and result types::

    from airflow_provider_baseten.batch import BatchOptions, BatchResult

Batch input and output files (JSONL or Parquet) and sharding live in :mod:`airflow_provider_baseten.batch_io`
and are re-exported here.
"""

from __future__ import annotations

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
from airflow_provider_baseten.client.batch import BatchResult
from airflow_provider_baseten.client.batch.options import BatchOptions

__all__ = [
    "BatchOptions",
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
