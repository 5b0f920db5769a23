"""Public batch types: what ``BasetenHook.predict_batch`` (and the batch operators) return.

The engine itself is private (``airflow_provider_baseten._batch``, whose import path keeps working); this
module is the stable public home of its result type::

    from airflow_provider_baseten.batch import BatchResult
"""

from __future__ import annotations

from airflow_provider_baseten._batch import BatchResult

__all__ = ["BatchResult"]
