"""Chaos cases 3 and 4 in a real Airflow: deferred waits that get killed, and waits whose process crashes.

Ids of things the tasks did NOT start come from Variables the test sets (``chaos_foreign_ids``,
``chaos_foreign_job``); everything else the tasks start themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
from airflow_provider_baseten.sensors.inference import AsyncPredictSensor
from airflow_provider_baseten.sensors.training import TrainingJobSensor

START = datetime(2026, 1, 1)
IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}

with DAG("chaos_kill", schedule=None, start_date=START, catchup=False, render_template_as_native_obj=True) as kill:
    AsyncPredictOperator(
        task_id="async_own",
        model_inputs=[{"case": "kill", "i": i} for i in range(3)],
        wait_for_completion=True,
        deferrable=True,
        poke_interval=1,
    )
    AsyncPredictSensor(
        task_id="async_sensor_foreign",
        request_ids="{{ var.json.chaos_foreign_ids }}",
        deferrable=True,
        poke_interval=1,
    )
    CreateTrainingJobOperator(
        task_id="training_own",
        training_project_id="{{ var.value.chaos_project }}",
        image=IMAGE,
        name="chaos-kill",
        deferrable=True,
        poke_interval=1,
    )
    TrainingJobSensor(
        task_id="training_sensor_foreign",
        training_project_id="{{ var.value.chaos_project }}",
        training_job_id="{{ var.value.chaos_foreign_job }}",
        deferrable=True,
        poke_interval=1,
    )
    PromoteDeploymentOperator(
        task_id="promote_own",
        deployment_id="dep1prod",
        environment="staging",
        deferrable=True,
        poke_interval=1,
    )
    PromoteDeploymentOperator(  # a promotion someone else started: this task only waits on it
        task_id="promote_foreign",
        deployment_id="dep2devl",
        environment="production",
        deferrable=True,
        poke_interval=1,
    )

with DAG(
    "chaos_crash",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
) as crash:
    AsyncPredictOperator(
        task_id="async_crash",
        model_inputs=[{"case": "crash", "i": i} for i in range(3)],
        max_time_in_queue_seconds=7200,  # the test moves the emulator's clock past the 3600 s queue
        wait_for_completion=True,
        deferrable=False,
        poke_interval=1,
    )
    CreateTrainingJobOperator(
        task_id="training_crash",
        training_project_id="{{ var.value.chaos_project }}",
        image=IMAGE,
        name="chaos-crash",
        deferrable=False,
        poke_interval=1,
    )

with DAG(
    "chaos_partial",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
) as partial:
    # Case 10.2: killed in the middle of its submits (the test holds the 4th submit), then retried.
    AsyncPredictOperator(
        task_id="async_partial",
        model_inputs=[{"case": "partial", "i": i} for i in range(6)],
        deployment_id="dep1prod",  # its own endpoint (deployment_async_predict), so the test can hold it
        max_time_in_queue_seconds=7200,
        wait_for_completion=False,
        deferrable=False,
    )
