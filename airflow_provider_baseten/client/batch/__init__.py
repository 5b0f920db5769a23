"""Batch prediction: one engine (:mod:`.engine`), its error budget (:mod:`.budget`), where results go
(:mod:`.sinks`) and the prepared request it sends (:mod:`.prepared`). Import from here.
"""

from __future__ import annotations

from airflow_provider_baseten.client.batch.adaptive import AUTO, AdaptiveLimit
from airflow_provider_baseten.client.batch.budget import DEFAULT_RECORD_ERROR_RATE, EARLY_STOP_AFTER, ErrorBudget
from airflow_provider_baseten.client.batch.engine import BatchResult, run_batch, run_batch_sync
from airflow_provider_baseten.client.batch.options import check_batch_options, check_concurrency
from airflow_provider_baseten.client.batch.sinks import journal_dir, read_jsonl, validate_jsonl

__all__ = [
    "AUTO",
    "DEFAULT_RECORD_ERROR_RATE",
    "EARLY_STOP_AFTER",
    "AdaptiveLimit",
    "BatchResult",
    "ErrorBudget",
    "check_batch_options",
    "check_concurrency",
    "journal_dir",
    "read_jsonl",
    "run_batch",
    "run_batch_sync",
    "validate_jsonl",
]
