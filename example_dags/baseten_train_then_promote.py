"""Train, deploy, check, approve, promote: fine-tune on Baseten, deploy the trained checkpoint as a new
deployment, and put it in production only if it passes a smoke test and a human approves.

What it shows
-------------
0. ``training_project`` names the training project instead of hard-coding its id:
   ``BasetenHook.get_or_create_training_project`` finds the project of that name, or creates it.
1. ``choose_training`` branches: recreate a known-good job (Variable ``baseten_recreate_training_job_id``)
   or create a new one from a ``CreateTrainingJobV1`` body. Either way the job id goes to XCom at once.
   On Airflow 3.3+ a retried task reconnects to its job instead of starting a second one.
2. ``wait_for_training`` (:class:`TrainingJobSensor`, deferrable) waits in the triggerer, not in a worker
   slot. COMPLETED passes; FAILED, STOPPED, ... fail with the job's error and the last log lines.
3. ``deploy_checkpoint`` (:class:`DeployTrainingCheckpointOperator`, deferrable) waits until the job's
   checkpoints are synced, picks the latest, renders an Engine-Builder ``config.yaml`` whose
   ``checkpoint_repository`` points at it (``source: BASETEN_TRAINING``), uploads it as a new deployment of
   the connection's model (or of the model named by Variable ``baseten_deploy_model_name``, created on the
   first run), and waits until that deployment is ACTIVE. Durable: a retry reconnects to its deployment, never makes a second one.
4. ``smoke_test`` sends a few prompts straight to the *new deployment*; ``judge_quality`` branches on the
   share of good answers: on to the evaluation, or ``reject_candidate`` (production untouched).
5. ``evaluate_candidate`` (:class:`EvaluateDeploymentOperator`) sends one eval set to the new deployment and
   to what production serves now, and reports both side by side (a metric, error rate, latency p50/p95,
   estimated cost per 1,000 requests). Its gate fails the run (production untouched) when the candidate is
   worse; its Markdown report is the body of the approval below.
6. ``approval_gate`` then ``approve_promotion``: Airflow's human-in-the-loop :class:`ApprovalOperator`
   (standard provider, Airflow 3.1+). Approve in the UI ("Required actions") or through the REST API
   (``PATCH .../taskInstances/approve_promotion/-1/hitlDetails`` with ``{"chosen_options": ["Approve"]}``).
   Nobody answers within ``BASETEN_EXAMPLE_APPROVAL_MINUTES``: Reject. Reject skips the promotion. Set
   Variable ``baseten_skip_approval`` to ``true`` for unattended runs (the gate then goes to
   ``skip_approval`` and on to the promotion).
7. ``promote_candidate`` (:class:`PromoteDeploymentOperator`, deferrable) promotes the new deployment to
   the model's production, then ``set_autoscaling`` (:class:`UpdateAutoscalingOperator`) sizes it.

Configure it
------------
* Connection ``baseten_default`` (type Baseten): the API key. The deploy step needs
  ``pip install 'airflow-provider-baseten[deploy]'`` (botocore, for the S3 upload).
* Variables (or ``AIRFLOW_VAR_<NAME>`` environment variables):

  ``baseten_training_project``
      The name of the training project to run jobs in; created if missing. Default ``airflow-fine-tune``.
  ``baseten_training_project_id``
      Use this project id instead of looking the name up.
  ``baseten_recreate_training_job_id``
      Recreate this job instead of creating one from the body below. Default: create.
  ``baseten_deploy_model_name``
      Deploy to the model of this name (created on the first run) instead of the connection's model. Through
      LowCodeAPI keep the connection's model: the gateway routes inference by its token to that model.
  ``baseten_min_quality``
      The share of smoke prompts that must be answered (0-1). Default ``1.0``.
  ``baseten_skip_approval``
      ``true``: promote without asking (unattended runs). Default ``false``.
* ``BASETEN_EXAMPLE_POLL_SECONDS`` (environment): seconds between status checks (default 30).
* ``BASETEN_EXAMPLE_APPROVAL_MINUTES`` (environment): how long the approval waits before it rejects
  (default 1440, a day; read when the DAG file is parsed, like the poll interval).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Variable, task

from airflow_provider_baseten.loss import StopOnDivergence
from airflow_provider_baseten.operators.deploy import DeployTrainingCheckpointOperator
from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator, UpdateAutoscalingOperator
from airflow_provider_baseten.operators.evaluation import EvaluateDeploymentOperator
from airflow_provider_baseten.operators.inference import PredictOperator
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator, RecreateTrainingJobOperator
from airflow_provider_baseten.sensors.training import TrainingJobSensor

POLL_SECONDS = float(os.environ.get("BASETEN_EXAMPLE_POLL_SECONDS", "30"))
PROJECT = "{{ ti.xcom_pull(task_ids='training_project') }}"
JOB_ID = (
    "{{ ti.xcom_pull(task_ids='create_training_job', key='training_job_id')"
    " or ti.xcom_pull(task_ids='recreate_training_job', key='training_job_id') }}"
)
MODEL_ID = "{{ ti.xcom_pull(task_ids='deploy_checkpoint', key='model_id') }}"
DEPLOYMENT_ID = "{{ ti.xcom_pull(task_ids='deploy_checkpoint') }}"
APPROVAL_MINUTES = int(os.environ.get("BASETEN_EXAMPLE_APPROVAL_MINUTES", "1440"))  # no answer by then: Reject
SMOKE_PROMPTS = [
    {"text": "Summarise: Airflow schedules the work, Baseten serves the model."},
    {"text": "Translate to French: the model is ready."},
    {"text": "Answer yes or no: is the sky blue?"},
]
#: The eval set: each input with the word a good answer contains (a JSONL or Parquet path works too).
EVAL_SET = [
    {"text": "Name the scheduler that runs this pipeline: Airflow.", "expected": "airflow"},
    {"text": "Which platform serves the model? Baseten.", "expected": "baseten"},
    {"text": "What does a checkpoint hold? The weights.", "expected": "weights"},
    {"text": "Which environment takes the traffic? Production.", "expected": "production"},
    {"text": "Is the candidate promoted before approval? No.", "expected": "no"},
    {"text": "What does the gate compare? Metrics.", "expected": "metrics"},
    {"text": "What is p95? A latency percentile.", "expected": "percentile"},
    {"text": "What unit are prices in? USD per minute.", "expected": "usd"},
]


def keyword_recall(outputs: list, expected: list | None) -> float:
    """Replace with your metric: the share of answers that contain the expected word (a failed request: 0)."""
    import json

    hits = sum(1 for out, word in zip(outputs, expected or [], strict=True) if out and word in json.dumps(out).lower())
    return hits / len(outputs)


with DAG(
    dag_id="baseten_train_then_promote",
    description="Fine-tune, deploy the checkpoint, smoke-test it, ask a human, promote",
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

    # [START howto_operator_create_training_job]
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
    # [END howto_operator_create_training_job]
    # [START howto_operator_recreate_training_job]
    recreate = RecreateTrainingJobOperator(
        task_id="recreate_training_job",
        training_project_id=PROJECT,
        training_job_id="{{ var.value.get('baseten_recreate_training_job_id', '') }}",
        wait_for_completion=False,
    )
    # [END howto_operator_recreate_training_job]

    # [START howto_sensor_training_job]
    wait_for_training = TrainingJobSensor(
        task_id="wait_for_training",
        training_project_id=PROJECT,
        training_job_id=JOB_ID,
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=12 * 3600,
        trigger_rule="none_failed_min_one_success",  # one of the two branches ran
        # Fail at once on a nan loss or one that stays over 3x its best for 50 points (XCom baseten_loss).
        stop_on=["nan", StopOnDivergence(factor=3.0, patience=50)],
    )
    # [END howto_sensor_training_job]

    # [START howto_operator_deploy_training_checkpoint]
    deploy_checkpoint = DeployTrainingCheckpointOperator(
        task_id="deploy_checkpoint",
        training_project_id=PROJECT,
        training_job_id=JOB_ID,
        model_name="{{ var.value.get('baseten_deploy_model_name', '') }}",  # empty: the connection's model
        checkpoint_id="latest",
        route="engine_builder",  # or "vllm"; config_overrides={"resources": {"accelerator": "H100:2"}}
        labels={"airflow_dag": "baseten_train_then_promote", "training_job": JOB_ID},
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=2 * 3600,
    )
    # [END howto_operator_deploy_training_checkpoint]

    # [START howto_operator_predict_deployment]
    smoke_test = PredictOperator(
        task_id="smoke_test",
        model_inputs=SMOKE_PROMPTS,
        model_id=MODEL_ID,
        deployment_id=DEPLOYMENT_ID,  # straight to the new deployment, not to what production serves
        on_error="record",
        max_error_rate=1.0,  # failed prompts are judged below, not here
        max_concurrency=4,
    )
    # [END howto_operator_predict_deployment]

    @task.branch
    def judge_quality(outputs: list) -> str:
        """Replace with your evaluation. Here: the share of prompts answered without an error."""
        good = sum(1 for out in outputs if out and not (isinstance(out, dict) and "error" in out))
        quality = good / len(outputs)
        threshold = float(Variable.get("baseten_min_quality", default="1.0"))
        print(f"Smoke test: {good}/{len(outputs)} good answers (quality {quality:.2f}, threshold {threshold:.2f})")
        return "evaluate_candidate" if quality >= threshold else "reject_candidate"

    # [START howto_operator_evaluate_deployment]
    evaluate = EvaluateDeploymentOperator(
        task_id="evaluate_candidate",
        deployment_id=DEPLOYMENT_ID,
        model_id=MODEL_ID,
        environment="production",  # the baseline: what production serves now
        eval_inputs=EVAL_SET,
        expected_field="expected",
        metrics={"keyword_recall": keyword_recall},  # or an import path: "my_pkg.metrics.keyword_recall"
        gate=[
            ("keyword_recall", ">=", "current"),  # no worse than production
            ("error_rate", "<=", 0.01),
            ("latency_p95_ms", "<=", 2000),  # or relative: ("latency_p95_ms", "<=", "1.2 x current")
        ],
        max_concurrency=4,
    )
    # [END howto_operator_evaluate_deployment]

    @task.branch
    def approval_gate() -> str:
        """Ask a human, unless Variable ``baseten_skip_approval`` says this run is unattended."""
        if Variable.get("baseten_skip_approval", default="false").strip().lower() in ("1", "true", "yes"):
            print("baseten_skip_approval is set: promoting without asking.")
            return "skip_approval"
        return "approve_promotion"

    # The gate's other branch: the promotion must not be the gate's direct downstream, or choosing the
    # approval would skip it.
    skip_approval = EmptyOperator(task_id="skip_approval")

    # [START howto_approval_gate]
    approve = ApprovalOperator(
        task_id="approve_promotion",
        subject="Promote the fine-tuned deployment to production?",
        body=(
            "Deployment **" + DEPLOYMENT_ID + "** of model **" + MODEL_ID + "** passed the smoke test and "
            "the gate.\n\n"
            # What the training run looked like and cost (XComs of the training wait; n/a when absent).
            "{% set loss = ti.xcom_pull(task_ids='wait_for_training', key='baseten_loss') or {} %}"
            "{% set cost = ti.xcom_pull(task_ids='wait_for_training', key='baseten_cost') or {} %}"
            "Training: loss {{ loss.get('first', 'n/a') }} to best {{ loss.get('best', 'n/a') }} at step "
            "{{ loss.get('best_step', 'n/a') }} ({{ loss.get('steps', 'n/a') }} loss points); cost "
            "{{ ('$%.2f' % cost['usd']) if cost.get('usd') is not none else 'n/a' }} "
            "({{ cost.get('source', 'not reported') }}).\n\n"
            "{{ ti.xcom_pull(task_ids='evaluate_candidate', key='baseten_evaluation')['markdown'] }}\n\n"
            "Approve to promote it to production; Reject (or no answer in time) keeps production as it is."
        ),
        defaults="Reject",  # what a timeout chooses
        response_timeout=timedelta(minutes=APPROVAL_MINUTES),
    )
    # [END howto_approval_gate]

    # [START howto_operator_promote_deployment]
    promote = PromoteDeploymentOperator(
        task_id="promote_candidate",
        deployment_id=DEPLOYMENT_ID,
        model_id=MODEL_ID,
        environment="production",
        scale_down_previous=True,  # the old production deployment scales down once the new one serves
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=3600,
        trigger_rule="none_failed_min_one_success",  # approved, or the gate skipped the approval
    )
    # [END howto_operator_promote_deployment]

    # [START howto_operator_update_autoscaling]
    set_autoscaling = UpdateAutoscalingOperator(
        task_id="set_autoscaling",
        model_id=MODEL_ID,
        environment="production",
        autoscaling_settings={"min_replica": 1, "max_replica": 4, "concurrency_target": 8, "scale_down_delay": 600},
    )
    # [END howto_operator_update_autoscaling]

    @task
    def reject_candidate(deployment_id: str) -> None:
        """Production keeps serving what it served; the new deployment stays for a human to look at."""
        print(f"Deployment {deployment_id} did not pass the smoke test; production is unchanged.")

    branch = choose_training()
    training_project() >> branch >> [create, recreate] >> wait_for_training >> deploy_checkpoint >> smoke_test
    judge = judge_quality(smoke_test.output)
    gate = approval_gate()
    judge >> evaluate >> gate >> [approve, skip_approval] >> promote >> set_autoscaling
    judge >> reject_candidate(DEPLOYMENT_ID)
