"""Public configuration types: what a :class:`~airflow_provider_baseten.hooks.baseten.BasetenHook` is built from.

``Settings`` is what a connection resolves to (API key, gateway, URLs, timeouts, retry policy);
``Timeouts`` and ``RetryPolicy`` can be given to the hook on their own to override a connection's::

    from airflow_provider_baseten.config import RetryPolicy, Timeouts

    hook = BasetenHook("baseten_default", timeouts=Timeouts(predict_read=300), retry=RetryPolicy(max_attempts=3))

The classes live in the private transport module; this module is their stable public home (the old
``airflow_provider_baseten.client.transport`` import path keeps working). Importing it loads httpx.
"""

from __future__ import annotations

from airflow_provider_baseten.client.transport import Gateway, RetryPolicy, Settings, Timeouts

__all__ = ["Gateway", "RetryPolicy", "Settings", "Timeouts"]
