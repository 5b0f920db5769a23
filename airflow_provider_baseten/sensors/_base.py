"""What the provider's sensors share: poke with a kept trigger, or defer it; one way to finish."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_provider_baseten._tasks import (
    deadline,
    default_deferrable,
    defer_backstop,
    log_deadline,
    log_failure_details,
    raise_for_event,
    validate_event,
)
from airflow_provider_baseten.events import BasetenTriggerEvent

if TYPE_CHECKING:
    from airflow.sdk import Context, PokeReturnValue

    from airflow_provider_baseten.triggers.baseten import BasetenPollTrigger


class BasetenTriggerSensor(BaseSensorOperator):
    """A sensor whose check is a Baseten trigger's :meth:`check`, so poke and deferral agree.

    In poke mode one trigger is kept across pokes (finished ids are not polled again; an unknown status is
    logged once). Deferred, the same trigger runs in the triggerer with one absolute deadline, min(start +
    ``timeout``, start + ``execution_timeout``), and fires the ``timeout`` event itself; Airflow's deferral
    timeout is only a far backstop. A sensor never stops or cancels what it watches: it did not start it.

    :param baseten_conn_id: The Baseten connection.
    :param deferrable: Wait in the triggerer (default ``[operators] default_deferrable``).
    """

    #: Keys the terminal event must carry (checked before it is used).
    event_keys: Sequence[str] = ()

    def __init__(
        self, *, baseten_conn_id: str = "baseten_default", deferrable: bool | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.baseten_conn_id = baseten_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self._trigger_obj: BasetenPollTrigger | None = None

    def make_trigger(self, context: Context, end_time: float | None) -> BasetenPollTrigger:
        """The trigger that watches this sensor's target."""
        raise NotImplementedError

    def finish(self, event: BasetenTriggerEvent) -> Any:
        """Fail unless the event is a success; return the sensor's result (pushed to XCom).

        A ``timeout`` event raises Airflow's ``AirflowSensorTimeout``, as a poking sensor's timeout does:
        the task is not retried (a retry would start a new deadline), and ``soft_fail`` turns it into a skip.
        """
        log_failure_details(self.log, event)
        if event["status"] == "timeout":
            from airflow.providers.common.compat.sdk import AirflowSensorTimeout

            raise AirflowSensorTimeout(event["message"])
        raise_for_event(event)
        self.log.info("%s", event["message"])
        return None

    def execute(self, context: Context) -> Any:
        """Poke, or check once and then defer to the triggerer (a target already done does not defer)."""
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_baseten.triggers.baseten import check_once

        end_time = deadline(context, self.timeout, self.execution_timeout)
        trigger = self.make_trigger(context, end_time)
        log_deadline(self.log, end_time)
        event = check_once(trigger)
        if event is not None:
            self.log.info("Done before deferring; not deferring.")
            return self.finish(validate_event(event, required=self.event_keys))
        self.defer(trigger=trigger, method_name="execute_complete", timeout=defer_backstop(end_time))
        return None

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """One check with the kept trigger."""
        from airflow.sdk import PokeReturnValue

        from airflow_provider_baseten.triggers.baseten import check_once

        if self._trigger_obj is None:
            self._trigger_obj = self.make_trigger(context, None)
        event = check_once(self._trigger_obj)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self.finish(validate_event(event)))

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Validate the trigger's event, then finish as a poke would."""
        return self.finish(validate_event(event, required=self.event_keys))
