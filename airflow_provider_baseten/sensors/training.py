"""TrainingJobSensor: wait for a training job to finish, in poke or deferrable mode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.links import BasetenTrainingJobLink
from airflow_provider_baseten.loss import gate_spec
from airflow_provider_baseten.sensors._base import BasetenTriggerSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger


class TrainingJobSensor(BasetenTriggerSensor):
    """Wait until a training job ends.

    ``TRAINING_JOB_COMPLETED`` succeeds. ``FAILED``, ``DEPLOY_FAILED``, ``STOPPED`` and ``EXPIRED`` fail the
    task; before failing, the job's ``error_message`` and its last ``log_tail`` log lines are written to
    the task log. A status this provider does not know is logged once and waited on, bounded by
    ``timeout``.

    This sensor never stops the job when killed: it did not start it.

    Pushes ``training_job_id`` and ``baseten_training_job_url`` to XCom; returns the final status. When the
    job has ended, what it cost is logged and pushed as XCom ``baseten_cost`` (one node assumed: the job
    object does not say how many it ran on; the billed figure, when the usage summary has it, is exact).

    :param training_project_id: The training project.
    :param training_job_id: The job (templated, e.g. from ``CreateTrainingJobOperator``'s XCom).
    :param log_tail: How many of the job's last log lines to show when it fails (default 50).
    :param deferrable: Wait in the triggerer (default ``[operators] default_deferrable``).
    :param stop_on: Training-quality rules on the loss read from the job's logs (see
        :class:`~airflow_provider_baseten.operators.training.CreateTrainingJobOperator`). When one fires, the
        task fails with :class:`~airflow_provider_baseten.exceptions.BasetenTrainingQualityError`; the job is
        **not** stopped (this sensor did not start it; stop it downstream with ``StopTrainingOperator``).
        With ``stop_on`` or ``loss_pattern`` the loss summary is pushed as XCom ``baseten_loss``.
    :param loss_pattern: A regex with a named group ``loss`` for a log shape the built-in readers do not know.
    """

    template_fields: Sequence[str] = ("training_project_id", "training_job_id", "baseten_conn_id")
    operator_extra_links = (BasetenTrainingJobLink(),)
    event_keys = ("training_job_id",)
    default_poke_interval = 30.0

    def __init__(
        self,
        *,
        training_project_id: str,
        training_job_id: str,
        log_tail: int = 50,
        stop_on: Any = None,
        loss_pattern: str | None = None,
        baseten_conn_id: str = "baseten_default",
        deferrable: bool | None = None,
        poke_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(baseten_conn_id=baseten_conn_id, deferrable=deferrable, poke_interval=poke_interval, **kwargs)
        if not isinstance(log_tail, int) or log_tail < 0:
            raise ValueError(f"log_tail must be a non-negative integer, got {log_tail!r}.")
        self.training_project_id = training_project_id
        self.training_job_id = training_job_id
        self.log_tail = log_tail
        # Checked here, before anything is sent. The gate never stops the job: it is not this task's.
        self.loss_gate = gate_spec(stop_on, loss_pattern)

    def make_trigger(self, context: Context, end_time: float | None) -> TrainingJobTrigger:
        from airflow_provider_baseten._tasks import push_training_job
        from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger

        pid, jid = str(self.training_project_id), str(self.training_job_id)
        push_training_job(context, pid, jid)
        self._context = context  # finish() reports the cost with it
        return TrainingJobTrigger(
            conn_id=self.baseten_conn_id,
            training_project_id=pid,
            training_job_id=jid,
            log_tail=self.log_tail,
            poll_interval=self.poke_interval,
            end_time=end_time,
            hook_params=self.hook_params,
            loss_gate=self.loss_gate,
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after deferral (keeping the context, for the cost report)."""
        self._context = context
        return super().execute_complete(context, event)

    def finish(self, event: BasetenTriggerEvent) -> str | None:
        from airflow_provider_baseten._tasks import log_training_failure, report_loss, training_cost

        context = getattr(self, "_context", None)
        if context is not None and event.get("status") != "timeout":  # a timed-out job may still be running
            from airflow_provider_baseten.hooks.baseten import BasetenHook

            hook = BasetenHook(self.baseten_conn_id, **self.hook_params)
            training_cost(context, hook, self.log, str(self.training_project_id), str(self.training_job_id))
        log_training_failure(self.log, event)
        if self.loss_gate is not None and context is not None:
            report_loss(context, self.log, event)
        super().finish(event)
        return event.get("job_status")
