"""``BasetenHook``: every Baseten endpoint, direct or through LowCodeAPI, sync and async.

The methods live in one module per part of the API (``_inference``, ``_deployments``, ``_environments``,
``_training``), each written once as a builder (see ``_api``); this module puts them together.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_baseten.hooks._api import RECONCILE_CLOCK_SKEW

# Internal names other provider modules and tests import from here (explicit re-exports, not public API).
from airflow_provider_baseten.hooks._api import _Call as _Call
from airflow_provider_baseten.hooks._api import _created_at as _created_at
from airflow_provider_baseten.hooks._core import _warned_gateway_model as _warned_gateway_model
from airflow_provider_baseten.hooks._deploy import _DeployApi
from airflow_provider_baseten.hooks._deployments import _DeploymentApi
from airflow_provider_baseten.hooks._environments import _EnvironmentApi
from airflow_provider_baseten.hooks._inference import _InferenceApi
from airflow_provider_baseten.hooks._openai import _OpenAIApi
from airflow_provider_baseten.hooks._training import _TrainingApi


class BasetenHook(_InferenceApi, _OpenAIApi, _DeployApi, _DeploymentApi, _EnvironmentApi, _TrainingApi):
    """Talk to Baseten from Airflow: inference, deployments, environments, secrets, API keys, training, deploys.

    :param baseten_conn_id: The Airflow connection (type ``baseten``). Its password is the API key.
    :param timeouts: Override connect/read timeouts (:class:`~airflow_provider_baseten.config.Timeouts`).
    :param retry: Override the retry policy (:class:`~airflow_provider_baseten.config.RetryPolicy`).
    :param settings: Use these settings instead of reading a connection (tests, scripts).
    :param http_transport: An httpx transport to send through (``httpx.MockTransport`` in unit tests).

    Inference methods take the target as ``model_id`` (default: the connection's), ``environment``
    (default production; ``"development"`` is the development deployment) or ``deployment_id``.
    OpenAI-compatible methods (``embeddings``, ``chat_completions``, ``rerank``, ``embed_batch``...) go to
    Baseten's Model APIs with ``model_apis=True`` (``model=`` alone does so only on a connection without a
    default ``model_id``; with one it is refused as ambiguous); chains take ``chain_id``.
    """

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form: hide unused fields and relabel the password as the API key."""
        from airflow_provider_baseten import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    def test_connection(self) -> tuple[bool, str]:
        """Check the API key with one cheap authenticated call (list models). Never raises."""
        from airflow_provider_baseten.exceptions import BasetenError

        try:
            settings = self.settings
            models = self.list_models()
        except BasetenError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI wants a message, not a traceback
            from airflow_provider_baseten._redact import redact

            return False, redact(f"{type(exc).__name__}: {exc}")
        where = "LowCodeAPI" if settings.gateway == "lowcodeapi" else "Baseten"
        return True, f"Connected to {where} at {settings.base_url}: {len(models)} model(s) visible."


__all__ = ["RECONCILE_CLOCK_SKEW", "BasetenHook"]
