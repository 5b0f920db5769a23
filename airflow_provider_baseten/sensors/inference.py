"""AsyncPredictSensor: wait for async requests, in poke or deferrable mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.sensors._base import BasetenTriggerSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger


class AsyncPredictSensor(BasetenTriggerSensor):
    """Wait until async requests are terminal.

    ``SUCCEEDED`` succeeds; ``FAILED``, ``EXPIRED`` and ``CANCELED`` fail with Baseten's error codes and
    messages; ``WEBHOOK_FAILED`` fails too (the output is lost) unless ``fail_on_webhook_failed=False``.
    Status calls stay within Baseten's 20 requests/s budget however many ids are watched.

    This sensor never cancels requests when killed: it did not submit them. Returns ``{request_id: status}``.

    :param request_ids: One id or a list (templated, e.g. an ``XComArg`` of ``AsyncPredictOperator``).
    :param model_id: The model (default: the connection's ``model_id``).
    :param chain_id: Watch a chain's requests (``async_run_chain``, ``AsyncPredictOperator(chain_id=...)``).
    :param deferrable: Wait in the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("request_ids", "model_id", "chain_id", "baseten_conn_id")
    event_keys = ("request_ids",)

    def __init__(
        self,
        *,
        request_ids: Any,
        model_id: str | None = None,
        chain_id: str | None = None,
        fail_on_webhook_failed: bool = True,
        poke_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        if model_id is not None and chain_id is not None:
            raise ValueError(
                "AsyncPredictSensor watches a model's requests or a chain's: give model_id or chain_id, not both."
            )
        self.request_ids = request_ids
        self.model_id = model_id
        self.chain_id = chain_id
        self.fail_on_webhook_failed = fail_on_webhook_failed

    def _ids(self) -> list[str]:
        from airflow_provider_baseten.exceptions import BasetenValidationError

        ids = [self.request_ids] if isinstance(self.request_ids, str) else list(self.request_ids or [])
        if not ids or not all(isinstance(i, str) and i for i in ids):
            raise BasetenValidationError(
                f"request_ids must be ids (strings), got {self.request_ids!r}.", field="request_ids"
            )
        return ids

    def make_trigger(self, context: Context, end_time: float | None) -> AsyncPredictTrigger:
        """Watch the request ids."""
        from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger

        return AsyncPredictTrigger(
            conn_id=self.baseten_conn_id,
            request_ids=self._ids(),
            model_id=self.model_id,
            chain_id=self.chain_id,
            fail_on_webhook_failed=self.fail_on_webhook_failed,
            poll_interval=self.poke_interval,
            end_time=end_time,
            hook_params=self.hook_params,
        )

    def finish(self, event: BasetenTriggerEvent) -> dict[str, str]:
        """Fail unless every request succeeded; return ``{request_id: status}``."""
        super().finish(event)
        return dict(event.get("states", {}))
