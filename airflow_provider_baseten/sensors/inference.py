"""AsyncPredictSensor: wait for async requests, in poke or deferrable mode."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_provider_baseten.operators._base import default_deferrable, raise_for_event, validate_event

if TYPE_CHECKING:
    from airflow.sdk import Context


class AsyncPredictSensor(BaseSensorOperator):
    """Wait until async requests are terminal.

    ``SUCCEEDED`` succeeds; ``FAILED``, ``EXPIRED`` and ``CANCELED`` fail with Baseten's error codes and
    messages; ``WEBHOOK_FAILED`` fails too (the output is lost) unless ``fail_on_webhook_failed=False``.
    Status calls stay within Baseten's 20 requests/s budget however many ids are watched.

    This sensor never cancels requests when killed: it did not submit them.

    :param request_ids: One id or a list (templated, e.g. an ``XComArg`` of ``AsyncPredictOperator``).
    :param deferrable: Wait in the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("request_ids", "model_id", "baseten_conn_id")

    def __init__(
        self,
        *,
        request_ids: Any,
        model_id: str | None = None,
        baseten_conn_id: str = "baseten_default",
        fail_on_webhook_failed: bool = True,
        deferrable: bool | None = None,
        poke_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.request_ids = request_ids
        self.model_id = model_id
        self.baseten_conn_id = baseten_conn_id
        self.fail_on_webhook_failed = fail_on_webhook_failed
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self._trigger_obj: Any = None

    def _ids(self) -> list[str]:
        from airflow_provider_baseten.exceptions import BasetenValidationError

        ids = [self.request_ids] if isinstance(self.request_ids, str) else list(self.request_ids or [])
        if not ids or not all(isinstance(i, str) and i for i in ids):
            raise BasetenValidationError(
                f"request_ids must be ids (strings), got {self.request_ids!r}.", field="request_ids"
            )
        return ids

    def _trigger(self, end_time: float | None = None) -> Any:
        from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger

        return AsyncPredictTrigger(
            conn_id=self.baseten_conn_id,
            request_ids=self._ids(),
            model_id=self.model_id,
            fail_on_webhook_failed=self.fail_on_webhook_failed,
            poll_interval=self.poke_interval,
            end_time=end_time,
        )

    def execute(self, context: Context) -> Any:
        """Poke, or defer to the triggerer."""
        if not self.deferrable:
            return super().execute(context)
        import time

        self.defer(
            trigger=self._trigger(time.time() + self.timeout if self.timeout else None),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )
        return None

    def poke(self, context: Context) -> bool:
        """One status round (state kept across pokes, so finished ids are not polled again)."""
        from airflow_provider_baseten.triggers.baseten import check_once

        if self._trigger_obj is None:
            self._trigger_obj = self._trigger()
        event = check_once(self._trigger_obj)
        if event is None:
            return False
        raise_for_event(validate_event(event))
        self.log.info("%s", event["message"])
        return True

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, str]:
        """Validate the trigger's event; fail unless every request succeeded. Returns ``{id: status}``."""
        event = validate_event(event, required=("request_ids",))
        raise_for_event(event)
        self.log.info("%s", event["message"])
        return dict(event.get("states", {}))
