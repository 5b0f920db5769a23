"""What every Baseten operator shares: the hook, the waiting contract, and trigger-event validation."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast

from airflow.sdk import BaseOperator

try:  # Airflow >= 3.3. Not from common.compat.sdk, whose import adds ~2 ms to every DAG parse (keeps DAG parsing fast)
    from airflow.sdk import ResumableJobMixin as ResumableJobMixin
except ImportError:  # Airflow 3.1-3.2: the compat provider's stand-in
    from airflow.providers.common.compat.sdk import ResumableJobMixin as ResumableJobMixin

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
    retry_left,
    validate_event,
)
from airflow_provider_baseten.client.checks import hook_params as check_hook_params
from airflow_provider_baseten.client.checks import positive_number
from airflow_provider_baseten.events import BasetenTriggerEvent

T = TypeVar("T")

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_baseten.hooks.baseten import BasetenHook
    from airflow_provider_baseten.triggers.baseten import BasetenPollTrigger


def renamed_param(owner: str, new: str, new_value: T, old: str, old_value: T, unset: object = None) -> T:
    """The value of a renamed parameter: ``new_value``, or the deprecated ``old_value`` (with a warning).

    ``unset`` is what either parameter is when not given. Giving both names is a :class:`ValueError`.
    """
    if old_value is unset:
        return new_value
    if new_value is not unset:
        raise ValueError(f"{owner}: give {new}= only; {old}= is its deprecated old name. Got both.")
    from airflow.exceptions import AirflowProviderDeprecationWarning

    from airflow_provider_baseten.client.checks import warn_at_caller

    warn_at_caller(
        f"{owner}: the parameter {old}= is deprecated; use {new}= instead.", AirflowProviderDeprecationWarning
    )
    return old_value


class BasetenBaseOperator(BaseOperator):
    """Base of the provider's operators: owns the :class:`BasetenHook` for ``baseten_conn_id``.

    :param baseten_conn_id: The Baseten connection.
    :param hook_params: The hook's HTTP settings for this task: ``{"timeouts": {...}, "retry": {...}}``.
        ``timeouts`` keys: ``connect``, ``management_read``, ``predict_read`` (seconds; defaults 10, 60 and
        1,260); ``retry`` keys: ``max_attempts`` (6), ``backoff_base`` (0.5), ``max_backoff`` (30),
        ``max_retry_after`` (120) and ``total_timeout`` (900 s, the budget of one call's retries). The
        connection extra takes the same ``timeouts`` and ``retry`` keys; precedence, key by key:
        ``hook_params`` > the connection extra > the defaults. Checked when the DAG is parsed (an unknown key
        or a bad value is a :class:`~airflow_provider_baseten.exceptions.BasetenValidationError` naming it),
        and carried into this task's triggers, so a deferred wait uses the same settings.
    """

    def __init__(
        self, *, baseten_conn_id: str = "baseten_default", hook_params: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.baseten_conn_id = baseten_conn_id
        self.hook_params = check_hook_params(hook_params)

    @cached_property
    def hook(self) -> BasetenHook:
        """The hook (created on first use, in the worker, never at DAG parse time), with ``hook_params``."""
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        return BasetenHook(self.baseten_conn_id, **self.hook_params)

    def pre_execute(self, context: Context) -> None:
        """Record the task's connection id (not its secrets), so the Baseten tab reads Baseten through it."""
        super().pre_execute(context)
        push_connection(context, self.baseten_conn_id)


class BasetenWaitingOperator(BasetenBaseOperator):
    """An operator that may wait for remote work: inline, or deferred to the triggerer.

    :param wait_for_completion: Wait for the remote work to finish (else return once it is started).
    :param deferrable: Wait in the triggerer, freeing the worker slot (default ``[operators]
        default_deferrable``).
    :param poke_interval: Seconds between status checks (the name the sensors use too; default: the
        ``[baseten] poll_interval`` config option, else per operator, :attr:`default_poke_interval`).
    :param check_interval: Deprecated old name of ``poke_interval``.
    :param timeout: Seconds (or a ``timedelta``) this try may wait at most, counted from its start.
        ``None`` (the default): the ``[baseten] default_timeout`` config option (86,400 s, one day), the same
        default as the provider's sensors; so a wait is always finite. The trigger (or the inline wait)
        enforces one absolute deadline per try, min(start + ``timeout``, start + ``execution_timeout``),
        deferred or not. At it the task fails with
        :class:`~airflow_provider_baseten.exceptions.BasetenTimeoutError`, which Airflow retries as any
        failure, per ``retries``: a durable operator's retry reconnects to the work this try started
        (``cancel_on_timeout`` keeps it for the retry), any other retry starts over with a new deadline.
    :param cancel_on_kill: When the task is killed, undo what *this task* started (never anything else).
    :param cancel_on_timeout: At the deadline, stop or cancel what *this task* started (a training job, a
        promotion, its still-queued async requests) if no retry can pick it up; with a retry left that
        reconnects to it, the work is kept for the retry. ``False``: never undo on timeout. Work the task
        did not start is never touched.
    """

    #: Seconds between status checks when ``poke_interval`` is not given.
    default_poke_interval: float = 10.0

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poke_interval: float | None = None,
        timeout: float | timedelta | None = None,
        cancel_on_kill: bool = True,
        cancel_on_timeout: bool = True,
        check_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        if deferrable and not wait_for_completion:
            warnings.warn(
                f"{type(self).__name__} {self.task_id}: deferrable=True has no effect with "
                "wait_for_completion=False (the task does not wait, so there is nothing to defer).",
                UserWarning,
                stacklevel=2,
            )
        interval = renamed_param(type(self).__name__, "poke_interval", poke_interval, "check_interval", check_interval)
        if interval is None:
            from airflow_provider_baseten._conf import poll_interval

            interval = poll_interval(self.default_poke_interval)  # [baseten] poll_interval, else the class's
        self.poke_interval: float = positive_number("poke_interval", interval)
        self.timeout: float = resolve_timeout(timeout)
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_timeout = cancel_on_timeout

    @property
    def check_interval(self) -> float:
        """Deprecated: :attr:`poke_interval`."""
        from airflow.exceptions import AirflowProviderDeprecationWarning

        warnings.warn(
            "check_interval is deprecated; use poke_interval.", AirflowProviderDeprecationWarning, stacklevel=2
        )
        return self.poke_interval

    def end_time(self, context: Context | None = None) -> float | None:
        """Epoch seconds after which waiting gives up (see :func:`deadline`)."""
        return deadline(context, self.timeout, self.execution_timeout)

    @property
    def retry_reconnects(self) -> bool:
        """Whether a retry picks up the work this try started instead of starting new work.

        True for a durable operator (``ResumableJobMixin`` on Airflow 3.3+, ``durable=True``); then a timeout
        with a retry left keeps the work running for the retry. Otherwise keeping it would only leak it.
        """
        return bool(getattr(self, "durable", False))

    def undo_on_timeout(self, context: Context | None) -> bool:
        """Whether the trigger should undo this task's own work at the deadline (``cancel_on_timeout``).

        No when a retry is left and that retry reconnects to the work (``retry_reconnects``): the work is
        kept for it. Decided when the wait starts: the try number does not change while it waits.
        """
        if not self.cancel_on_timeout:
            return False
        if self.retry_reconnects and retry_left(context, self.retries):
            self.log.info("A retry is left: at the deadline the work is kept for the retry to reconnect to.")
            return False
        return True

    def wait(self, context: Context, trigger: BasetenPollTrigger) -> Any:
        """Wait for ``trigger``'s event: deferred (this call raises ``TaskDeferred``) or inline.

        Before deferring, one status check: work that has already finished does not defer at all.
        """
        from airflow_provider_baseten.triggers.baseten import check_once, wait_inline

        log_deadline(self.log, trigger.end_time)
        if self.deferrable:
            event = check_once(trigger)
            if event is None:
                self.defer(trigger=trigger, method_name="execute_complete", timeout=defer_backstop(trigger.end_time))
            self.log.info("Finished before deferring; not deferring.")
            return self._finish(context, event)
        return self._finish(context, wait_inline(trigger))

    def wait_for_deployment(
        self, context: Context, model_id: str, deployment_id: str, target_statuses: Sequence[str], **kw: Any
    ) -> str | None:
        """Wait (see :meth:`wait`) until the deployment reaches one of ``target_statuses``; return its id.

        ``kw`` goes to :class:`~airflow_provider_baseten.triggers.baseten.DeploymentStatusTrigger`
        (``failed_statuses``, ``wake``).
        """
        from airflow_provider_baseten.triggers.baseten import DeploymentStatusTrigger

        trigger = DeploymentStatusTrigger(
            conn_id=self.baseten_conn_id,
            model_id=model_id,
            deployment_id=deployment_id,
            target_statuses=list(target_statuses),
            poll_interval=self.poke_interval,
            end_time=self.end_time(context),
            hook_params=self.hook_params,
            **kw,
        )
        return cast("str | None", self.wait(context, trigger))

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after deferral: validate the event, then finish."""
        return self._finish(context, event)

    def _finish(self, context: Context, event: object) -> Any:
        """Validate the event, record the statuses the wait saw (XCom ``baseten_status_timeline``, shown by the
        Baseten tab, also when the wait failed), then :meth:`on_event`."""
        checked = validate_event(event)
        push_timeline(context, checked)
        return self.on_event(context, checked)

    def on_event(self, context: Context, event: BasetenTriggerEvent) -> Any:
        """Handle the terminal event (raise unless success). Subclasses add their result."""
        log_failure_details(self.log, event)
        raise_for_event(event)
        self.log.info("%s", event.get("message"))
        return None
