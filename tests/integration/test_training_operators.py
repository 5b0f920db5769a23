"""Training operators and TrainingJobSensor in real Airflow (``dag.test()``) against the emulator."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten.exceptions import BasetenNotFoundError, BasetenRemoteStateError, BasetenValidationError
from airflow_provider_baseten.models import TrainingJob
from airflow_provider_baseten.operators.training import (
    CreateTrainingJobOperator,
    GetTrainingCheckpointsOperator,
    RecreateTrainingJobOperator,
    StopTrainingOperator,
)
from airflow_provider_baseten.sensors.training import TrainingJobSensor
from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger
from tests.dag_support import StateStore, run_dag, task_states
from tests.integration import test_deployment_operators as shared
from tests.integration.test_deployment_operators import MODES, context, messages, xcom

# The same fixtures as the deployment tests: the emulator as ``baseten_default``, and the task log.
conn = shared.conn
task_log = shared.task_log

START = datetime(2026, 1, 1)
PROJECT = "proj1234"  # seeded, with no jobs
IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}
RUNTIME = {"start_commands": ["python train.py"], "environment_variables": {"EPOCHS": "1"}}
FAILING_RUNTIME = {"start_commands": ["python train.py"], "environment_variables": {"EMULATOR_FAIL": "1"}}
COMPUTE = {"accelerator": {"accelerator": "H100", "count": 1}, "node_count": 1}
FAST = {"poke_interval": 0.02, "timeout": 60}


def created(emulator: Any) -> int:
    """Training jobs the emulator created (create and recreate)."""
    return emulator.counters()["submissions"].get("training_job", 0)


# -- lifecycle ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", MODES)
def test_job_to_completed_then_checkpoints(conn: Any, deferrable: bool) -> None:
    with DAG(f"t_train_ok_{deferrable}", schedule=None, start_date=START) as dag:
        train = CreateTrainingJobOperator(
            task_id="train",
            training_project_id=PROJECT,
            image=IMAGE,
            compute=COMPUTE,
            runtime=RUNTIME,
            name="ft-{{ ds_nodash }}",
            deferrable=deferrable,
            **FAST,
        )
        sense = TrainingJobSensor(
            task_id="sense",
            training_project_id=PROJECT,
            training_job_id="{{ ti.xcom_pull('train') }}",
            deferrable=deferrable,
            poke_interval=0.02,
            timeout=60,
        )
        ckpts = GetTrainingCheckpointsOperator(
            task_id="ckpts", training_project_id=PROJECT, training_job_id="{{ ti.xcom_pull('train') }}"
        )
        train >> sense >> ckpts
    run = run_dag(dag)
    assert task_states(run) == {"train": "success", "sense": "success", "ckpts": "success"}
    job_id = xcom(run, "train")
    assert xcom(run, "train", "training_job_id") == job_id
    assert xcom(run, "train", "baseten_training_job_url").endswith(f"/training/{PROJECT}/jobs/{job_id}")
    assert xcom(run, "sense") == "TRAINING_JOB_COMPLETED"
    checkpoints = xcom(run, "ckpts")
    assert [c["checkpoint_id"] for c in checkpoints] == ["checkpoint-2", "checkpoint-1"]  # newest first
    assert checkpoints[0]["created_at"] > checkpoints[1]["created_at"]
    assert xcom(run, "ckpts", "latest_checkpoint_id") == "checkpoint-2"
    job = conn.hook().get_training_job(PROJECT, job_id)
    assert job.current_status == "TRAINING_JOB_COMPLETED" and job.name.startswith("ft-")
    assert created(conn) == 1


@pytest.mark.parametrize("deferrable", MODES)
def test_failed_job_fails_the_task_and_logs_why(conn: Any, deferrable: bool, task_log: list[dict[str, Any]]) -> None:
    with DAG(f"t_train_fail_{deferrable}", schedule=None, start_date=START) as dag:
        CreateTrainingJobOperator(
            task_id="train",
            training_project_id=PROJECT,
            training_job={"image": IMAGE, "runtime": FAILING_RUNTIME, "name": "doomed"},
            deferrable=deferrable,
            log_tail=4,
            **FAST,
        )
    run = run_dag(dag)
    assert task_states(run) == {"train": "failed"}
    logged = messages(task_log)
    assert "error_message: Training process exited with code 1 (emulated failure)." in logged
    assert "Last 4 log line(s) of training job" in logged
    assert "TRAINING_JOB_FAILED: finished" in logged  # the job's own last log line
    assert "step 100/100" in logged
    # The job's ERROR lines, with their level and time, whatever the tail shows.
    assert "Last 2 ERROR line(s) of the remote logs" in logged
    assert "ERROR [replica-0] RuntimeError: loss became NaN at step 100" in logged


@pytest.mark.parametrize("deferrable", MODES)
def test_sensor_fails_on_failed_job_with_its_logs(conn: Any, deferrable: bool, task_log: list[dict[str, Any]]) -> None:
    job = conn.hook().create_training_job(PROJECT, {"image": IMAGE, "runtime": FAILING_RUNTIME})
    with DAG(f"t_sense_fail_{deferrable}", schedule=None, start_date=START) as dag:
        TrainingJobSensor(
            task_id="sense",
            training_project_id=PROJECT,
            training_job_id=job.id,
            deferrable=deferrable,
            poke_interval=0.02,
            timeout=60,
        )
    run = run_dag(dag)
    assert task_states(run) == {"sense": "failed"}
    logged = messages(task_log)
    assert f"Training job {job.id} error_message: Training process exited with code 1" in logged
    assert "TRAINING_JOB_FAILED: finished" in logged


@pytest.mark.parametrize("deferrable", MODES)
def test_stopped_job_fails_the_sensor_and_stopping_again_is_a_no_op(
    conn: Any, deferrable: bool, task_log: list[dict[str, Any]]
) -> None:
    # The job must still be running when the stop arrives: the clock stops once it runs (at 1x it ended 9 s after
    # creation, and a first dag.test() start-up on a loaded machine took longer than that).
    conn.set_time_scale(0)
    job = conn.hook().create_training_job(PROJECT, {"image": IMAGE})
    conn.advance(4.5)  # pending 1 + created 1 + deploying 2: running
    with DAG(f"t_stop_{deferrable}", schedule=None, start_date=START) as dag:
        stop = StopTrainingOperator(task_id="stop", training_project_id=PROJECT, training_job_id=job.id)
        sense = TrainingJobSensor(
            task_id="sense",
            training_project_id=PROJECT,
            training_job_id=job.id,
            deferrable=deferrable,
            poke_interval=0.02,
            timeout=60,
        )
        again = StopTrainingOperator(
            task_id="again", training_project_id=PROJECT, training_job_id=job.id, trigger_rule="all_done"
        )
        stop >> sense >> again
    run = run_dag(dag)
    assert task_states(run) == {"stop": "success", "sense": "failed", "again": "success"}
    assert xcom(run, "stop") == "TRAINING_JOB_STOPPED"
    assert xcom(run, "again") == "TRAINING_JOB_STOPPED"
    assert conn.counters()["cancellations"]["training_job"] == 1
    assert conn.counters()["requests"]["stop_training_job"] == 1  # the second stop sent nothing
    logged = messages(task_log)
    assert "ended TRAINING_JOB_STOPPED" in logged
    assert "has already ended (TRAINING_JOB_STOPPED); nothing to stop" in logged


def test_stopping_a_missing_job_is_a_clear_error(conn: Any) -> None:
    op = StopTrainingOperator(task_id="s", training_project_id=PROJECT, training_job_id="nosuchjob")
    with pytest.raises(BasetenNotFoundError, match="Training job nosuchjob does not exist in training project"):
        op.execute(context())


def test_on_kill_stops_only_the_job_the_task_started(conn: Any) -> None:
    conn.set_time_scale(0)
    hook = conn.hook()
    other = hook.create_training_job(PROJECT, {"image": IMAGE})
    op = CreateTrainingJobOperator(task_id="t", training_project_id=PROJECT, image=IMAGE, wait_for_completion=False)
    mine = op.execute(context())
    op.on_kill()
    assert hook.get_training_job(PROJECT, mine).current_status == "TRAINING_JOB_STOPPED"
    assert hook.get_training_job(PROJECT, other.id).current_status == "TRAINING_JOB_PENDING"
    assert conn.counters()["cancellations"]["training_job"] == 1
    # cancel_on_kill=False leaves even its own job running; a sensor never stops anything.
    keep = CreateTrainingJobOperator(
        task_id="k", training_project_id=PROJECT, image=IMAGE, wait_for_completion=False, cancel_on_kill=False
    )
    kept = keep.execute(context())
    keep.on_kill()
    TrainingJobSensor(task_id="s", training_project_id=PROJECT, training_job_id=other.id).on_kill()
    assert hook.get_training_job(PROJECT, kept).current_status == "TRAINING_JOB_PENDING"
    assert conn.counters()["cancellations"]["training_job"] == 1


def test_trigger_on_kill_stops_the_job(conn: Any) -> None:
    conn.set_time_scale(0)
    job = conn.hook().create_training_job(PROJECT, {"image": IMAGE})
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = CreateTrainingJobOperator(task_id="t", training_project_id=PROJECT, image=IMAGE, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, TrainingJobTrigger) and trigger.cancel_on_kill is True
    asyncio.run(TrainingJobTrigger(**trigger.serialize()[1]).on_kill())
    assert conn.hook().get_training_job(PROJECT, trigger.training_job_id).current_status == "TRAINING_JOB_STOPPED"
    assert conn.hook().get_training_job(PROJECT, job.id).current_status == "TRAINING_JOB_PENDING"


# -- durability -----------------------------------------------------------------------------------------
def test_retry_reconnects_to_the_running_job(conn: Any) -> None:
    pytest.importorskip("airflow.sdk.bases.resumablejobmixin")
    conn.set_time_scale(0)  # the job stays PENDING across the "crash"
    store = StateStore()

    def attempt(**kwargs: Any) -> CreateTrainingJobOperator:
        return CreateTrainingJobOperator(
            task_id="train", training_project_id=PROJECT, image=IMAGE, runtime=RUNTIME, **FAST, **kwargs
        )

    first_ctx = context(task_state_store=store)
    job_id = attempt(wait_for_completion=False).execute(first_ctx)
    assert store.data["baseten_training_job"] == {"training_project_id": PROJECT, "training_job_id": job_id}
    assert first_ctx["ti"].xcoms["training_job_id"] == job_id  # pushed before any waiting

    conn.set_time_scale(200)
    retry_ctx = context(task_state_store=store)
    assert attempt().execute(retry_ctx) == job_id  # reconnects, waits to COMPLETED
    assert retry_ctx["ti"].xcoms["baseten_training_job_url"].endswith(f"/jobs/{job_id}")
    assert conn.hook().get_training_job(PROJECT, job_id).current_status == "TRAINING_JOB_COMPLETED"

    # A retry after it completed returns it at once; a "pid/jid" string is accepted too.
    store.data["baseten_training_job"] = f"{PROJECT}/{job_id}"
    assert attempt().execute(context(task_state_store=store)) == job_id
    assert created(conn) == 1  # exactly one job in the emulator
    assert len(conn.hook().list_training_jobs(PROJECT)) == 1


def test_retry_after_a_failed_job_starts_a_new_one(conn: Any) -> None:
    pytest.importorskip("airflow.sdk.bases.resumablejobmixin")  # task_state_store: Airflow 3.3+
    store = StateStore()
    failing = {"image": IMAGE, "runtime": FAILING_RUNTIME}
    op = CreateTrainingJobOperator(task_id="t", training_project_id=PROJECT, training_job=failing, **FAST)
    with pytest.raises(BasetenRemoteStateError, match="TRAINING_JOB_FAILED"):
        op.execute(context(task_state_store=store))
    first = store.data["baseten_training_job"]["training_job_id"]
    retry = CreateTrainingJobOperator(task_id="t", training_project_id=PROJECT, image=IMAGE, **FAST)
    second = retry.execute(context(task_state_store=store))
    assert second != first and created(conn) == 2


@pytest.mark.parametrize("deferrable", MODES)
def test_recreate_waits_for_the_new_job(conn: Any, deferrable: bool) -> None:
    source = conn.hook().create_training_job(PROJECT, {"image": IMAGE, "name": "original"})
    with DAG(f"t_recreate_{deferrable}", schedule=None, start_date=START) as dag:
        RecreateTrainingJobOperator(
            task_id="again", training_project_id=PROJECT, training_job_id=source.id, deferrable=deferrable, **FAST
        )
    run = run_dag(dag)
    assert task_states(run) == {"again": "success"}
    new_id = xcom(run, "again")
    assert new_id != source.id
    assert conn.hook().get_training_job(PROJECT, new_id).current_status == "TRAINING_JOB_COMPLETED"
    assert conn.hook().get_training_job(PROJECT, new_id).name == "original"
    assert created(conn) == 2  # the source and exactly one recreation


def test_recreate_retry_reconnects(conn: Any) -> None:
    pytest.importorskip("airflow.sdk.bases.resumablejobmixin")  # task_state_store: Airflow 3.3+
    conn.set_time_scale(0)
    source = conn.hook().create_training_job(PROJECT, {"image": IMAGE})
    store = StateStore()
    kwargs = {"task_id": "r", "training_project_id": PROJECT, "training_job_id": source.id}
    first = RecreateTrainingJobOperator(wait_for_completion=False, **kwargs).execute(context(task_state_store=store))
    again = RecreateTrainingJobOperator(wait_for_completion=False, **kwargs).execute(context(task_state_store=store))
    assert first == again != source.id
    assert conn.counters()["requests"]["recreate_training_job"] == 1


# -- validation and edge cases --------------------------------------------------------------------------
def test_body_is_checked_before_anything_is_sent(conn: Any) -> None:
    with pytest.raises(ValueError, match="image"):
        CreateTrainingJobOperator(task_id="t", training_project_id=PROJECT)
    for kwargs in ({"training_job": {"name": "no image"}}, {"image": IMAGE, "compute": "8 GPUs"}):
        op = CreateTrainingJobOperator(task_id="t", training_project_id=PROJECT, **kwargs)
        with pytest.raises(BasetenValidationError):
            op.execute(context())
    assert created(conn) == 0


def test_unknown_status_is_logged_and_waited_on(task_log: list[dict[str, Any]]) -> None:
    class Hook:
        status = "TRAINING_JOB_SOMETHING_NEW"

        async def aget_training_job(self, pid: str, jid: str) -> TrainingJob:
            return TrainingJob(id=jid, current_status=self.status)

    trigger = TrainingJobTrigger(conn_id="baseten_default", training_project_id=PROJECT, training_job_id="j1")
    hook = Hook()
    assert asyncio.run(trigger.check(hook)) is None
    assert asyncio.run(trigger.check(hook)) is None  # still waiting, logged once
    assert messages(task_log).count("unknown status TRAINING_JOB_SOMETHING_NEW") == 1
    hook.status = "TRAINING_JOB_COMPLETED"
    assert asyncio.run(trigger.check(hook))["status"] == "success"


def test_sensor_times_out_on_a_job_that_does_not_finish(conn: Any) -> None:
    conn.set_time_scale(0)
    job = conn.hook().create_training_job(PROJECT, {"image": IMAGE})
    with DAG("t_sense_timeout", schedule=None, start_date=START) as dag:
        TrainingJobSensor(
            task_id="sense", training_project_id=PROJECT, training_job_id=job.id, deferrable=True, timeout=0.3
        )
    run = run_dag(dag)
    assert task_states(run) == {"sense": "failed"}


def test_checkpoints_of_a_job_without_any(conn: Any) -> None:
    conn.set_time_scale(0)
    job = conn.hook().create_training_job(PROJECT, {"image": IMAGE})
    assert (
        GetTrainingCheckpointsOperator(task_id="c", training_project_id=PROJECT, training_job_id=job.id).execute(
            context()
        )
        == []
    )
    strict = GetTrainingCheckpointsOperator(
        task_id="c", training_project_id=PROJECT, training_job_id=job.id, fail_if_empty=True
    )
    with pytest.raises(BasetenRemoteStateError, match="no checkpoints"):
        strict.execute(context())
