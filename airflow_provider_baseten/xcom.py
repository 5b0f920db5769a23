"""The XCom keys the provider's operators and sensors push, and its extra links read.

Use these constants instead of string literals, e.g. in a downstream task::

    from airflow_provider_baseten.xcom import DEPLOYMENT_ID

    deployment_id = ti.xcom_pull(task_ids="promote", key=DEPLOYMENT_ID)

The task's return value (XCom key ``return_value``) is documented on each operator.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BASETEN_COST",
    "BASETEN_EVALUATION",
    "BASETEN_LOSS",
    "CHECKPOINT_ID",
    "CONN_ID",
    "DEPLOYMENT_ID",
    "DEPLOYMENT_URL",
    "LATEST_CHECKPOINT_ID",
    "MODEL_ID",
    "MODEL_URL",
    "PREVIOUS_DEPLOYMENT_ID",
    "REQUEST_IDS",
    "STATUS_TIMELINE",
    "TRAINING_JOB_ID",
    "TRAINING_JOB_URL",
    "TRAINING_PROJECT_ID",
]

#: The Baseten UI page of the model (read by :class:`~airflow_provider_baseten.links.BasetenModelLink`).
MODEL_URL: Final = "baseten_model_url"
#: The Baseten UI page of the deployment (read by :class:`~airflow_provider_baseten.links.BasetenDeploymentLink`).
DEPLOYMENT_URL: Final = "baseten_deployment_url"
#: The Baseten UI page of the training job (read by
#: :class:`~airflow_provider_baseten.links.BasetenTrainingJobLink`).
TRAINING_JOB_URL: Final = "baseten_training_job_url"
#: The id of the deployment the task promoted, woke or watched.
DEPLOYMENT_ID: Final = "deployment_id"
#: The deployment the environment served before the task's promotion (``None`` if it served none).
PREVIOUS_DEPLOYMENT_ID: Final = "previous_deployment_id"
#: The training project of the job the task started or watched.
TRAINING_PROJECT_ID: Final = "training_project_id"
#: The training job the task started or watched.
TRAINING_JOB_ID: Final = "training_job_id"
#: The ids of the async requests ``AsyncPredictOperator`` submitted (pushed before any waiting).
REQUEST_IDS: Final = "request_ids"
#: The newest checkpoint found by ``GetTrainingCheckpointsOperator``.
LATEST_CHECKPOINT_ID: Final = "latest_checkpoint_id"
#: The model the task deployed to (``DeployModelOperator``, ``DeployTrainingCheckpointOperator``).
MODEL_ID: Final = "model_id"
#: The checkpoint (or list of LoRA checkpoints) ``DeployTrainingCheckpointOperator`` deployed.
CHECKPOINT_ID: Final = "checkpoint_id"
#: ``EvaluateDeploymentOperator``'s report: candidate and current figures, their difference, the gate's outcome
#: and ``markdown`` (the report as a table, for the body of an ``ApprovalOperator``).
BASETEN_EVALUATION: Final = "baseten_evaluation"
#: What the task cost: ``{usd, estimated, minutes, instance_type, source}``
#: (:meth:`~airflow_provider_baseten.cost.CostReport.as_xcom`).
BASETEN_COST: Final = "baseten_cost"
#: The training loss of the job the task waited on (``stop_on`` / ``loss_pattern`` / ``loss_series_path``):
#: ``{first, best, best_step, last, last_step, steps, series_path, termination_reason}``
#: (:meth:`~airflow_provider_baseten.loss.LossTracker.summary`; ``series_path`` is the CSV ``step,loss,epoch``
#: file, or ``None`` when no ``loss_series_path`` was given).
BASETEN_LOSS: Final = "baseten_loss"
#: The Baseten connection the task used (read by the Baseten task-instance tab, which reads Baseten through it).
CONN_ID: Final = "baseten_conn_id"
#: The statuses the task's wait saw, in order (``[{"at": epoch s, "status": ..., "percent"?: ...}]``): Baseten
#: keeps no status history, so the Baseten tab shows what the wait recorded.
STATUS_TIMELINE: Final = "baseten_status_timeline"
