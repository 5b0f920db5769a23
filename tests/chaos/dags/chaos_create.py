"""Issue 21 §1 in a real Airflow: every operator that creates something, killed mid-create, then retried.

The test holds each create's answer on the emulator (after the object was committed) and SIGKILLs the task
runner in that time; ``retries=1`` lets Airflow run the try that must not create a second object. Ids the
tasks need come from Variables the test sets (``chaos_project``, ``chaos_source_job``, ``chaos_trained_job``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_baseten.operators.deploy import DeployModelOperator, DeployTrainingCheckpointOperator
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator, RecreateTrainingJobOperator

IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}
ARGS = {"retries": 1, "retry_delay": timedelta(seconds=1), "wait_for_completion": False, "deferrable": False}

with DAG("chaos_create", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, default_args=ARGS) as dag:
    CreateTrainingJobOperator(  # no name given: the measured case
        task_id="create_training_job", training_project_id="{{ var.value.chaos_project }}", image=IMAGE
    )
    RecreateTrainingJobOperator(
        task_id="recreate_training_job",
        training_project_id="{{ var.value.chaos_project }}",
        training_job_id="{{ var.value.chaos_source_job }}",
    )
    DeployModelOperator(
        task_id="deploy_model",
        config={"model_name": "chaos-deploy", "resources": {"accelerator": "H100:1", "use_gpu": True}},
    )
    DeployTrainingCheckpointOperator(
        task_id="deploy_checkpoint",
        training_project_id="{{ var.value.chaos_project }}",
        training_job_id="{{ var.value.chaos_trained_job }}",
        model_name="chaos-ckpt",
    )
    AsyncPredictOperator(
        task_id="async_submit",
        model_inputs=[{"case": "kill-create", "i": i} for i in range(3)],
        max_time_in_queue_seconds=7200,
    )
