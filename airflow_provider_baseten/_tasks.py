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

    from airflow_provider_baseten.cost import CostReport
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
    from airflow_provider_baseten.exceptions import BasetenBudgetExceeded, BasetenRemoteStateError, BasetenTimeoutError

    status = event["status"]
    if status == "success":
        return
    message = str(event.get("message") or status)
    if status == "timeout":
        raise BasetenTimeoutError(message)
    budget = event.get("budget")
    if budget:  # a budget guard fired: not retried (a retry would spend again)
        raise BasetenBudgetExceeded(
            message,
            cap=float(budget["cap"]),
            spent=float("nan") if budget["spent"] is None else float(budget["spent"]),  # None: it could not be priced
            unit=str(budget["unit"]),
            stopped=bool(budget.get("stopped")),
        )
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


def report_cost(context: Context, log: Any, what: str, cost: CostReport, guess: CostReport | None = None) -> None:
    """One INFO line with ``what``'s cost (and the estimate, when the figure is Baseten's billed one), and the
    XCom ``baseten_cost``."""
    also = f"; estimate ${guess.usd:.4f}" if guess is not None and cost.source == "billed" else ""
    log.info("Cost of %s: %s%s", what, cost.describe(), also)
    context["ti"].xcom_push(key=xcom.BASETEN_COST, value=cost.as_xcom())


def training_cost(
    context: Context, hook: BasetenHook, log: Any, training_project_id: str, training_job_id: str, nodes: int = 1
) -> CostReport | None:
    """Report what a training job cost (:func:`report_cost`): Baseten's billed figure when the usage summary
    has the job, else the estimate. Never fails the task: a cost it cannot work out is logged and left out.

    :param nodes: The job's ``compute.node_count`` (Baseten's job object does not carry it).
    """
    from airflow_provider_baseten.cost import training_job_estimate

    def guess() -> tuple[CostReport, str | None]:
        job = hook.get_training_job(training_project_id, training_job_id)
        return training_job_estimate(hook, job, nodes), job.created_at

    return _object_cost(context, hook, log, f"training job {training_job_id}", training_job_id, guess)


def deployment_cost(
    context: Context, hook: BasetenHook, log: Any, model_id: str, deployment_id: str
) -> CostReport | None:
    """Report what a deploy wait cost: the deployment's replica-minutes so far (billed, or estimated), as
    :func:`training_cost` does for a job."""
    from airflow_provider_baseten.cost import deployment_estimate

    def guess() -> tuple[CostReport, str | None]:
        dep = hook.get_deployment(deployment_id, model_id=model_id)
        return deployment_estimate(hook, dep), dep.created_at

    return _object_cost(context, hook, log, f"deployment {deployment_id}", deployment_id, guess)


def _object_cost(
    context: Context, hook: BasetenHook, log: Any, what: str, resource_id: str, guess: Any
) -> CostReport | None:
    from airflow_provider_baseten.cost import with_billed

    try:
        estimate, since = guess()
        cost = with_billed(hook, log, estimate, resource_id, since)
        report_cost(context, log, what, cost, estimate)
    except Exception as exc:  # the outcome matters more than its cost
        log.info("Could not work out the cost of %s: %s", what, exc)
        return None
    return cost


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


def report_loss(
    context: Context,
    log: logging.Logger | Any,
    event: Mapping[str, Any],
    summary: Mapping[str, Any] | None = None,
    series_path: str | None = None,
) -> dict[str, Any]:
    """A gated training wait's loss: push XCom ``baseten_loss`` and log it, then fail with
    :class:`~airflow_provider_baseten.exceptions.BasetenTrainingQualityError` (not retried) when a ``stop_on``
    rule fired; else return what was pushed (for the asset event's extra).

    :param summary: The summary to report (default: the event's, read by the trigger).
    :param series_path: Where the series file was written, if it was.
    """
    from airflow_provider_baseten.exceptions import BasetenTrainingQualityError

    reason = event.get("termination_reason")
    value = {**(summary if summary is not None else event.get("loss") or {}), "series_path": series_path}
    pushed = {**value, "termination_reason": reason}
    context["ti"].xcom_push(key=xcom.BASETEN_LOSS, value=pushed)
    log.info("Loss of training job %s: %s", event.get("training_job_id"), value)
    if reason:
        raise BasetenTrainingQualityError(
            str(event.get("message") or reason),
            termination_reason=str(reason),
            stopped=bool(event.get("stopped")),
            state=str(event.get("job_status") or "failed"),
        )
    return pushed


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


