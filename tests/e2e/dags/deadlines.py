"""Deadlines in a real Airflow (tests/e2e/test_deadlines.py). Every wait is deferred to the triggerer.

``deadlines``: a training task that times out (``timeout=20``), one that hits ``execution_timeout=20``, one
with a retry left, and a sensor on a job it did not start. ``deadlines_kill``: a training task whose
triggerer is SIGKILLed mid-wait. The training project and the foreign job come from Variables the test sets.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
from airflow_provider_baseten.sensors.training import TrainingJobSensor

START = datetime(2026, 1, 1)
IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}
POLL = 2.0  # seconds between status checks: "one poll" in the test's time limits
PROJECT = "{{ var.value.deadline_project }}"
TRAIN = {"training_project_id": PROJECT, "image": IMAGE, "deferrable": True, "poke_interval": POLL}

with DAG("deadlines", schedule=None, start_date=START, catchup=False) as deadlines:
    CreateTrainingJobOperator(
        task_id="train_timeout",
        **TRAIN,
        name="deadline-timeout",
        timeout=20,
        retries=0,
    )
    CreateTrainingJobOperator(
        task_id="train_execution_timeout",
        **TRAIN,
        name="deadline-execution-timeout",
        execution_timeout=timedelta(seconds=20),
        retries=0,
    )
    CreateTrainingJobOperator(
        task_id="train_retry",
        **TRAIN,
        name="deadline-retry",
        timeout=30,  # the test lets the job finish during the retry
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
    TrainingJobSensor(
        task_id="sensor_foreign",
        training_project_id=PROJECT,
        training_job_id="{{ var.value.deadline_foreign_job }}",
        deferrable=True,
        poke_interval=POLL,
        timeout=20,
    )

with DAG("deadlines_kill", schedule=None, start_date=START, catchup=False) as deadlines_kill:
    CreateTrainingJobOperator(
        task_id="train_through_kill",
        **TRAIN,
        name="deadline-kill",
        retries=0,
    )
