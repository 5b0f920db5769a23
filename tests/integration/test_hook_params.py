"""Hook settings reachable from a DAG (issue 23): ``hook_params={"timeouts": {...}, "retry": {...}}`` on every
operator and sensor, the same keys in the connection extra, carried into triggers as JSON. Precedence, key by
key: ``hook_params`` > the connection extra > the defaults (1,260 s predict read, 900 s retry budget).

What a request did is counted on the emulator (its fault and request counters), not in the client.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.exceptions import (
    BasetenConfigurationError,
    BasetenTimeoutError,
    BasetenValidationError,
)
from airflow_provider_baseten.hooks.baseten import BasetenHook
from airflow_provider_baseten.operators.inference import AsyncPredictOperator, PredictOperator
from airflow_provider_baseten.sensors.deployment import DeploymentStatusSensor
from airflow_provider_baseten.sensors.inference import AsyncPredictSensor
from airflow_provider_baseten.sensors.training import TrainingJobSensor
from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger, TrainingJobTrigger
from tests.dag_support import run_dag, task_states
from tests.integration import test_deployment_operators as shared
from tests.integration.test_deadlines import ctx

conn = shared.conn  # the emulator as baseten_default
START = datetime(2026, 1, 1)
#: A short read and no retry: a slow answer fails the task at once.
FAIL_FAST = {"timeouts": {"predict_read": 0.5, "management_read": 0.5}, "retry": {"max_attempts": 1}}


def slow(emu: Any, endpoint: str, delay: float) -> None:
    """Every answer of ``endpoint`` comes ``delay`` seconds late (the emulator counts each as a ``slow`` fault)."""
    emu.set_faults([FaultRule("slow", delay=delay, endpoints=[endpoint])])


def slow_answers(emu: Any) -> int:
    return int(emu.counters()["faults"].get("slow", 0))


def with_extra(emu: Any, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    """``baseten_default`` on the emulator, with more keys in its extra."""
    connection = emu.connection()
    connection["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_BASETEN_DEFAULT", json.dumps(connection))


# -- from a DAG ------------------------------------------------------------------------------------------------
def test_hook_params_short_read_fails_a_slow_predict_fast(conn: Any, failures: Any) -> None:
    """Before: every DAG got a 1,260 s predict read and 6 attempts; ``hook_params`` was refused. Now the
    task's read gives up at 0.5 s, before the 3 s answer comes, and is not retried."""
    slow(conn, "production_predict", delay=3.0)
    failed, keep = failures
    with DAG("t_hook_params_dag", schedule=None, start_date=START) as dag:
        PredictOperator(task_id="predict", model_input={"x": 1}, hook_params=FAIL_FAST, on_failure_callback=keep)
    run = run_dag(dag)
    assert task_states(run) == {"predict": "failed"}
    assert isinstance(failed["predict"], BasetenTimeoutError) and "ReadTimeout" in str(failed["predict"])
    assert slow_answers(conn) == 1  # one attempt reached the server: max_attempts=1


def test_connection_extra_sets_them_and_hook_params_win(
    conn: Any, monkeypatch: pytest.MonkeyPatch, failures: Any
) -> None:
    """The connection's extra gives a short read to every task on it; a task's ``hook_params`` overrides it
    key by key (its predict_read only; max_attempts=1 still comes from the extra)."""
    with_extra(conn, monkeypatch, timeouts={"predict_read": 0.3}, retry={"max_attempts": 1})
    slow(conn, "production_predict", delay=1.0)
    failed, keep = failures
    with DAG("t_hook_params_extra", schedule=None, start_date=START) as dag:
        PredictOperator(task_id="from_extra", model_input={"x": 1}, on_failure_callback=keep)
        PredictOperator(task_id="overridden", model_input={"x": 2}, hook_params={"timeouts": {"predict_read": 30}})
    run = run_dag(dag)
    assert task_states(run) == {"from_extra": "failed", "overridden": "success"}
    assert "ReadTimeout" in str(failed["from_extra"])  # from_extra gave up before the 1 s answer came
    assert slow_answers(conn) == 2  # one attempt each
    settings = BasetenHook("baseten_default", timeouts={"connect": 3}).settings
    assert (settings.timeouts.connect, settings.timeouts.predict_read, settings.timeouts.management_read) == (
        3.0,
        0.3,
        60.0,  # neither gives it: the default
    )
    assert settings.retry.max_attempts == 1 and settings.retry.total_timeout == 900.0


