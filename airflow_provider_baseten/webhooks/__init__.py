"""The Baseten webhook receiver: verifies Baseten's signed async-output deliveries and stores them durably.

:mod:`~airflow_provider_baseten.webhooks.store` is the store the waits read; the ASGI app is in
``airflow_provider_baseten.webhooks.app`` (imported only where it is served, so importing this package
pulls in no web framework).
"""

from __future__ import annotations

from airflow_provider_baseten.webhooks.store import ResultStore

__all__ = ["ResultStore"]
