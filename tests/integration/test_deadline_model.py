"""One deadline model (issue 23): waiting operators and sensors share a finite default ``timeout`` from
``[baseten] default_timeout``, a timeout raises a :class:`BasetenTimeoutError` in both (the sensors' is also
Airflow's ``AirflowSensorTimeout``: not retried, skipped with ``soft_fail``), and sensors take their default
``poke_interval`` from ``[baseten] poll_interval``.

The config is set the way Airflow reads it, through ``AIRFLOW__BASETEN__*`` environment variables (Airflow's
``conf_vars`` helper is in its own test tree, not in the installed packages). Remote states are counted on
the emulator.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten.exceptions import BasetenTimeoutError, BasetenValidationError
from airflow_provider_baseten.operators.deployment import ActivateDeploymentOperator, DeactivateDeploymentOperator
from airflow_provider_baseten.sensors.base import BasetenSensorTimeout
from airflow_provider_baseten.sensors.deployment import DeploymentStatusSensor
from airflow_provider_baseten.sensors.training import TrainingJobSensor
from tests.dag_support import run_dag, task_states
from tests.integration import test_deployment_operators as shared
from tests.integration.test_deadlines import ctx
from tests.integration.test_operator_contract import SENSORS, WAITING

conn = shared.conn  # the emulator as baseten_default
START = datetime(2026, 1, 1)
ONE_DAY = 86400.0


@pytest.fixture
def no_baseten_config(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for option in ("DEFAULT_TIMEOUT", "POLL_INTERVAL"):
        monkeypatch.delenv(f"AIRFLOW__BASETEN__{option}", raising=False)
    return monkeypatch


ALL = {**WAITING, **SENSORS}


# -- one finite default ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", list(ALL), ids=lambda c: c.__name__)
def test_the_default_timeout_is_one_day_for_operators_and_sensors(cls: Any, no_baseten_config: Any) -> None:
    """Before: the waiting operators had ``timeout=None`` (DeactivateDeploymentOperator could wait for ever),
    the sensors Airflow's ``[sensors] default_timeout`` (7 days)."""
    assert cls(task_id="t", **ALL[cls]).timeout == ONE_DAY
    assert cls(task_id="t", timeout=None, **ALL[cls]).timeout == ONE_DAY  # None is "the default", never "no limit"
    assert cls(task_id="t", timeout=timedelta(minutes=2), **ALL[cls]).timeout == 120.0


@pytest.mark.parametrize("cls", list(ALL), ids=lambda c: c.__name__)
def test_default_timeout_config_is_the_default_and_an_argument_wins(cls: Any, no_baseten_config: Any) -> None:
    no_baseten_config.setenv("AIRFLOW__BASETEN__DEFAULT_TIMEOUT", "90")
    assert cls(task_id="t", **ALL[cls]).timeout == 90.0
    assert cls(task_id="t", timeout=5, **ALL[cls]).timeout == 5.0


@pytest.mark.parametrize("bad", [-1, float("inf"), float("nan"), "soon", True])
def test_a_bad_timeout_is_refused_when_the_dag_is_parsed(bad: Any) -> None:
    for cls in (DeactivateDeploymentOperator, DeploymentStatusSensor):
        with pytest.raises(BasetenValidationError, match="timeout") as err:
            cls(task_id="t", deployment_id="dep1", timeout=bad)
        assert err.value.field == "timeout"


def test_a_bad_default_timeout_config_is_a_clear_error(no_baseten_config: Any) -> None:
    no_baseten_config.setenv("AIRFLOW__BASETEN__DEFAULT_TIMEOUT", "0")
    with pytest.raises(ValueError, match=r"\[baseten\] default_timeout \(AIRFLOW__BASETEN__DEFAULT_TIMEOUT\)"):
        DeactivateDeploymentOperator(task_id="t", deployment_id="dep1")


def test_a_waiting_operator_without_a_timeout_stops_at_the_configured_default(
    conn: Any, no_baseten_config: Any
) -> None:
    """The DAG gives no timeout; the activation never ends (the emulator's clock is frozen, so the deployment
    stays DEPLOYING). Before: the task polled for ever. Now ``[baseten] default_timeout`` ends it with a
    BasetenTimeoutError at the deadline."""
    no_baseten_config.setenv("AIRFLOW__BASETEN__DEFAULT_TIMEOUT", "1")
    conn.hook().deactivate_deployment("dep3stag")
    conn.set_time_scale(0)
    op = ActivateDeploymentOperator(task_id="on", deployment_id="dep3stag", poke_interval=0.1)
    t0 = time.monotonic()
    with pytest.raises(BasetenTimeoutError, match="Timed out waiting"):
        op.execute(ctx())
    assert time.monotonic() - t0 < 5
    assert conn.counters()["requests"]["activate_deployment"] == 1
    assert conn.hook().get_deployment("dep3stag").status == "DEPLOYING"  # still on its way: the wait gave up


