"""Train, check, promote: fine-tune on Baseten and put the candidate in production only if it passes.

What it shows
-------------
0. ``training_project`` names the training project instead of hard-coding its id:
   ``BasetenHook.get_or_create_training_project`` finds the project of that name, or creates it.
1. ``choose_training`` branches: recreate a known-good job (Variable ``baseten_recreate_training_job_id``)
   or create a new one from a ``CreateTrainingJobV1`` body. Either way the job id goes to XCom at once.
   On Airflow 3.3+ a retried task reconnects to its job instead of starting a second one.
2. ``wait_for_training`` (:class:`TrainingJobSensor`, deferrable) waits in the triggerer, not in a worker
   slot. COMPLETED passes; FAILED, STOPPED, ... fail with the job's error and the last log lines.
3. ``list_checkpoints`` returns the job's checkpoints, newest first.
4. ``resolve_candidate`` names the deployment to judge: by default the model's development deployment
   (where ``truss train deploy_checkpoints`` / ``truss push`` put the new weights), or Variable
   ``baseten_candidate_deployment_id``. ``wait_for_candidate`` (:class:`DeploymentStatusSensor`,
   deferrable) wakes it if it scaled to zero and waits until it is ACTIVE.
5. ``smoke_test`` sends a few prompts straight to the candidate; ``judge_quality`` branches on the share of
   good answers: ``promote_candidate`` (:class:`PromoteDeploymentOperator`, deferrable wait until the
   promotion finished) then ``set_autoscaling`` (:class:`UpdateAutoscalingOperator`) on production, or
   ``reject_candidate``, which leaves production untouched.

Configure it
------------
* Connection ``baseten_default`` (type Baseten): the API key and the ``model_id`` to promote into.
* Variables (or ``AIRFLOW_VAR_<NAME>`` environment variables):

  ``baseten_training_project``
      The name of the training project to run jobs in; created if missing. Default ``airflow-fine-tune``.
  ``baseten_training_project_id``
      Use this project id instead of looking the name up (the DAG's earlier, id-only configuration).
  ``baseten_recreate_training_job_id``
      Recreate this job instead of creating one from the body below. Default: create.
  ``baseten_candidate_deployment_id``
      The deployment to judge and promote. Default ``development``.
  ``baseten_min_quality``
      The share of smoke prompts that must be answered (0-1). Default ``1.0``.

* ``BASETEN_EXAMPLE_POLL_SECONDS`` (environment): seconds between status checks (default 30).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Variable, task

from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator, UpdateAutoscalingOperator
from airflow_provider_baseten.operators.inference import PredictOperator
from airflow_provider_baseten.operators.training import (
    CreateTrainingJobOperator,
    GetTrainingCheckpointsOperator,
    RecreateTrainingJobOperator,
)
from airflow_provider_baseten.sensors.deployment import DeploymentStatusSensor
from airflow_provider_baseten.sensors.training import TrainingJobSensor

POLL_SECONDS = float(os.environ.get("BASETEN_EXAMPLE_POLL_SECONDS", "30"))
PROJECT = "{{ ti.xcom_pull(task_ids='training_project') }}"
JOB_ID = (
    "{{ ti.xcom_pull(task_ids='create_training_job', key='training_job_id')"
    " or ti.xcom_pull(task_ids='recreate_training_job', key='training_job_id') }}"
)
SMOKE_PROMPTS = [
    {"text": "Summarise: Airflow schedules the work, Baseten serves the model."},
    {"text": "Translate to French: the model is ready."},
    {"text": "Answer yes or no: is the sky blue?"},
]

with DAG(
    dag_id="baseten_train_then_promote",
    description="Fine-tune, wait (deferred), smoke-test the candidate, promote it if it passes",
    schedule=None,  # run on demand, or point an asset at it when new training data lands
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
    tags=["baseten", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def training_project() -> str:
        """The id of the training project named by Variable ``baseten_training_project`` (created if missing)."""
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        known = Variable.get("baseten_training_project_id", default="")
        if known:
            return known
        name = Variable.get("baseten_training_project", default="airflow-fine-tune")
        project = BasetenHook("baseten_default").get_or_create_training_project(name)
        print(f"Training project {project.name!r}: {project.id}")
        return project.id

    @task.branch
    def choose_training() -> str:
        """Recreate a known-good job when one is named, else create a new job."""
        if Variable.get("baseten_recreate_training_job_id", default=""):
            return "recreate_training_job"
        return "create_training_job"

    create = CreateTrainingJobOperator(
        task_id="create_training_job",
        training_project_id=PROJECT,
        name="fine-tune-{{ dag_run.run_after | ts_nodash }}",  # run_after: manual runs may have no logical date
        image={"base_image": "pytorch/pytorch:2.7.0-cuda12.8-cudnn9-runtime"},
        compute={"accelerator": {"accelerator": "H100", "count": 1}, "node_count": 1},
        runtime={
            "start_commands": ["/bin/sh -c 'chmod +x ./run.sh && ./run.sh'"],
            "environment_variables": {"EPOCHS": "3", "RUN_DATE": "{{ dag_run.run_after | ds }}"},
        },
        wait_for_completion=False,  # the sensor below waits, deferred
    )
    recreate = RecreateTrainingJobOperator(
        task_id="recreate_training_job",
        training_project_id=PROJECT,
        training_job_id="{{ var.value.get('baseten_recreate_training_job_id', '') }}",
        wait_for_completion=False,
    )

    wait_for_training = TrainingJobSensor(
        task_id="wait_for_training",
        training_project_id=PROJECT,
        training_job_id=JOB_ID,
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=12 * 3600,
        trigger_rule="none_failed_min_one_success",  # one of the two branches ran
    )

    checkpoints = GetTrainingCheckpointsOperator(
        task_id="list_checkpoints",
        training_project_id=PROJECT,
        training_job_id=JOB_ID,
        fail_if_empty=True,
    )

    @task
    def resolve_candidate() -> str:
        """The id of the deployment to judge (``development`` resolves to the model's dev deployment)."""
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        wanted = Variable.get("baseten_candidate_deployment_id", default="development")
        deployment = BasetenHook("baseten_default").get_deployment(wanted)
        print(f"Candidate: deployment {deployment.id} ({deployment.name}), now {deployment.status}")
        return deployment.id

    candidate = resolve_candidate()

    wait_for_candidate = DeploymentStatusSensor(
        task_id="wait_for_candidate",
        deployment_id=candidate,
        wake=True,  # a scaled-to-zero candidate is woken instead of waiting for traffic
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=3600,
    )

    smoke_test = PredictOperator(
        task_id="smoke_test",
        model_inputs=SMOKE_PROMPTS,
        deployment_id=candidate,  # straight to the candidate, not to what production serves
        on_error="record",
        max_error_rate=1.0,  # failed prompts are judged below, not here
        max_concurrency=4,
    )

    @task.branch
    def judge_quality(outputs: list) -> str:
        """Replace with your evaluation. Here: the share of prompts answered without an error."""
        good = sum(1 for out in outputs if out and not (isinstance(out, dict) and "error" in out))
        quality = good / len(outputs)
        threshold = float(Variable.get("baseten_min_quality", default="1.0"))
        print(f"Smoke test: {good}/{len(outputs)} good answers (quality {quality:.2f}, threshold {threshold:.2f})")
        return "promote_candidate" if quality >= threshold else "reject_candidate"

    promote = PromoteDeploymentOperator(
        task_id="promote_candidate",
        deployment_id=candidate,
        environment="production",
        scale_down_previous=True,  # the old production deployment scales down once the new one serves
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=3600,
    )

    set_autoscaling = UpdateAutoscalingOperator(
        task_id="set_autoscaling",
        environment="production",
        autoscaling_settings={"min_replica": 1, "max_replica": 4, "concurrency_target": 8, "scale_down_delay": 600},
    )

    @task
    def reject_candidate(deployment_id: str) -> None:
        """Production keeps serving what it served; the candidate stays where it is for a human to look at."""
        print(f"Deployment {deployment_id} did not pass the smoke test; production is unchanged.")

    branch = choose_training()
    (
        training_project()
        >> branch
        >> [create, recreate]
        >> wait_for_training
        >> checkpoints
        >> candidate
        >> wait_for_candidate
    )
    wait_for_candidate >> smoke_test
    judge = judge_quality(smoke_test.output)
    judge >> promote >> set_autoscaling
    judge >> reject_candidate(candidate)
