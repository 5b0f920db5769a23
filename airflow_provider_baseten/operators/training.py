"""Training operators: create or recreate a job (durably), stop one, and list its checkpoints.

Create and recreate are *durable* on Airflow 3.3+: the job's ids go to the task's state store right after
the job is created, so a retried task reconnects to the job instead of starting (and paying for) a second
one. A job that ended badly is not reconnected to: the retry starts a fresh one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_baseten import _lineage, xcom
from airflow_provider_baseten._tasks import log_training_failure, push_training_job, report_loss, training_cost
from airflow_provider_baseten.client.checks import int_in, is_int
from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.links import BasetenTrainingJobLink
from airflow_provider_baseten.loss import LossWatch, gate_spec, parse_stop_on, write_series
from airflow_provider_baseten.operators._base import BasetenBaseOperator, BasetenWaitingOperator, ResumableJobMixin
from airflow_provider_baseten.operators._durable import CreateMarker, made_by_earlier_try, run_unique_name

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pydantic import JsonValue

    from airflow_provider_baseten.cost import CostReport
    from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger

NOT_FOUND = "NOT_FOUND"  # get_job_status's answer for a stored job that no longer exists


def job_ref(external_id: Any) -> tuple[str, str]:
    """``(training_project_id, training_job_id)`` from a stored external id.

    Accepts the dict this module stores (``{"training_project_id", "training_job_id"}``) or a
    ``"project_id/job_id"`` string.
    """
    if isinstance(external_id, dict):
        pid, jid = external_id.get("training_project_id"), external_id.get("training_job_id")
    elif isinstance(external_id, str) and external_id.count("/") == 1:
        pid, jid = external_id.split("/")
    else:
        pid = jid = None
    if not pid or not jid:
        raise ValueError(
            "A training job reference is {'training_project_id': ..., 'training_job_id': ...} or "
            f"'project_id/job_id', got {external_id!r}."[:300]
        )
    return str(pid), str(jid)


# Task state store key of the create marker (operators/_durable.py); the name is kept for retries in flight.
_UNKNOWN_CREATE_KEY = "baseten_training_create_unknown"


class _TrainingJobOperator(ResumableJobMixin, BasetenWaitingOperator):
    """Start a training job durably, push its ids and URL, and optionally wait for it to finish.

    Returns the training job id (also pushed as XCom ``training_job_id``, with ``training_project_id``
    and ``baseten_training_job_url``).

    Asset event: the default outlet is ``AssetAlias("baseten:training_job")`` (the job id is known only at
    run time). When the job COMPLETES, the task adds the job's asset
    (:func:`~airflow_provider_baseten.assets.training_job_asset`) with the extra ``{training_project_id,
    training_job_id, status, completed_at}``; a task that does not wait, or a job that fails, emits nothing.
    Pass ``outlets=[]`` for no event.
    """

    operator_extra_links = (BasetenTrainingJobLink(),)
    ui_color = "#fef7e0"
    default_poke_interval = 30.0

    def __init__(
        self,
        *,
        training_project_id: str,
        log_tail: int = 50,
        stop_on: Any = None,
        loss_pattern: str | None = None,
        loss_series_path: Any = None,
        max_cost_usd: float | None = None,
        max_gpu_minutes: float | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten.assets import TRAINING_JOB_ALIAS, default_outlets
        from airflow_provider_baseten.cost import check_cap

        default_outlets(kwargs, (None,), None, TRAINING_JOB_ALIAS)  # the job id is a run-time value
        super().__init__(**kwargs)
        if not training_project_id:
            raise ValueError("training_project_id is required.")
        if not isinstance(log_tail, int) or log_tail < 0:
            raise ValueError(f"log_tail must be a non-negative integer, got {log_tail!r}.")
        self.training_project_id = training_project_id
        self.log_tail = log_tail
        # Checked here, before anything is sent: a bad rule or regex fails the DAG's parse, not the run. The job
        # is this task's own (started or reconnected to), so a rule that fires stops it.
        self.loss_gate = gate_spec(stop_on, loss_pattern, track=bool(loss_series_path))
        self.loss_series_path = loss_series_path
        self.max_cost_usd = check_cap("max_cost_usd", max_cost_usd)
        self.max_gpu_minutes = check_cap("max_gpu_minutes", max_gpu_minutes)
        guards = [name for name, value in (("max_cost_usd", self.max_cost_usd), ("max_gpu_minutes",
                  self.max_gpu_minutes), ("stop_on / loss_pattern / loss_series_path", self.loss_gate)) if value is not None]  # fmt: skip
        if guards and not self.wait_for_completion:
            from airflow_provider_baseten.exceptions import BasetenValidationError

            raise BasetenValidationError(
                f"{type(self).__name__}: {', '.join(guards)} act while the task waits for the job; with "
                "wait_for_completion=False nothing would enforce them. Wait here, or put them on a TrainingJobSensor "
                "(stop_on) downstream.",
                field=guards[0].split(" ")[0],
            )
        self._job: dict[str, str] | None = None  # the job this task started or reconnected to
        self._finished = False
        self._cost: CostReport | None = None  # what the job cost, once the task knows
        self._loss: dict[str, Any] | None = None  # the gated job's loss summary, once read

    def node_count(self) -> int:
        """The job's ``compute.node_count`` (Baseten's job object does not carry it): the cost estimate and the
        budget guard count this many instances."""
        return 1

    def execute(self, context: Context) -> str:
        """Start the job (or reconnect to it on a retry) and wait if asked; return the job id."""
        return cast("str", self.execute_resumable(context))

    def _start(self, context: Context) -> Any:
        raise NotImplementedError

    # -- ResumableJobMixin -----------------------------------------------------------------------------
    def submit_job(self, context: Context) -> JsonValue:
        """Start the job; push its ids and URL at once. Returns ``{training_project_id, training_job_id}``.

        On Airflow 3.3+ a marker goes to the task state store before the create (see
        :mod:`~airflow_provider_baseten.operators._durable`): a retry of a try killed mid-create, or whose
        create failed ambiguously, reconnects to the job that create made (in the project, not there before,
        created since, with this run's job name) instead of creating one more.
        """
        marker = CreateMarker(context, _UNKNOWN_CREATE_KEY)
        earlier = marker.earlier()
        job = self._made_by_earlier_try(earlier, context) if earlier else None
        if job is None:
            if marker.store is not None:
                marker.start([j.id for j in self.hook.list_training_jobs(self.training_project_id)])
            job = self._start(context)
        pid = job.training_project_id or self.training_project_id
        self._job = {"training_project_id": pid, "training_job_id": job.id}
        self.log.info("Started training job %s in project %s (status %s).", job.id, pid, job.current_status)
        push_training_job(context, pid, job.id, log=self.log)
        return dict(self._job)

    def _job_name(self, context: Context) -> str | None:
        """The name the new job gets (``None``: whatever Baseten gives it); a retry looks for it by this name."""
        return None

    def _made_by_earlier_try(self, earlier: dict[str, Any], context: Context) -> Any:
        """The job an earlier try's unrecorded create made, if it made one; else ``None``."""
        jobs = self.hook.list_training_jobs(self.training_project_id)
        return made_by_earlier_try(
            self,
            jobs,
            earlier,
            name=self._job_name(context),
            status=lambda j: j.current_status or "UNKNOWN",
            what="Training job",
        )

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """The stored job's ``current_status`` (``NOT_FOUND`` if it is gone, so a new one is started)."""
        from airflow_provider_baseten.exceptions import BasetenNotFoundError

        pid, jid = job_ref(external_id)
        try:
            return self.hook.get_training_job(pid, jid).current_status or "UNKNOWN"
        except BasetenNotFoundError:
            self.log.warning("Training job %s from an earlier try no longer exists; starting a new one.", jid)
            return NOT_FOUND

    def is_job_active(self, status: str) -> bool:
        """Reconnect to any job that has not ended, including one in a status we do not know yet."""
        from airflow_provider_baseten.models import TRAINING_TERMINAL_STATES

        return status != NOT_FOUND and status not in TRAINING_TERMINAL_STATES

    def is_job_succeeded(self, status: str) -> bool:
        """Only ``TRAINING_JOB_COMPLETED`` is success."""
        return status == "TRAINING_JOB_COMPLETED"

    def poll_until_complete(self, external_id: Any, context: Context) -> str:  # type: ignore[override]
        """Wait for the job if ``wait_for_completion`` (deferring when ``deferrable``); return its id."""
        CreateMarker(context, _UNKNOWN_CREATE_KEY).clear()  # the mixin has stored the ids by now
        pid, jid = job_ref(external_id)
        if self._job is None:  # reconnecting: an earlier try of this task started the job
            self.log.info("Reconnected to training job %s in project %s from an earlier try.", jid, pid)
            self._job = {"training_project_id": pid, "training_job_id": jid}
            push_training_job(context, pid, jid, log=self.log)
        if self.wait_for_completion:
            return cast("str", self.wait(context, self._trigger(pid, jid, context)))
        return jid

    def get_job_result(self, external_id: Any, context: Context) -> str:
        """The job id (pushing the ids and URL if this try has not yet)."""
        pid, jid = job_ref(external_id)
        if self._job is None:  # the job had already completed in an earlier try
            self.log.info("Training job %s already completed in an earlier try.", jid)
            push_training_job(context, pid, jid, log=self.log)
            self._report_cost(context, pid, jid)
            self._gate_ended_job(context, pid, jid)  # the wait that would have gated it died with that try
            self._emit_completed(context, pid, jid)  # else on_event emitted it (or the task did not wait)
        return jid

    def _gate_ended_job(self, context: Context, pid: str, jid: str) -> None:
        """The loss gate of a job that completed while no try was watching (its worker died): the rules run
        over the whole logged series, read once here, so a run that diverged at the end is not approved by a
        retry; pushes ``baseten_loss`` (and writes the series file) as a watched wait does."""
        if self.loss_gate is None:
            return
        watch = self._read_loss(pid, jid, parse_stop_on(self.loss_gate["stop_on"]))
        reason = watch.tracker.termination_reason
        path = write_series(watch.tracker.points, self.loss_series_path) if self.loss_series_path else None
        status = "TRAINING_JOB_COMPLETED"
        verdict = {
            "training_job_id": jid,
            "job_status": status,
            "termination_reason": reason,
            "stopped": False,
            "message": f"Training job {jid} ended {status} (while no try watched it): {reason}" if reason else None,
        }
        self._loss = report_loss(context, self.log, verdict, watch.tracker.summary(), path)

    def _read_loss(self, pid: str, jid: str, rules: Sequence[Any] = ()) -> LossWatch:
        """The job's whole loss series, read from its logs here, once (``rules`` applied along the way)."""
        assert self.loss_gate is not None
        watch = LossWatch(pid, jid, rules, self.loss_gate["loss_pattern"], whole=True)
        watch.since(self.hook.get_training_job(pid, jid).created_at)
        watch.poll_to_end(self.hook)
        return watch

    def _emit_completed(self, context: Context, pid: str, jid: str) -> None:
        """The COMPLETED job's asset event (through the task's ``AssetAlias`` or its own asset outlet)."""
        from airflow_provider_baseten.assets import cost_extra, emit_asset_event, training_job_asset

        extra = {
            "training_project_id": pid,
            "training_job_id": jid,
            "status": "TRAINING_JOB_COMPLETED",
            "completed_at": datetime.now(timezone.utc).isoformat(),
            **cost_extra(self._cost),
            **({xcom.BASETEN_LOSS: self._loss} if self._loss is not None else {}),
        }
        if emit_asset_event(context, training_job_asset(pid, jid), extra):
            self.log.info("Asset event of training job %s: %s", jid, extra)

    def _report_cost(self, context: Context, pid: str, jid: str) -> None:
        """Log the job's cost and push XCom ``baseten_cost``; keep it for the asset event and lineage."""
        self._cost = training_cost(context, self.hook, self.log, pid, jid, self.node_count())

    # -- waiting ---------------------------------------------------------------------------------------
    def _trigger(self, pid: str, jid: str, context: Context | None = None) -> TrainingJobTrigger:
        from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger

        return TrainingJobTrigger(
            conn_id=self.baseten_conn_id,
            training_project_id=pid,
            training_job_id=jid,
            log_tail=self.log_tail,
            poll_interval=self.poke_interval,
            end_time=self.end_time(context),
            hook_params=self.hook_params,
            cancel_on_kill=self.cancel_on_kill,
            cancel_on_timeout=self.undo_on_timeout(context),  # the job is this task's own
            loss_gate=self.loss_gate,
            budget=self._budget(),
            owns_job=True,  # started by this task (or an earlier try of it): the guard may stop it
        )

    def _report_loss(self, context: Context, event: BasetenTriggerEvent, pid: str, jid: str) -> None:
        """Write the series file if asked, push the loss summary (XCom ``baseten_loss``), and fail with
        :class:`~airflow_provider_baseten.exceptions.BasetenTrainingQualityError` when a rule fired."""
        if self.loss_gate is None:
            return
        if not self.loss_series_path:
            self._loss = report_loss(context, self.log, event)
            return
        # The event is small (no series): read the job's whole log here, once, in the worker that writes.
        watch = self._read_loss(pid, jid)
        path = write_series(watch.tracker.points, self.loss_series_path)
        self._loss = report_loss(context, self.log, event, watch.tracker.summary(), path)

    def _budget(self) -> dict[str, Any] | None:
        """The budget guard's kwargs for the trigger (``None`` without a cap)."""
        from airflow_provider_baseten.cost import BudgetGuard

        if self.max_cost_usd is None and self.max_gpu_minutes is None:
            return None
        return BudgetGuard(self.max_cost_usd, self.max_gpu_minutes, self.node_count()).as_kwargs()

    def on_event(self, context: Context, event: BasetenTriggerEvent) -> str:
        """Report the job's cost; log a failed job's error and last log lines, then fail (a budget guard's stop
        with :class:`~airflow_provider_baseten.exceptions.BasetenBudgetExceeded`, not retried); on success
        return the job id."""
        self._finished = True
        pid, jid = str(event.get("training_project_id")), str(event.get("training_job_id"))
        if self._job is None:  # resumed after a deferral: execute's state is gone, the event has the ids
            self._job = {"training_project_id": pid, "training_job_id": jid}
        if event.get("status") != "timeout":  # a timed-out job may still be running: no cost yet
            self._report_cost(context, pid, jid)
        log_training_failure(self.log, event)
        self._report_loss(context, event, pid, jid)  # a stop_on rule that fired fails here
        super().on_event(context, event)  # a failed job, a timeout or a budget guard's stop fails here
        self._emit_completed(context, pid, jid)
        return jid

    @_lineage.never_raises
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the training job as the task's output (``[openlineage]``)."""
        job = self._job or {}
        return _lineage.training_lineage(job.get("training_project_id"), job.get("training_job_id"), self._cost)

    def on_kill(self) -> None:
        """Stop the job this task started (or reconnected to), if ``cancel_on_kill`` and it is still running."""
        if not self.cancel_on_kill or self._job is None or self._finished:
            return
        pid, jid = self._job["training_project_id"], self._job["training_job_id"]
        try:
            self.hook.stop_training_job(pid, jid)
            self.log.info("Stopped training job %s in project %s.", jid, pid)
        except Exception as exc:  # on_kill must not raise
            self.log.warning("Could not stop training job %s: %s", jid, exc)


class CreateTrainingJobOperator(_TrainingJobOperator):
    """Create a Baseten training job and, by default, wait until it completes.

    The body is Baseten's ``CreateTrainingJobV1``: give it whole as ``training_job`` and/or field by field
    (``image``, ``compute``, ``runtime``, ``name``; these win over the same keys in ``training_job``).
    ``image`` is required.

    On Airflow 3.3+ the job is recorded in the task's state store, so a retry of this task reconnects to
    the running job (or returns a job that already completed) instead of creating a second one. Turn this
    off with ``durable=False``.

    :param training_project_id: The training project.
    :param training_job: The ``CreateTrainingJobV1`` body (templated).
    :param image: ``{"base_image": ..., "docker_auth": ...}``.
    :param compute: ``{"accelerator": {"accelerator": "H100", "count": 2}, "node_count": 1, ...}``.
    :param runtime: ``{"start_commands": [...], "environment_variables": {...}, ...}``.
    :param name: The job's name (default: the task id plus a hash of the run, unique per run: a retry of a
        try killed mid-create finds the job by it).
    :param wait_for_completion: Wait until the job ends (default True). COMPLETED succeeds; FAILED,
        DEPLOY_FAILED, STOPPED and EXPIRED fail the task, after logging the job's ``error_message`` and
        its last ``log_tail`` log lines. Unknown statuses are logged and waited on.
    :param log_tail: How many of the job's last log lines to show when it fails (default 50).
    :param cancel_on_kill: Stop the job when the task is killed (only a job this task started).
    :param timeout: Seconds this try may run (see :class:`BasetenWaitingOperator`); with
        ``execution_timeout``, one deadline that holds deferred or not.
    :param cancel_on_timeout: At the deadline, stop the job unless a retry is left to reconnect to it
        (default True).
    :param stop_on: Training-quality rules checked on the loss as the job's logs stream (a rule, the string
        ``"nan"``, or a list: :class:`~airflow_provider_baseten.loss.StopOnNonFinite`,
        :class:`~airflow_provider_baseten.loss.StopOnDivergence`, :class:`~airflow_provider_baseten.loss.StopOnPlateau`).
        When one fires, the job is stopped and the task fails with
        :class:`~airflow_provider_baseten.exceptions.BasetenTrainingQualityError` (not retried), whose
        ``termination_reason`` names the rule and the step. Checked when the DAG is parsed.
    :param loss_pattern: A regex with a named group ``loss`` (and optionally ``step``, ``epoch``) for a log
        shape the built-in readers (Hugging Face dicts, ``key=value``, JSON lines) do not know.
    :param loss_series_path: Where to write the loss series as CSV ``step,loss,epoch`` (templated; a local path
        or an ``ObjectStoragePath``). Default: no file. With any of these three, the loss summary is pushed as
        XCom ``baseten_loss`` (``series_path`` in it).
    :param max_cost_usd: Budget guard: stop the job when the next poll would take its estimated cost
        (nodes x instance price x minutes since it was created) past this many USD; the task then fails with
        :class:`~airflow_provider_baseten.exceptions.BasetenBudgetExceeded` (not retried).
    :param max_gpu_minutes: Budget guard in GPU-minutes (nodes x GPUs per node x minutes), the same way.

    The task reports what the job cost (see :mod:`~airflow_provider_baseten.cost`): one line in the task log,
    XCom ``baseten_cost``, the asset event's extra ``baseten_cost`` and the OpenLineage run facet
    ``baseten_cost``.
    """

    template_fields: Sequence[str] = (
        "training_project_id",
        "training_job",
        "image",
        "compute",
        "runtime",
        "name",
        "loss_series_path",
        "baseten_conn_id",
    )
    template_fields_renderers = {"training_job": "json", "image": "json", "compute": "json", "runtime": "json"}
    external_id_key = "baseten_training_job"

    def __init__(
        self,
        *,
        training_project_id: str,
        training_job: dict[str, Any] | None = None,
        image: dict[str, Any] | None = None,
        compute: dict[str, Any] | None = None,
        runtime: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(training_project_id=training_project_id, **kwargs)
        if training_job is None and image is None:
            raise ValueError("CreateTrainingJobOperator needs image= (or a training_job= body with 'image').")
        self.training_job = training_job
        self.image = image
        self.compute = compute
        self.runtime = runtime
        self.name = name

    def body(self) -> dict[str, Any]:
        """The ``CreateTrainingJobV1`` body (after templating), checked before anything is sent."""
        from airflow_provider_baseten.exceptions import BasetenValidationError

        if self.training_job is not None and not isinstance(self.training_job, dict):
            raise BasetenValidationError("training_job must be a dict (CreateTrainingJobV1).", field="training_job")
        body = dict(self.training_job or {})
        for key in ("image", "compute", "runtime", "name"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        if not isinstance(body.get("image"), dict):
            raise BasetenValidationError(
                "The training job needs image={'base_image': ...} (Baseten's CreateTrainingJobV1).", field="image"
            )
        for key in ("compute", "runtime"):
            if key in body and body[key] is not None and not isinstance(body[key], dict):
                raise BasetenValidationError(f"{key} must be a dict (see CreateTrainingJobV1).", field=key)
        return body

    def _job_name(self, context: Context) -> str | None:
        return str(self.body().get("name") or "") or run_unique_name(context, self.task_id)

    def node_count(self) -> int:
        """``compute.node_count`` of the body (1, Baseten's default, when not given)."""
        compute = self.body().get("compute") or {}
        nodes = compute.get("node_count", 1) if isinstance(compute, dict) else 1
        return nodes if is_int(nodes) and nodes > 0 else 1

    def _start(self, context: Context) -> Any:
        return self.hook.create_training_job(self.training_project_id, {**self.body(), "name": self._job_name(context)})


class RecreateTrainingJobOperator(_TrainingJobOperator):
    """Start a new training job with the configuration of an earlier one, and by default wait for it.

    Durable like :class:`CreateTrainingJobOperator`: a retry reconnects to the job this task recreated.
    Returns the *new* job's id.

    :param training_project_id: The training project.
    :param training_job_id: The job to copy.
    :param wait_for_completion: Wait until the new job ends (default True); see
        :class:`CreateTrainingJobOperator` for what succeeds and fails.
    :param cancel_on_kill: Stop the new job when the task is killed (never the job it copied).
    :param stop_on: See :class:`CreateTrainingJobOperator` (the rules stop the new job only).
    :param loss_pattern: See :class:`CreateTrainingJobOperator`.
    :param loss_series_path: See :class:`CreateTrainingJobOperator`.
    :param max_cost_usd: Budget guard in USD; see :class:`CreateTrainingJobOperator`.
    :param max_gpu_minutes: Budget guard in GPU-minutes; see :class:`CreateTrainingJobOperator`.
    :param node_count: The copied job's ``compute.node_count`` (default 1): Baseten's job object does not
        say, and the cost estimate and the budget guard count this many nodes.
    """

    template_fields: Sequence[str] = ("training_project_id", "training_job_id", "loss_series_path", "baseten_conn_id")
    external_id_key = "baseten_recreated_training_job"

    def __init__(self, *, training_project_id: str, training_job_id: str, node_count: int = 1, **kwargs: Any) -> None:
        super().__init__(training_project_id=training_project_id, **kwargs)
        if not training_job_id:
            raise ValueError("training_job_id (the job to recreate) is required.")
        self.training_job_id = training_job_id
        self._node_count = int_in("node_count", node_count, 1)

    def node_count(self) -> int:
        """The ``node_count`` given (Baseten's job object does not carry it)."""
        return self._node_count

    def _job_name(self, context: Context) -> str | None:
        # A recreated job keeps its source's name (its whole configuration): with it, a retry does not take
        # another task's new job in the same project for this one.
        return self.hook.get_training_job(self.training_project_id, self.training_job_id).name or None

    def _start(self, context: Context) -> Any:
        self.log.info("Recreating training job %s in project %s.", self.training_job_id, self.training_project_id)
        return self.hook.recreate_training_job(self.training_project_id, self.training_job_id)


class StopTrainingOperator(BasetenBaseOperator):
    """Stop a training job. A job that has already ended is left alone and the task says so.

    Returns the job's status after the call. A job that does not exist fails the task with a clear error.

    :param training_project_id: The training project.
    :param training_job_id: The job to stop.
    """

    template_fields: Sequence[str] = ("training_project_id", "training_job_id", "baseten_conn_id")
    operator_extra_links = (BasetenTrainingJobLink(),)

    def __init__(self, *, training_project_id: str, training_job_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.training_project_id = training_project_id
        self.training_job_id = training_job_id

    def execute(self, context: Context) -> str | None:
        """Stop the job unless it has ended; return its status."""
        from airflow_provider_baseten.exceptions import BasetenNotFoundError
        from airflow_provider_baseten.models import TRAINING_TERMINAL_STATES

        pid, jid = self.training_project_id, self.training_job_id
        try:
            job = self.hook.get_training_job(pid, jid)
        except BasetenNotFoundError as exc:
            raise BasetenNotFoundError(
                f"Training job {jid} does not exist in training project {pid}: check both ids.",
                status_code=exc.status_code,
                error_code=exc.error_code,
                request_id=exc.request_id,
            ) from None
        push_training_job(context, pid, jid)
        if job.current_status in TRAINING_TERMINAL_STATES:
            self.log.info("Training job %s has already ended (%s); nothing to stop.", jid, job.current_status)
            return job.current_status
        stopped = self.hook.stop_training_job(pid, jid)
        self.log.info(
            "Stop requested for training job %s (was %s, now %s).", jid, job.current_status, stopped.current_status
        )
        return stopped.current_status


class GetTrainingCheckpointsOperator(BasetenBaseOperator):
    """Return a training job's checkpoints, newest first, as JSON-ready dicts (for a deploy/promote step).

    Each item has Baseten's fields (``checkpoint_id``, ``created_at``, ``checkpoint_type``, ``size_bytes``,
    ...). The newest checkpoint's id is also pushed as XCom ``latest_checkpoint_id``.

    :param training_project_id: The training project.
    :param training_job_id: The job.
    :param limit: Return at most this many (the newest).
    :param fail_if_empty: Fail when the job has no checkpoints (default False: return ``[]``).
    """

    template_fields: Sequence[str] = ("training_project_id", "training_job_id", "baseten_conn_id")
    operator_extra_links = (BasetenTrainingJobLink(),)

    def __init__(
        self,
        *,
        training_project_id: str,
        training_job_id: str,
        limit: int | None = None,
        fail_if_empty: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive integer, got {limit!r}.")
        self.training_project_id = training_project_id
        self.training_job_id = training_job_id
        self.limit = limit
        self.fail_if_empty = fail_if_empty

    def execute(self, context: Context) -> list[dict[str, Any]]:
        """List, sort newest first, and return the checkpoints."""
        from airflow_provider_baseten.exceptions import BasetenRemoteStateError

        pid, jid = self.training_project_id, self.training_job_id
        push_training_job(context, pid, jid)
        checkpoints = self.hook.get_training_job_checkpoints(pid, jid)
        items = [c.model_dump(mode="json") for c in checkpoints]
        # Stable sort: checkpoints without a readable created_at keep Baseten's order, after dated ones.
        items.sort(key=lambda c: _when(c.get("created_at")), reverse=True)
        if self.limit is not None:
            items = items[: self.limit]
        if not items:
            if self.fail_if_empty:
                raise BasetenRemoteStateError(f"Training job {jid} in project {pid} has no checkpoints.")
            self.log.info("Training job %s has no checkpoints.", jid)
            return []
        context["ti"].xcom_push(key=xcom.LATEST_CHECKPOINT_ID, value=items[0].get("checkpoint_id"))
        self.log.info(
            "Training job %s: %d checkpoint(s); newest %s (%s).",
            jid,
            len(items),
            items[0].get("checkpoint_id"),
            items[0].get("created_at"),
        )
        return items


def _when(value: Any) -> float:
    """Sort key: epoch seconds of an ISO timestamp (or epoch number); unknown sorts oldest."""
    if isinstance(value, (int, float)):
        return float(value) / (1000.0 if value > 1e11 else 1.0)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return float("-inf")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return float("-inf")
