"""The result cache for deterministic calls: the stable public home of :class:`ResultCache`::

    from airflow_provider_baseten.cache import ResultCache

    EmbeddingsOperator(task_id="embed", texts=..., cache=ResultCache("s3://bucket/cache", ttl=30 * 86400))

The store itself is internal (``airflow_provider_baseten.client.cache``); what is keyed, where entries live,
the TTL and the size bound are described in the batches guide ("Caching").
"""

from __future__ import annotations

from airflow_provider_baseten.client.cache import ResultCache

__all__ = ["ResultCache"]
