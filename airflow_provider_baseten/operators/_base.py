"""What every Baseten operator shares: the hook, the waiting contract, and trigger-event validation."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_baseten.hooks.baseten import BasetenHook
    from airflow_provider_baseten.triggers.baseten import BasetenPollTrigger


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` from Airflow's config (False when unset)."""
    from airflow.providers.common.compat.sdk import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


def validate_event(event: Any, required: Sequence[str] = ()) -> dict[str, Any]:
    """Check a trigger event before using it; a malformed one fails the task with a clear message."""
    from airflow_provider_baseten.exceptions import BasetenError
    from airflow_provider_baseten.triggers.baseten import EVENT_STATUSES

    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise BasetenError(f"Malformed trigger event (expected {{'status': ..., 'message': ...}}): {event!r}"[:500])
    missing = [k for k in required if k not in event]
    if missing:
        raise BasetenError(f"Trigger event lacks {missing}: {event!r}"[:500])
    return event


def raise_for_event(event: dict[str, Any]) -> None:
    """Fail the task unless the event says success."""
    from airflow_provider_baseten.exceptions import BasetenRemoteStateError, BasetenTimeoutError

    status = event["status"]
    if status == "success":
        return
    message = str(event.get("message") or status)
    if status == "timeout":
        raise BasetenTimeoutError(message)
    raise BasetenRemoteStateError(
        message, state=str(event.get("job_status") or event.get("deployment_status") or status)
    )


def log_failure_details(log: Any, event: dict[str, Any]) -> None:
    """Write what a failed remote wait found to the task log: the last ERROR lines of the remote logs."""
    if event.get("status") == "success":
        return
    lines = event.get("error_lines") or []
    if lines:
        log.error("Last %d ERROR line(s) of the remote logs:\n%s", len(lines), "\n".join(str(x) for x in lines))


class BasetenBaseOperator(BaseOperator):
    """Base of the provider's operators: owns the :class:`BasetenHook` for ``baseten_conn_id``."""

    def __init__(self, *, baseten_conn_id: str = "baseten_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.baseten_conn_id = baseten_conn_id

    @cached_property
    def hook(self) -> BasetenHook:
        """The hook (created on first use, in the worker, never at DAG parse time)."""
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        return BasetenHook(self.baseten_conn_id)


class BasetenWaitingOperator(BasetenBaseOperator):
    """An operator that may wait for remote work: inline, or deferred to the triggerer.

    :param wait_for_completion: Wait for the remote work to finish (else return once it is started).
    :param deferrable: Wait in the triggerer, freeing the worker slot (default ``[operators]
        default_deferrable``).
    :param check_interval: Seconds between status checks.
    :param timeout: Seconds to wait at most (also bounds the deferral); ``None`` waits as long as
        ``execution_timeout`` allows.
    :param cancel_on_kill: When the task is killed, undo what *this task* started (never anything else).
    """

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        check_interval: float = 10.0,
        timeout: float | None = None,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        if check_interval <= 0:
            raise ValueError("check_interval must be positive")
        self.check_interval = check_interval
        self.timeout = timeout
        self.cancel_on_kill = cancel_on_kill

    def end_time(self) -> float | None:
        """Epoch seconds after which waiting gives up."""
        return time.time() + self.timeout if self.timeout else None

    def wait(self, context: Context, trigger: BasetenPollTrigger) -> Any:
        """Wait for ``trigger``'s event: deferred (this call raises ``TaskDeferred``) or inline."""
        if self.deferrable:
            self.defer(
                trigger=trigger,
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout) if self.timeout else None,
            )
        from airflow_provider_baseten.triggers.baseten import wait_inline

        return self.on_event(context, validate_event(wait_inline(trigger)))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after deferral: validate the event, then finish."""
        return self.on_event(context, validate_event(event))

    def on_event(self, context: Context, event: dict[str, Any]) -> Any:
        """Handle the terminal event (raise unless success). Subclasses add their result."""
        log_failure_details(self.log, event)
        raise_for_event(event)
        self.log.info("%s", event.get("message"))
        return None