# -- carried into triggers -------------------------------------------------------------------------------------
def test_a_trigger_round_trip_keeps_them_and_the_deferred_wait_uses_them(conn: Any) -> None:
    op = AsyncPredictOperator(task_id="a", model_input={"x": 1}, hook_params=FAIL_FAST)
    path, kwargs = op._trigger(["req00001"], context=ctx()).serialize()
    assert path == "airflow_provider_baseten.triggers.baseten.AsyncPredictTrigger"
    again = AsyncPredictTrigger(**json.loads(json.dumps(kwargs, allow_nan=False)))  # as the triggerer gets them
    assert again.hook_params == FAIL_FAST
    # The rebuilt trigger's status read gives up at 0.5 s (not 60 s), once (not 6 times).
    slow(conn, "get_async_request", delay=3.0)
    t0 = time.monotonic()
    event = asyncio.run(again.wait())
    assert time.monotonic() - t0 < 2.5
    assert event["status"] == "error" and "ReadTimeout" in event["message"], event
    assert slow_answers(conn) == 1


def test_a_deferred_sensor_in_a_dag_waits_with_them(conn: Any, failures: Any) -> None:
    """``dag.test()`` serializes the trigger and builds it again from its kwargs, as the triggerer does: the
    trigger's status read (the second one; the first, before deferring, is answered at once) gives up at
    0.5 s and is not retried."""
    conn.set_time_scale(0)  # the request stays QUEUED
    request_id = conn.hook().async_predict({"x": 1}).request_id
    conn.set_faults([FaultRule("slow", delay=3.0, endpoints=["get_async_request"], skip=1)])
    failed, keep = failures
    with DAG("t_hook_params_deferred", schedule=None, start_date=START) as dag:
        AsyncPredictSensor(
            task_id="wait", request_ids=[request_id], deferrable=True, hook_params=FAIL_FAST, on_failure_callback=keep
        )
    run = run_dag(dag)
    assert task_states(run) == {"wait": "failed"}
    assert "ReadTimeout" in str(failed["wait"]), failed
    assert conn.counters()["requests"]["get_async_request"] >= 1 and slow_answers(conn) == 1


def test_sensors_carry_them_into_their_triggers(conn: Any) -> None:
    sensor = TrainingJobSensor(
        task_id="s", training_project_id="p1", training_job_id="j1", hook_params={"retry": {"total_timeout": 60}}
    )
    _, kwargs = sensor.make_trigger(ctx(), None).serialize()
    assert kwargs["hook_params"] == {"retry": {"total_timeout": 60.0}}
    assert TrainingJobTrigger(**kwargs).hook_params == {"retry": {"total_timeout": 60.0}}
    # Without hook_params nothing changes in what a trigger serializes.
    _, plain = (
        TrainingJobSensor(task_id="s", training_project_id="p1", training_job_id="j1")
        .make_trigger(ctx(), None)
        .serialize()
    )
    assert "hook_params" not in plain


# -- refused before any request ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hook_params", "field"),
    [
        ({"timeout": {"predict_read": 1}}, "hook_params.timeout"),
        ({"timeouts": {"predict_reed": 1}}, "hook_params.timeouts.predict_reed"),
        ({"timeouts": {"connect": 0}}, "hook_params.timeouts.connect"),
        ({"timeouts": {"connect": "10"}}, "hook_params.timeouts.connect"),
        ({"timeouts": {"predict_read": float("inf")}}, "hook_params.timeouts.predict_read"),
        ({"retry": {"max_attempts": 0}}, "hook_params.retry.max_attempts"),
        ({"retry": {"max_attempts": True}}, "hook_params.retry.max_attempts"),
        ({"retry": {"backoff_base": -1}}, "hook_params.retry.backoff_base"),
        ({"retry": 3}, "hook_params.retry"),
        (["timeouts"], "hook_params"),
    ],
)
def test_a_bad_key_or_value_is_refused_naming_it_before_any_request(conn: Any, hook_params: Any, field: str) -> None:
    builders = [
        lambda: PredictOperator(task_id="p", model_input={"x": 1}, hook_params=hook_params),
        lambda: DeploymentStatusSensor(task_id="s", hook_params=hook_params),
        lambda: AsyncPredictTrigger(conn_id="baseten_default", request_ids=["r"], hook_params=hook_params),
    ]
    for build in builders:
        with pytest.raises(BasetenValidationError) as err:
            build()
        assert err.value.field == field, (field, str(err.value))
    assert sum(conn.counters()["requests"].values()) == 0


def test_a_bad_key_in_the_connection_extra_is_a_configuration_error(conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with_extra(conn, monkeypatch, timeouts={"read": 5})
    op = PredictOperator(task_id="p", model_input={"x": 1})
    with pytest.raises(BasetenConfigurationError, match="Unknown key 'read'") as err:
        op.execute(ctx())
    assert err.value.field == "extra.timeouts.read"
    assert sum(conn.counters()["requests"].values()) == 0