# -- batch-like outputs: what the batch operators and the async waits that gather results share ------------
def decide_resume(resume: bool | None, context: Context, output: Any, fingerprint: Any, log: Any) -> bool:
    """Whether to resume ``output``: ``resume`` as given, or by default (``None``) on a retry, when the file
    holds results of these same inputs (``fingerprint``); a retry whose inputs changed starts afresh."""
    if resume is not None or output is None:
        return bool(resume)
    try_number = getattr(context.get("ti"), "try_number", 1)
    if not isinstance(try_number, int) or try_number <= 1:
        return False
    from airflow_provider_baseten.client.batch.fingerprint import describe
    from airflow_provider_baseten.client.batch.sinks import recorded_inputs

    recorded = recorded_inputs(output)
    same = bool(recorded) and all(fp is not None and fp == fingerprint for fp, _ in recorded)
    if same:
        log.info("Try %d: resuming %s, which holds results of these same inputs.", try_number, output)
    elif recorded:
        earlier = "; ".join(f"{describe(fp)} in {where}" for fp, where in recorded)
        log.warning(
            "Try %d: not resuming %s: its results are for other (or unrecorded) inputs (%s; these: %s). "
            "Sending every input.",
            try_number,
            output,
            earlier,
            describe(fingerprint),
        )
    return same


def set_webhook_wait(
    task: Any,
    *,
    results_path: Any,
    webhook_grace: Any,
    output_path: Any,
    resume: bool | None,
    on_error: str,
    max_failures: int | None,
    max_error_rate: float | None,
) -> None:
    """Check a webhook wait's arguments when the DAG is parsed, and set them on ``task`` (an
    ``AsyncPredictOperator`` or ``AsyncPredictSensor``). ``webhook_grace=None``: the trigger's default
    (:data:`~airflow_provider_baseten.triggers.webhooks.DEFAULT_WEBHOOK_GRACE`).

    ``output_path`` and ``results_path`` go together: the outputs are gathered from the store, and gathering is
    where a stored result that carries ``errors`` becomes a per-item error under the error budget (without it a
    wait whose every request failed would succeed).
    """
    from airflow_provider_baseten.client.batch.budget import ErrorBudget
    from airflow_provider_baseten.client.checks import flag, number_in

    if output_path is not None and results_path is None:
        raise ValueError(
            f"{type(task).__name__}: output_path= gathers the outputs from the receiver's store: give results_path= "
            "too."
        )
    if results_path is not None and output_path is None:
        raise ValueError(
            f"{type(task).__name__}: results_path= listens to the receiver's store; give output_path= too (a JSONL "
            "or Parquet file): the outputs are gathered there in input order, and a request whose webhook carries "
            "errors is reported there and counted against the error budget, never passed as a success."
        )
    flag("resume", resume, none_ok=True)
    if on_error not in ("fail", "record"):
        raise ValueError(f"{type(task).__name__}: on_error must be 'fail' or 'record', got {on_error!r}.")
    ErrorBudget.resolve(on_error, max_failures, max_error_rate)
    task.results_path, task.output_path, task.resume = results_path, output_path, resume
    task.on_error, task.max_failures, task.max_error_rate = on_error, max_failures, max_error_rate
    task.webhook_grace = None if webhook_grace is None else number_in("webhook_grace", webhook_grace, 0.0, None)


def listen_kwargs(task: Any) -> dict[str, Any]:
    """The ``WebhookResultTrigger`` arguments of a task with ``results_path`` (``{}`` without: poll the status API)."""
    if task.results_path is None:
        return {}
    return {
        "results_path": str(task.results_path),
        "results_conn_id": getattr(task.results_path, "conn_id", None),
        **({"webhook_grace": task.webhook_grace} if task.webhook_grace is not None else {}),
    }


def gather_webhook_results(
    task: Any, context: Context, event: BasetenTriggerEvent, request_ids: Sequence[str], fingerprint: Any
) -> dict[str, Any]:
    """Write the stored results of a finished webhook wait to ``task.output_path`` (input order) and return
    the batch summary; the batch's resume and error-budget rules apply (``resume``, ``on_error``,
    ``max_failures``, ``max_error_rate`` of ``task``). Requests the wait settled without a stored result are
    per-item errors, named by their index (:func:`~airflow_provider_baseten.webhooks.gather.gather_results`)."""
    from airflow_provider_baseten.batch_io import as_path
    from airflow_provider_baseten.webhooks.gather import gather_results, open_store

    output = as_path(task.output_path)
    errors = event.get("errors") or {}
    why = {r: "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs) for r, errs in errors.items() if errs}
    result = gather_results(
        open_store(task.results_path, getattr(task.results_path, "conn_id", None)),
        request_ids,
        output,
        settled=event.get("states") or {},
        why=why,
        resume=decide_resume(task.resume, context, output, fingerprint, task.log),
        fingerprint=fingerprint,
        on_error=task.on_error,
        max_failures=task.max_failures,
        max_error_rate=task.max_error_rate,
        log=task.log,
    )
    task.log.info(
        "Gathered %d async result(s) into %s: %d succeeded, %d failed, %d kept from an earlier try, in %.1fs.",
        result.total,
        output,
        result.succeeded,
        result.failed,
        result.skipped,
        result.elapsed,
    )
    return result.summary()
