"""Public base classes of the provider's operators, for subclassing in your own operators.

``BasetenBaseOperator`` owns a :class:`~airflow_provider_baseten.hooks.baseten.BasetenHook` for
``baseten_conn_id``; ``BasetenWaitingOperator`` adds waiting for remote work, inline or deferred. They are
defined in the private ``operators._base`` (whose import path keeps working); this module is their stable
public home.
"""

from __future__ import annotations

from airflow_provider_baseten.operators._base import BasetenBaseOperator, BasetenWaitingOperator

__all__ = ["BasetenBaseOperator", "BasetenWaitingOperator"]
