"""What operators and sensors share (both import it; neither imports the other): one absolute deadline per
wait, trigger-event checks, and the XCom pushes and task-log lines a task and a sensor of the same object make.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_baseten import xcom
from airflow_provider_baseten.events import EVENT_STATUSES, BasetenTriggerEvent

if TYPE_CHECKING:
    import logging

    from airflow.sdk import Context

    from airflow_provider_baseten.hooks.baseten import BasetenHook


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` from Airflow's config (False when unset)."""
    from airflow.providers.common.compat.sdk import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def validate_event(event: object, required: Sequence[str] = ()) -> BasetenTriggerEvent:
    """Check a trigger event before using it; a malformed one fails the task with a clear message."""
    from airflow_provider_baseten.exceptions import BasetenError

    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise BasetenError(f"Malformed trigger event (expected {{'status': ..., 'message': ...}}): {event!r}"[:500])
    missing = [k for k in required if k not in event]
    if missing:
        raise BasetenError(f"Trigger event lacks {missing}: {event!r}"[:500])
    return cast("BasetenTriggerEvent", event)


def task_start(context: Context | None) -> float:
    """Epoch seconds when this try of the task started (``ti.start_date``; now when it is unknown)."""
    ti = context.get("ti") if context else None
    start = getattr(ti, "start_date", None)
    return start.timestamp() if isinstance(start, datetime) else time.time()


def execution_margin(execution_timeout: float) -> float:
    """How much earlier than ``execution_timeout`` the trigger's deadline fires: enough for the undo to run
    before Airflow's own alarm interrupts an inline wait (that path calls ``on_kill``, not our timeout)."""
    return min(5.0, 0.1 * execution_timeout)


def deadline(context: Context | None, timeout: float | None, execution_timeout: timedelta | None) -> float | None:
    """The one absolute deadline of a wait: min(start + ``timeout``, start + ``execution_timeout``).

    ``start`` is when this try started (``ti.start_date``), so the deadline does not move when the task
    defers, resumes, or when the triggerer restarts; ``None`` when neither limit is set.
    """
    start = task_start(context)
    limits = []
    if timeout is not None:  # 0 is a deadline (now), not "no deadline"
        limits.append(start + float(timeout))
    if execution_timeout:
        seconds = execution_timeout.total_seconds()
        limits.append(start + seconds - execution_margin(seconds))
    return min(limits) if limits else None


def resolve_timeout(timeout: float | timedelta | None) -> float:
    """A waiting operator's or sensor's ``timeout`` in seconds: ``None`` is ``[baseten] default_timeout``
    (one day unless set), so no wait is unbounded. Raises :class:`BasetenValidationError` unless it is a
    finite number of seconds >= 0 (or a ``timedelta``)."""
    import math

    from airflow_provider_baseten._conf import default_timeout
    from airflow_provider_baseten.client.checks import number_in

    if timeout is None:
        return default_timeout()
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    value = number_in("timeout", seconds, 0, what="a number of seconds (or a timedelta)", also="None")
    if not math.isfinite(value):
        from airflow_provider_baseten.exceptions import BasetenValidationError

        raise BasetenValidationError(
            "timeout must be a finite number of seconds; for a longer wait give a larger one.", field="timeout"
        )
    return value


def defer_backstop(end_time: float | None) -> timedelta | None:
    """The framework's deferral timeout: ``None`` without a deadline, else well past the trigger's own.

    Airflow's deferral timeout fails the task without ``execute_complete`` or ``on_kill``
    (apache/airflow#61467), so it must never win against the trigger's ``timeout`` event. It is only a
    backstop for a trigger that cannot fire: deadline + 2 x ``[scheduler] trigger_timeout_check_interval``
    + 60 s.
    """
    if end_time is None:
        return None
    from airflow.providers.common.compat.sdk import conf

    check = conf.getfloat("scheduler", "trigger_timeout_check_interval", fallback=15.0)
    return timedelta(seconds=max(0.0, end_time - time.time()) + 2 * check + 60.0)


def log_deadline(log: Any, end_time: float | None) -> None:
    """Say when the wait will give up (the time the trigger fires its ``timeout`` event)."""
    if end_time is not None:
        from datetime import timezone

        when = datetime.fromtimestamp(end_time, tz=timezone.utc).isoformat()
        log.info("Deadline: %s (in %.1f s; timeout / execution_timeout).", when, end_time - time.time())


def retry_left(context: Context | None, retries: int | None) -> bool:
    """Whether Airflow will retry this task if this try fails (``try_number <= max_tries``).

    Outside a task run (no ``try_number``/``max_tries``), the task's ``retries`` decide.
    """
    ti = context.get("ti") if context else None
    try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    if isinstance(try_number, int) and isinstance(max_tries, int):
        return try_number <= max_tries
    return bool(retries)


def raise_for_event(event: BasetenTriggerEvent) -> None:
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


