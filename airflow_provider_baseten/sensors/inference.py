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
    :param results_path: The webhook receiver's store: listen to it instead of polling Baseten's status API
        (no Baseten call while results arrive; see
        :class:`~airflow_provider_baseten.triggers.webhooks.WebhookResultTrigger`). The sensor then returns
        ``{request_id: state}`` of the requests without a stored result only.
    :param webhook_grace: Seconds the store may stay without a new result before the missing requests are asked
        about on the status API (default 60).
    :param output_path: Required with ``results_path``: gather the outputs in ``request_ids`` order into this JSONL or
        Parquet file, like a batch, and return the batch summary; ``resume``, ``on_error``, ``max_failures`` and
        ``max_error_rate`` are the batch's (see ``AsyncPredictOperator``).
    """

    template_fields: Sequence[str] = (
        "request_ids",
        "model_id",
        "chain_id",
        "results_path",
        "output_path",
        "baseten_conn_id",
    )
    event_keys = ("request_ids",)
    # A webhook wait's arguments (set and checked by _tasks.set_webhook_wait).
    results_path: Any
    webhook_grace: float | None
    output_path: Any
    resume: bool | None
    on_error: str
    max_failures: int | None
    max_error_rate: float | None

    def __init__(
        self,
        *,
        request_ids: Any,
        model_id: str | None = None,
        chain_id: str | None = None,
        fail_on_webhook_failed: bool = True,
        poke_interval: float | None = None,
        results_path: Any = None,
        webhook_grace: float | None = None,
        output_path: Any = None,
        resume: bool | None = None,
        on_error: str = "fail",
        max_failures: int | None = None,
        max_error_rate: float | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten._tasks import set_webhook_wait

        super().__init__(poke_interval=poke_interval, **kwargs)
        set_webhook_wait(
            self,
            results_path=results_path,
            webhook_grace=webhook_grace,
            output_path=output_path,
            resume=resume,
            on_error=on_error,
            max_failures=max_failures,
            max_error_rate=max_error_rate,
        )
        self._context: Context | None = None
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
        """Watch the request ids: on the receiver's store with ``results_path``, else on the status API."""
        from airflow_provider_baseten._tasks import listen_kwargs
        from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger
        from airflow_provider_baseten.triggers.webhooks import WebhookResultTrigger

        self._context = context  # for the gathering's resume rule (the try number)
        listen = listen_kwargs(self)  # with results_path: wait on the receiver's store, not the status API
        return (WebhookResultTrigger if listen else AsyncPredictTrigger)(
            **listen,
            conn_id=self.baseten_conn_id,
            request_ids=self._ids(),
            model_id=self.model_id,
            chain_id=self.chain_id,
            fail_on_webhook_failed=self.fail_on_webhook_failed,
            poll_interval=self.poke_interval,
            end_time=end_time,
            hook_params=self.hook_params,
        )

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        """Validate the trigger's event, then finish (gathering the results with ``output_path``)."""
        self._context = context
        return super().execute_complete(context, event)

    def finish(self, event: BasetenTriggerEvent) -> Any:
        """Fail unless every request succeeded; return ``{request_id: status}``.

        With ``output_path``: gather the stored results and return the batch summary (a request without a
        stored result is then a per-item error, under the error budget).
        """
        if self.output_path is not None and event["status"] in ("success", "failed"):
            from airflow_provider_baseten._tasks import gather_webhook_results
            from airflow_provider_baseten.client.batch.fingerprint import of_values

            ids = self._ids()
            return gather_webhook_results(self, self._context or {}, event, ids, of_values(ids))
        super().finish(event)
        return dict(event.get("states", {}))
