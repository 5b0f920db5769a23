"""TrainingJobSensor: wait for a training job to finish, in poke or deferrable mode."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_provider_baseten.links import BasetenTrainingJobLink
from airflow_provider_baseten.operators._base import default_deferrable, raise_for_event, validate_event

if TYPE_CHECKING:
    from airflow.sdk import Context, PokeReturnValue

    from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger


class TrainingJobSensor(BaseSensorOperator):
    """Wait until a training job ends.

    ``TRAINING_JOB_COMPLETED`` succeeds. ``FAILED``, ``DEPLOY_FAILED``, ``STOPPED`` and ``EXPIRED`` fail the
    task; before failing, the job's ``error_message`` and its last ``log_tail`` log lines are written to
    the task log. A status this provider does not know is logged once and waited on, bounded by
    ``timeout``.

    This sensor never stops the job when killed: it did not start it.

    Pushes ``training_job_id`` and ``baseten_training_job_url`` to XCom; returns the final status.

    :param training_project_id: The training project.
    :param training_job_id: The job (templated, e.g. from ``CreateTrainingJobOperator``'s XCom).
    :param log_tail: How many of the job's last log lines to show when it fails (default 50).
    :param deferrable: Wait in the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("training_project_id", "training_job_id", "baseten_conn_id")
    operator_extra_links = (BasetenTrainingJobLink(),)

    def __init__(
        self,
        *,
        training_project_id: str,
        training_job_id: str,
        log_tail: int = 50,
        baseten_conn_id: str = "baseten_default",
        deferrable: bool | None = None,
        poke_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        if not isinstance(log_tail, int) or log_tail < 0:
            raise ValueError(f"log_tail must be a non-negative integer, got {log_tail!r}.")
        self.training_project_id = training_project_id
        self.training_job_id = training_job_id
        self.log_tail = log_tail
        self.baseten_conn_id = baseten_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self._trigger_obj: TrainingJobTrigger | None = None

    def _make_trigger(self, context: Context, end_time: float | None) -> TrainingJobTrigger:
        from airflow_provider_baseten.operators.training import push_training_job
        from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger

        pid, jid = str(self.training_project_id), str(self.training_job_id)
        push_training_job(context, pid, jid)
        return TrainingJobTrigger(
            conn_id=self.baseten_conn_id,
            training_project_id=pid,
            training_job_id=jid,
            log_tail=self.log_tail,
            poll_interval=self.poke_interval,
            end_time=end_time,
        )

    def execute(self, context: Context) -> Any:
        """Poke, or defer to the triggerer."""
        if not self.deferrable:
            return super().execute(context)
        import time

        self.defer(
            trigger=self._make_trigger(context, time.time() + self.timeout if self.timeout else None),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )
        return None

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """Read the job once (the trigger is kept, so an unknown status is logged only once)."""
        from airflow.sdk import PokeReturnValue

        from airflow_provider_baseten.triggers.baseten import check_once

        if self._trigger_obj is None:
            self._trigger_obj = self._make_trigger(context, None)
        event = check_once(self._trigger_obj)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(validate_event(event)))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str | None:
        """Validate the trigger's event; log a failure's details and fail, or return the final status."""
        return self._finish(validate_event(event, required=("training_job_id",)))

    def _finish(self, event: dict[str, Any]) -> str | None:
        from airflow_provider_baseten.operators.training import log_training_failure

        log_training_failure(self.log, event)
        raise_for_event(event)
        self.log.info("%s", event["message"])
        return event.get("job_status")