def log_failure_details(log: Any, event: Mapping[str, Any]) -> None:
    """Write what a failed remote wait found to the task log: the last ERROR lines of the remote logs."""
    if event.get("status") == "success":
        return
    lines = event.get("error_lines") or []
    if lines:
        log.error("Last %d ERROR line(s) of the remote logs:\n%s", len(lines), "\n".join(str(x) for x in lines))


# -- what the Baseten tab reads: the connection, and the statuses a wait saw --------------------------------
def push_connection(context: Context, conn_id: str) -> None:
    """Push the task's connection id (never its secrets): the Baseten tab reads Baseten through it."""
    context["ti"].xcom_push(key=xcom.CONN_ID, value=conn_id)


def push_timeline(context: Context, event: Mapping[str, Any]) -> None:
    """Push the statuses the wait saw (the event's ``timeline``), also for a failed wait: the tab's history."""
    if event.get("timeline"):
        context["ti"].xcom_push(key=xcom.STATUS_TIMELINE, value=event["timeline"])


# -- training jobs and deployments: what a task and a sensor push and log ------------------------------
def push_training_job(
    context: Context, training_project_id: str, training_job_id: str, *, log: logging.Logger | Any = None
) -> None:
    """Push the job's ids and UI URL to XCom (the URL is read by :class:`BasetenTrainingJobLink`).

    With ``log`` (a task that started the job, or reconnected to it), the URL is also written to the task log.
    """
    from airflow_provider_baseten.links import log_link, training_job_url

    url = training_job_url(training_project_id, training_job_id)
    ti = context["ti"]
    ti.xcom_push(key=xcom.TRAINING_PROJECT_ID, value=training_project_id)
    ti.xcom_push(key=xcom.TRAINING_JOB_ID, value=training_job_id)
    ti.xcom_push(key=xcom.TRAINING_JOB_URL, value=url)
    if log is not None:
        log_link(log, f"training job {training_job_id}", url)


def log_training_failure(log: logging.Logger | Any, event: BasetenTriggerEvent) -> None:
    """Write a failed job's ``error_message`` and its last log lines (``log_tail``) to the task log."""
    if event.get("status") == "success":
        return
    job = event.get("training_job_id")
    log.error("%s", event.get("message") or f"Training job {job} did not complete.")
    if event.get("error_message"):
        log.error("Training job %s error_message: %s", job, event["error_message"])
    tail = event.get("log_tail") or []
    if tail:
        log.error("Last %d log line(s) of training job %s:\n%s", len(tail), job, "\n".join(str(x) for x in tail))


def resolve_model(hook: BasetenHook, model_id: str | None) -> str:
    """``model_id``, else (only when it is ``None``) the connection's default model: the hook's own rule
    (an explicit ``""``, e.g. a template that rendered empty, is an error, not "use the default")."""
    hook.get_transport()  # read the connection, so its default model is known
    return hook._model(model_id)


def push_deployment(
    context: Context, model_id: str, deployment_id: str | None, *, log: logging.Logger | Any = None
) -> None:
    """Push the model URL and, when known, the deployment id and URL (read by the extra links).

    With ``log`` (a task that created or promoted the deployment), the deployment's URL (else the model's) is
    also written to the task log.
    """
    from airflow_provider_baseten.links import deployment_url, log_link, model_url

    ti = context["ti"]
    ti.xcom_push(key=xcom.MODEL_URL, value=model_url(model_id))
    if deployment_id:
        ti.xcom_push(key=xcom.DEPLOYMENT_ID, value=deployment_id)
        ti.xcom_push(key=xcom.DEPLOYMENT_URL, value=deployment_url(model_id, deployment_id))
    if log is not None:
        what, url = (
            (f"deployment {deployment_id} of model {model_id}", deployment_url(model_id, deployment_id))
            if deployment_id
            else (f"model {model_id}", model_url(model_id))
        )
        log_link(log, what, url)


def rendered_target(task: Any) -> dict[str, str | None]:
    """Check a task's ``environment`` / ``deployment_id`` once templates are rendered; store and return them.

    The one target rule (:func:`~airflow_provider_baseten.client.checks.check_target`) ran when the task was
    built, leaving ``{{ ... }}`` values unchecked: this is the same check on what they rendered to.
    """
    from airflow_provider_baseten.client.checks import check_target

    task.environment, task.deployment_id = check_target(task.environment, task.deployment_id, who=type(task).__name__)
    return {"environment": task.environment, "deployment_id": task.deployment_id}


def deployment_behind(
    hook: BasetenHook, model_id: str, environment: str | None, deployment_id: str | None
) -> str | None:
    """The id of the deployment a checked target addresses (``None``: an environment that serves none yet).

    ``deployment_id`` is itself; the production environment (the default) and the development deployment are
    asked by name; a custom environment is asked for the deployment it currently serves.
    """
    if deployment_id is not None:
        return deployment_id
    env = environment if environment is not None else "production"
    if env in ("production", "development"):
        return hook.get_deployment(env, model_id=model_id).id
    current = hook.get_environment(env, model_id=model_id).current_deployment
    return current.id if current else None