# -- what a timeout raises, and whether it is retried ----------------------------------------------------------
def test_the_sensor_timeout_is_a_baseten_timeout_and_an_airflow_sensor_timeout() -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    err = BasetenSensorTimeout("late")
    assert isinstance(err, BasetenTimeoutError) and isinstance(err, AirflowSensorTimeout)
    timeout = {"status": "timeout", "message": "waited too long", "training_job_id": "j1"}
    sensor = TrainingJobSensor(task_id="s", training_project_id="p1", training_job_id="j1", deferrable=True)
    with pytest.raises(BasetenSensorTimeout, match="waited too long"):
        sensor.resume_execution("execute_complete", {"event": timeout}, ctx())


def test_a_poking_sensor_stops_at_execution_timeout_with_the_sensor_timeout(conn: Any) -> None:
    """Poke mode honours the same deadline as the trigger: min(start + timeout, start + execution_timeout).
    Before: only ``timeout`` was checked while poking, and ``execution_timeout`` ended the task with
    Airflow's AirflowTaskTimeout (retried) instead."""
    conn.hook().deactivate_deployment("dep3stag")  # INACTIVE, not a failed state: the sensor waits
    # 3 s: the sensor's deadline is 10 % early (0.3 s before Airflow's alarm), room for a slow poke on a busy CI.
    sensor = DeploymentStatusSensor(
        task_id="s", deployment_id="dep3stag", poke_interval=0.05, execution_timeout=timedelta(seconds=3)
    )
    t0 = time.monotonic()
    with pytest.raises(BasetenSensorTimeout, match="Timed out waiting"):
        sensor.execute(ctx())
    assert time.monotonic() - t0 < 5


def test_in_a_dag_an_operator_timeout_is_retried_and_a_sensor_timeout_is_not(conn: Any) -> None:
    """The same deadline, two retry rules, as the base classes' docstrings say: the operator's
    BasetenTimeoutError is retried per ``retries``; the sensor's BasetenSensorTimeout fails at once, whether
    ``timeout`` or ``execution_timeout`` set the deadline (before: a poking sensor's ``execution_timeout`` was
    Airflow's AirflowTaskTimeout, and retried), and ``soft_fail`` skips it."""
    conn.hook().deactivate_deployment("dep3stag")
    conn.set_time_scale(0)  # activating it never ends: DEPLOYING
    retry = {"retries": 1, "retry_delay": timedelta(seconds=0), "poke_interval": 0.1}
    with DAG("t_deadline_model_retries", schedule=None, start_date=START) as dag:
        ActivateDeploymentOperator(task_id="op", deployment_id="dep3stag", timeout=0.5, **retry)
        DeploymentStatusSensor(task_id="sensor", deployment_id="dep3stag", timeout=0.5, **retry)
        # 3 s, so the 10 % early deadline is 0.3 s before Airflow's alarm (at 1 s, a 0.12 s gap lost to a slow poke).
        DeploymentStatusSensor(
            task_id="sensor_exec",
            deployment_id="dep3stag",
            execution_timeout=timedelta(seconds=3),
            **{**retry, "poke_interval": 0.05},
        )
        DeploymentStatusSensor(task_id="soft", deployment_id="dep3stag", soft_fail=True, timeout=0.5, **retry)
    run = run_dag(dag)
    assert task_states(run) == {"op": "failed", "sensor": "failed", "sensor_exec": "failed", "soft": "skipped"}
    tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
    assert tries == {"op": 2, "sensor": 1, "sensor_exec": 1, "soft": 1}, tries  # only the operator was retried
    assert conn.counters()["requests"]["activate_deployment"] == 2  # one per try of the operator


# -- poll_interval ------------------------------------------------------------------------------------------
def test_sensors_take_poll_interval_from_the_config(no_baseten_config: Any) -> None:
    """Before: the sensors' own defaults (10 s, 30 s) ignored ``[baseten] poll_interval``."""
    defaults = {cls: cls(task_id="t", **kw).poke_interval for cls, kw in SENSORS.items()}
    assert sorted(defaults.values()) == [10.0, 10.0, 30.0]  # unset: each sensor's own default
    no_baseten_config.setenv("AIRFLOW__BASETEN__POLL_INTERVAL", "2.5")
    for cls, kw in SENSORS.items():
        assert cls(task_id="t", **kw).poke_interval == 2.5, cls.__name__
        assert cls(task_id="t", poke_interval=7, **kw).poke_interval == 7, cls.__name__  # an argument wins
