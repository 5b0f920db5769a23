"""What the provider's sensors share: poke with a kept trigger, or defer it; one way to finish."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

try:  # where the Task SDK defines it; not from common.compat.sdk, whose import adds ~2 ms to every DAG parse
    from airflow.sdk.exceptions import AirflowSensorTimeout
except ImportError:  # older Airflow 3.x: airflow.exceptions (the class the SDK sensor raises there)
    from airflow.exceptions import AirflowSensorTimeout  # type: ignore[no-redef,attr-defined,unused-ignore]

from airflow_provider_baseten._tasks import (
    deadline,
    default_deferrable,
    defer_backstop,
    log_deadline,
    log_failure_details,
    push_connection,
    push_timeline,
    raise_for_event,
    resolve_timeout,
    validate_event,
)
from airflow_provider_baseten.client.checks import hook_params as check_hook_params
from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.exceptions import BasetenTimeoutError

if TYPE_CHECKING:
    from airflow.sdk import Context, PokeReturnValue

    from airflow_provider_baseten.triggers.baseten import BasetenPollTrigger


class BasetenSensorTimeout(BasetenTimeoutError, AirflowSensorTimeout):  # type: ignore[misc]  # status_code: ours wins
    """A provider sensor's deadline passed: a :class:`~airflow_provider_baseten.exceptions.BasetenTimeoutError`
    that is also Airflow's ``AirflowSensorTimeout``, so Airflow does not retry the sensor (a retry would
    start a new deadline) and ``soft_fail=True`` turns it into a skip.

    Import it from :mod:`airflow_provider_baseten.sensors.base`, its public home (what tracebacks show).
    """

    __module__ = "airflow_provider_baseten.sensors.base"


class BasetenTriggerSensor(BaseSensorOperator):
    """A sensor whose check is a Baseten trigger's :meth:`check`, so poke and deferral agree.

    In poke mode one trigger is kept across pokes (finished ids are not polled again; an unknown status is
    logged once). Deferred, the same trigger runs in the triggerer with one absolute deadline, min(start +
    ``timeout``, start + ``execution_timeout``), and fires the ``timeout`` event itself; Airflow's deferral
    timeout is only a far backstop. Poking, the same deadline is checked after each poke. A sensor never
    stops or cancels what it watches: it did not start it.

    At the deadline the sensor fails with :class:`BasetenSensorTimeout`, a
    :class:`~airflow_provider_baseten.exceptions.BasetenTimeoutError` that is also Airflow's
    ``AirflowSensorTimeout``: it is **not retried** (whatever ``retries`` says), and ``soft_fail=True``
    skips the task instead. (A waiting operator's ``BasetenTimeoutError`` is retried per ``retries``.)

    :param baseten_conn_id: The Baseten connection.
    :param deferrable: Wait in the triggerer (default ``[operators] default_deferrable``).
    :param timeout: Seconds (or a ``timedelta``) this try may wait, counted from its start. ``None`` (the
        default): the ``[baseten] default_timeout`` config option (86,400 s, one day), the same default as
        the provider's waiting operators (not Airflow's ``[sensors] default_timeout``).
    :param poke_interval: Seconds between checks. ``None`` (the default): the ``[baseten] poll_interval``
        config option, else the sensor's own default (:attr:`default_poke_interval`).
    :param hook_params: The hook's HTTP settings, ``{"timeouts": {...}, "retry": {...}}``, as on
        :class:`~airflow_provider_baseten.operators.base.BasetenBaseOperator` (precedence, key by key:
        ``hook_params`` > the connection extra > the defaults); carried into the trigger when deferred.
    """

    #: Keys the terminal event must carry (checked before it is used).
    event_keys: Sequence[str] = ()
    #: Seconds between checks when neither ``poke_interval`` nor ``[baseten] poll_interval`` is given.
    default_poke_interval: float = 10.0

    def __init__(
        self,
        *,
        baseten_conn_id: str = "baseten_default",
        deferrable: bool | None = None,
        timeout: float | timedelta | None = None,
        poke_interval: float | timedelta | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if poke_interval is None:
            from airflow_provider_baseten._conf import poll_interval

            poke_interval = poll_interval(self.default_poke_interval)  # [baseten] poll_interval, else the class's
        super().__init__(timeout=resolve_timeout(timeout), poke_interval=poke_interval, **kwargs)
        self.baseten_conn_id = baseten_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.hook_params = check_hook_params(hook_params)
        self._trigger_obj: BasetenPollTrigger | None = None
        self._end_time: float | None = None

    def make_trigger(self, context: Context, end_time: float | None) -> BasetenPollTrigger:
        """The trigger that watches this sensor's target."""
        raise NotImplementedError

    def finish(self, event: BasetenTriggerEvent) -> Any:
        """Fail unless the event is a success; return the sensor's result (pushed to XCom).

        A ``timeout`` event raises :class:`BasetenSensorTimeout`: the task is not retried (a retry would start
        a new deadline), and ``soft_fail`` turns it into a skip.
        """
        log_failure_details(self.log, event)
        if event["status"] == "timeout":
            raise BasetenSensorTimeout(event["message"])
        raise_for_event(event)
        self.log.info("%s", event["message"])
        return None

    def pre_execute(self, context: Context) -> None:
        """Record the sensor's connection id (not its secrets), so the Baseten tab reads Baseten through it."""
        super().pre_execute(context)
        push_connection(context, self.baseten_conn_id)

    def _finish(self, context: Context, event: object, required: Sequence[str] = ()) -> Any:
        """Validate the event, record the statuses the wait saw (the tab's history), then :meth:`finish`."""
        checked = validate_event(event, required=required)
        push_timeline(context, checked)
        return self.finish(checked)

    def execute(self, context: Context) -> Any:
        """Poke, or check once and then defer to the triggerer (a target already done does not defer)."""
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:  # Airflow's own timeout check (e.g. in reschedule mode)
                if isinstance(exc, BasetenSensorTimeout):
                    raise
                raise BasetenSensorTimeout(str(exc)) from exc
        from airflow_provider_baseten.triggers.baseten import check_once

        end_time = deadline(context, self.timeout, self.execution_timeout)
        trigger = self.make_trigger(context, end_time)
        log_deadline(self.log, end_time)
        event = check_once(trigger)
        if event is not None:
            self.log.info("Done before deferring; not deferring.")
            return self._finish(context, event, self.event_keys)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=defer_backstop(end_time))
        return None

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """One check with the kept trigger."""
        from airflow.sdk import PokeReturnValue

        from airflow_provider_baseten.triggers.baseten import check_once

        if self._trigger_obj is None:
            self._trigger_obj = self.make_trigger(context, None)
            if not self.reschedule:  # a rescheduled poke is a new start: Airflow's own check counts from the first
                self._end_time = deadline(context, self.timeout, self.execution_timeout)
        event = check_once(self._trigger_obj)
        if event is None:
            if self._end_time is not None and time.time() >= self._end_time:
                raise BasetenSensorTimeout(
                    f"Timed out waiting: {self._trigger_obj._describe()} (timeout / execution_timeout)."
                )
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, event))

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Validate the trigger's event, then finish as a poke would."""
        return self._finish(context, event, self.event_keys)
