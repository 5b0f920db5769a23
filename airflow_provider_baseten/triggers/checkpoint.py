"""Wait until a training job's checkpoints can be deployed: the job COMPLETED and ``checkpoint_sync_status``
COMPLETED (a deploy from a checkpoint that is still SYNCING would not find it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.models import TRAINING_FAILED_STATES
from airflow_provider_baseten.triggers._poll import BasetenPollTrigger, event

if TYPE_CHECKING:
    from airflow_provider_baseten.events import BasetenTriggerEvent
    from airflow_provider_baseten.hooks.baseten import BasetenHook

#: The job-level ``checkpoint_sync_status`` that allows a deploy.
SYNCED = "COMPLETED"
#: Job-level sync statuses still on their way (``None``: not started yet, e.g. right after the job ended).
SYNCING = frozenset({None, "SYNCING"})


def checkpoints_ready(job: Any) -> bool:
    """Whether the job completed and its checkpoints finished syncing."""
    return bool(job.current_status == "TRAINING_JOB_COMPLETED" and job.checkpoint_sync_status == SYNCED)


class CheckpointSyncTrigger(BasetenPollTrigger):
    """Wait for a training job to complete and its checkpoints to sync; fail if the job ends badly.

    Waiting only, never undoing: the job is not this task's to stop.
    """

    def __init__(self, *, training_project_id: str, training_job_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.training_project_id = training_project_id
        self.training_job_id = training_job_id

    def _kwargs(self) -> dict[str, Any]:
        return {"training_project_id": self.training_project_id, "training_job_id": self.training_job_id}

    def _ids(self) -> dict[str, Any]:
        return self._kwargs()

    def _describe(self) -> str:
        return f"checkpoints of training job {self.training_job_id} to sync"

    async def check(self, hook: BasetenHook) -> BasetenTriggerEvent | None:
        """Read the job once."""
        job = await hook.aget_training_job(self.training_project_id, self.training_job_id)
        status = job.current_status or "UNKNOWN"
        if checkpoints_ready(job):
            return event("success", f"Training job {job.id} completed; its checkpoints are synced.", **self._ids())
        if status in TRAINING_FAILED_STATES:
            why = f": {job.error_message}" if job.error_message else ""
            return event("failed", f"Training job {job.id} ended {status}{why}", job_status=status, **self._ids())
        sync = job.checkpoint_sync_status
        if status == "TRAINING_JOB_COMPLETED" and sync not in SYNCING:
            # Baseten documents only SYNCING and COMPLETED: any other value will not turn into COMPLETED.
            message = f"Training job {job.id} completed, but its checkpoint sync ended {sync}: nothing to deploy."
            return event("failed", message, job_status=status, **self._ids())
        return None
