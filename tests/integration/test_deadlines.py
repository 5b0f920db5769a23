"""Deadlines that hold: the trigger (or the inline wait) owns one absolute deadline, and at it undoes only
what the task itself started, unless a retry is left to reconnect to it.

Everything is counted on the emulator (its request counters and object states), never in the client. The
real-Airflow versions (scheduler, triggerer, a SIGKILLed triggerer) are in tests/e2e/test_deadlines.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten._tasks import deadline, defer_backstop, retry_left
from airflow_provider_baseten.exceptions import BasetenTimeoutError
from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
from airflow_provider_baseten.sensors.deployment import DeploymentStatusSensor
from airflow_provider_baseten.sensors.inference import AsyncPredictSensor
from airflow_provider_baseten.sensors.training import TrainingJobSensor
from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger
from tests.dag_support import StateStore, run_dag, task_states
from tests.integration import test_deployment_operators as shared

conn = shared.conn  # the emulator as baseten_default

START = datetime(2026, 1, 1)
PROJECT = "proj1234"
IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}
POLL = 0.2


class TI:
    """A task instance as the operators read it: start, try number, max tries, XComs."""

    def __init__(self, try_number: int = 1, max_tries: int = 0) -> None:
        self.start_date = datetime.now(timezone.utc)
        self.try_number = try_number
        self.max_tries = max_tries
        self.xcoms: dict[str, Any] = {}
        self.stats_tags: dict[str, str] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def ctx(ti: TI | None = None, **extra: Any) -> dict[str, Any]:
    return {"ti": ti or TI(), **extra}


def stops(emu: Any) -> int:
    return emu.counters()["requests"].get("stop_training_job", 0)


def job_status(emu: Any, job_id: str) -> str:
    return str(emu.hook().get_training_job(PROJECT, job_id).current_status)


def running_job(emu: Any, name: str = "foreign") -> str:
    """A job that stays TRAINING_JOB_RUNNING (the clock is frozen once it runs)."""
    emu.set_time_scale(0)
    job = emu.hook().create_training_job(PROJECT, {"image": IMAGE, "name": name})
    emu.advance(4.5)  # pending 1 + created 1 + deploying 2: running
    assert job_status(emu, job.id) == "TRAINING_JOB_RUNNING"
    return str(job.id)


def train(**kwargs: Any) -> CreateTrainingJobOperator:
    return CreateTrainingJobOperator(
        task_id="train", training_project_id=PROJECT, image=IMAGE, poke_interval=POLL, **kwargs
    )


# -- the deadline itself ----------------------------------------------------------------------------------
def test_deadline_is_the_earlier_of_timeout_and_execution_timeout() -> None:
    ti = TI()
    start = ti.start_date.timestamp()
    assert deadline(ctx(ti), None, None) is None
    assert deadline(ctx(ti), 30, None) == pytest.approx(start + 30)
    # execution_timeout fires a little early, so the undo runs before Airflow's own alarm (inline waits).
    assert deadline(ctx(ti), None, timedelta(seconds=20)) == pytest.approx(start + 18)
    assert deadline(ctx(ti), 10, timedelta(seconds=20)) == pytest.approx(start + 10)
    assert deadline(ctx(ti), 600, timedelta(hours=1)) == pytest.approx(start + 600)
    assert deadline(ctx(ti), None, timedelta(hours=1)) == pytest.approx(start + 3600 - 5)


def test_the_framework_backstop_is_far_past_the_trigger_deadline() -> None:
    assert defer_backstop(None) is None
    end = time.time() + 20
    backstop = defer_backstop(end)
    assert backstop is not None and backstop.total_seconds() >= 20 + 60  # never first (apache/airflow#61467)


def test_retry_left_reads_try_number_and_max_tries() -> None:
    assert retry_left(ctx(TI(try_number=1, max_tries=1)), 1)
    assert not retry_left(ctx(TI(try_number=2, max_tries=1)), 1)
    assert not retry_left(ctx(TI(try_number=1, max_tries=0)), 0)
    assert retry_left({"ti": object()}, 2) and not retry_left({"ti": object()}, 0)  # no try info: retries decide


def test_a_trigger_resumed_after_its_deadline_checks_once_then_times_out(conn: Any) -> None:
    """A triggerer restart after the deadline: one status read, one stop, the timeout event at once."""
    job = running_job(conn, "late")
    before = conn.counters()["requests"].get("get_training_job", 0)
    trigger = TrainingJobTrigger(
        conn_id="baseten_default",
        training_project_id=PROJECT,
        training_job_id=job,
        poll_interval=60,
        end_time=time.time() - 5,
        cancel_on_timeout=True,
    )
    t0 = time.monotonic()
    event = asyncio.run(trigger.wait())
    assert time.monotonic() - t0 < 5
    assert event["status"] == "timeout" and event["undone"] is True, event
    assert conn.counters()["requests"]["get_training_job"] - before == 1
    assert stops(conn) == 1 and job_status(conn, job) == "TRAINING_JOB_STOPPED"
    assert TrainingJobTrigger(**trigger.serialize()[1]).cancel_on_timeout is True  # survives serialization


def test_a_triggerer_killed_after_the_stop_does_not_stop_twice(conn: Any) -> None:
    """SIGKILL between the undo and the event: the trigger starts again past its deadline, finds the job
    STOPPED (its own undo), and fails the task without a second stop."""
    job = running_job(conn, "stopped-then-killed")
    conn.hook().stop_training_job(PROJECT, job)  # what the first run of the trigger did before dying
    trigger = TrainingJobTrigger(
        conn_id="baseten_default",
        training_project_id=PROJECT,
        training_job_id=job,
        end_time=time.time() - 1,
        cancel_on_timeout=True,
        log_tail=0,
    )
    event = asyncio.run(trigger.wait())
    assert event["status"] == "failed" and event["job_status"] == "TRAINING_JOB_STOPPED", event
    assert stops(conn) == 1


# -- training: no retry left -> stopped once --------------------------------------------------------------
@pytest.mark.parametrize("limit", ["timeout", "execution_timeout"])
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "inline"])
def test_training_timeout_stops_the_task_job_once(conn: Any, deferrable: bool, limit: str) -> None:
    conn.set_time_scale(0)  # the job never finishes on its own
    # execution_timeout 3 s: its deadline is 10 % early, 0.3 s for the undo (one local stop call) before Airflow's
    # alarm (at 2 s, 0.2 s was tight enough that the alarm could land during the stop, and on_kill stop again).
    kwargs: dict[str, Any] = {"timeout": 1.5} if limit == "timeout" else {"execution_timeout": timedelta(seconds=3)}
    with DAG(f"t_deadline_{limit}_{deferrable}", schedule=None, start_date=START) as dag:
        train(deferrable=deferrable, retries=0, **kwargs)
    run = run_dag(dag)
    assert task_states(run) == {"train": "failed"}
    ti = run.get_task_instance("train")
    job_id = ti.xcom_pull(task_ids="train", key="training_job_id")
    elapsed = (ti.end_date - ti.start_date).total_seconds()
    limit_s = 1.5 if limit == "timeout" else 3 - 0.3  # execution_timeout fires 10% (at most 5 s) early
    # Not before the deadline; after it, one poll plus the task's exit. dag.test's first task start-up counts
    # from start_date too, and took 18 s on a loaded 2-core machine, so the upper bound only says "it stopped"
    # (the job never finishes on its own); the precise timing is measured in the real-Airflow test.
    assert limit_s <= elapsed < limit_s + POLL + 45, elapsed
    assert stops(conn) == 1  # counted by the emulator: exactly one stop request
    assert job_status(conn, job_id) == "TRAINING_JOB_STOPPED"
    assert conn.counters()["submissions"]["training_job"] == 1


def test_training_timeout_with_a_retry_left_keeps_the_job_for_the_retry(conn: Any) -> None:
    pytest.importorskip("airflow.sdk.bases.resumablejobmixin")  # a retry reconnects: Airflow 3.3+
    conn.set_time_scale(0)
    store = StateStore()
    first = ctx(TI(try_number=1, max_tries=1), task_state_store=store)
    with pytest.raises(BasetenTimeoutError):
        train(timeout=0.5, retries=1).execute(first)
    job_id = first["ti"].xcoms["training_job_id"]
    assert stops(conn) == 0 and job_status(conn, job_id) != "TRAINING_JOB_STOPPED"  # kept for the retry

    retry = ctx(TI(try_number=2, max_tries=1), task_state_store=store)
    with pytest.raises(BasetenTimeoutError):
        train(timeout=0.5, retries=1).execute(retry)  # reconnects, and is the last try: stops it
    assert retry["ti"].xcoms["training_job_id"] == job_id
    assert stops(conn) == 1 and job_status(conn, job_id) == "TRAINING_JOB_STOPPED"
    assert conn.counters()["submissions"]["training_job"] == 1  # one job in all


def test_without_a_durable_retry_the_job_is_stopped_even_with_retries_left(conn: Any) -> None:
    """``durable=False`` (or Airflow < 3.3): a retry would start a second job, so keeping this one would leak it."""
    conn.set_time_scale(0)
    op = train(timeout=0.5, retries=3)
    op.durable = False
    context = ctx(TI(try_number=1, max_tries=3))
    with pytest.raises(BasetenTimeoutError):
        op.execute(context)
    assert stops(conn) == 1
    assert job_status(conn, context["ti"].xcoms["training_job_id"]) == "TRAINING_JOB_STOPPED"


def test_cancel_on_timeout_false_leaves_the_job_running(conn: Any) -> None:
    conn.set_time_scale(0)
    context = ctx()
    with pytest.raises(BasetenTimeoutError):
        train(timeout=0.5, cancel_on_timeout=False).execute(context)
    assert stops(conn) == 0
    assert job_status(conn, context["ti"].xcoms["training_job_id"]) == "TRAINING_JOB_PENDING"


# -- sensors: never touch what they watch ----------------------------------------------------------------
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "poke"])
def test_sensor_on_a_foreign_job_times_out_and_leaves_it_running(conn: Any, deferrable: bool) -> None:
    job = running_job(conn)
    with DAG(f"t_deadline_sensor_{deferrable}", schedule=None, start_date=START) as dag:
        TrainingJobSensor(
            task_id="sense",
            training_project_id=PROJECT,
            training_job_id=job,
            deferrable=deferrable,
            poke_interval=POLL,
            timeout=1.0,
        )
    run = run_dag(dag)
    assert task_states(run) == {"sense": "failed"}
    assert stops(conn) == 0 and job_status(conn, job) == "TRAINING_JOB_RUNNING"


def test_a_finished_job_does_not_defer(conn: Any) -> None:
    """status_check_before_defer: the sensor returns at once instead of raising TaskDeferred."""
    job = conn.hook().create_training_job(PROJECT, {"image": IMAGE})
    conn.advance(60)
    sensor = TrainingJobSensor(task_id="s", training_project_id=PROJECT, training_job_id=job.id, deferrable=True)
    assert sensor.execute(ctx()) == "TRAINING_JOB_COMPLETED"


def test_finished_requests_do_not_defer(conn: Any) -> None:
    ids = [conn.hook().async_predict({"i": i}).request_id for i in range(2)]
    conn.advance(60)
    sensor = AsyncPredictSensor(task_id="s", request_ids=ids, deferrable=True)
    assert sensor.execute(ctx()) == dict.fromkeys(ids, "SUCCEEDED")


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "poke"])
def test_waking_sensor_wakes_once_across_the_check_before_deferring(conn: Any, deferrable: bool) -> None:
    """The status check before deferring may send the wake; the deferred trigger does not send it again."""
    conn.set_time_scale(1)
    with DAG(f"t_deadline_wake_{deferrable}", schedule=None, start_date=START) as dag:
        DeploymentStatusSensor(
            task_id="sense", model_id="sleepy12", wake=True, deferrable=deferrable, poke_interval=POLL, timeout=60
        )
    run = run_dag(dag)
    assert task_states(run) == {"sense": "success"}
    wakes = {k: v for k, v in conn.counters()["requests"].items() if k.endswith("_wake")}
    assert sum(wakes.values()) == 1, wakes


# -- async requests and promotions --------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "inline"])
def test_async_timeout_cancels_only_this_task_queued_requests(conn: Any, deferrable: bool) -> None:
    conn.set_time_scale(0)  # everything stays QUEUED
    foreign = conn.hook().async_predict({"who": "someone else"}).request_id
    with DAG(f"t_deadline_async_{deferrable}", schedule=None, start_date=START) as dag:
        AsyncPredictOperator(
            task_id="submit",
            model_inputs=[{"i": i} for i in range(3)],
            wait_for_completion=True,
            deferrable=deferrable,
            poke_interval=POLL,
            timeout=1.5,
            retries=0,
        )
    run = run_dag(dag)
    assert task_states(run) == {"submit": "failed"}
    own = run.get_task_instance("submit").xcom_pull(task_ids="submit", key="request_ids")
    hook = conn.hook()
    assert [hook.get_async_request(r).status for r in own] == ["CANCELED"] * 3
    assert hook.get_async_request(foreign).status == "QUEUED"
    assert conn.counters()["cancellations"]["async_request"] == 3


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "inline"])
def test_promotion_timeout_cancels_the_promotion_this_task_started(conn: Any, deferrable: bool) -> None:
    conn.set_time_scale(0)  # the promotion stays RELEASING
    with DAG(f"t_deadline_promote_{deferrable}", schedule=None, start_date=START) as dag:
        PromoteDeploymentOperator(
            task_id="promote",
            deployment_id="dep2devl",
            environment="staging",
            deferrable=deferrable,
            poke_interval=POLL,
            timeout=1.5,
        )
    run = run_dag(dag)
    assert task_states(run) == {"promote": "failed"}
    assert conn.counters()["requests"].get("cancel_promotion", 0) == 1
    staging = conn.hook().get_environment("staging")
    assert staging.current_deployment.id == "dep3stag"  # what served before still serves


def test_waiting_on_a_foreign_promotion_never_cancels_it(conn: Any) -> None:
    conn.set_time_scale(0)
    conn.hook().promote_deployment("dep2devl", environment="staging")  # someone else's
    op = PromoteDeploymentOperator(
        task_id="promote", deployment_id="dep2devl", environment="staging", poke_interval=POLL, timeout=0.5
    )
    with pytest.raises(BasetenTimeoutError):
        op.execute(ctx())
    assert conn.counters()["requests"].get("cancel_promotion", 0) == 0
    promo = conn.hook().get_environment("staging").in_progress_promotion
    assert promo is not None and promo.status == "RELEASING"


# -- found by a hostile review --------------------------------------------------------------------------------
def test_timeout_zero_is_a_deadline_not_none() -> None:
    ti = TI()
    assert deadline(ctx(ti), 0, None) == pytest.approx(ti.start_date.timestamp())


def test_a_deferred_sensor_timeout_is_a_sensor_timeout_and_soft_fail_skips(conn: Any) -> None:
    """Like a poking sensor: AirflowSensorTimeout (not retried), and soft_fail turns it into a skip."""
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException

    job = running_job(conn)
    timeout = {"status": "timeout", "message": "waited too long", "training_job_id": job}

    def sensor(**kw: Any) -> TrainingJobSensor:
        return TrainingJobSensor(task_id="s", training_project_id=PROJECT, training_job_id=job, deferrable=True, **kw)

    with pytest.raises(AirflowSensorTimeout):
        sensor().resume_execution("execute_complete", {"event": timeout}, ctx())
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": timeout}, ctx())
    assert stops(conn) == 0


def test_a_cancel_whose_answer_is_lost_still_counts_as_undone(conn: Any) -> None:
    """The cancel worked but its answer was lost; the retried cancel finds nothing left: that is an undo."""
    from airflow_provider_baseten.emulator.config import FaultRule
    from airflow_provider_baseten.triggers.baseten import PromotionTrigger

    conn.set_time_scale(0)
    conn.hook().promote_deployment("dep2devl", environment="staging")
    conn.set_faults([FaultRule("503", endpoints=["cancel_promotion"], times=1, after=True)])
    trigger = PromotionTrigger(
        conn_id="baseten_default",
        model_id=conn.model_id,
        environment="staging",
        deployment_id="dep2devl",
        poll_interval=POLL,
        end_time=time.time() - 1,
        cancel_on_kill=True,
        cancel_on_timeout=True,
    )
    event = asyncio.run(trigger.wait())
    assert event["status"] == "timeout" and event.get("undone") is True, event
    staging = conn.hook().get_environment("staging")
    assert staging.in_progress_promotion is None or staging.in_progress_promotion.status == "CANCELED"
