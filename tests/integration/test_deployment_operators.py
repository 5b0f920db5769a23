"""Deployment operators and DeploymentStatusSensor in real Airflow (``dag.test()``) against the emulator.

Waiting operators and sensors run in both modes: ``poke`` (inline polling in the worker) and ``deferrable``
(``dag.test()`` runs the trigger through the triggerer code path). The emulator's clock runs fast, so every
state machine finishes in well under a second of real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog
from airflow.sdk import DAG

from airflow_provider_baseten.exceptions import BasetenRemoteStateError, BasetenValidationError
from airflow_provider_baseten.operators.deployment import (
    ActivateDeploymentOperator,
    DeactivateDeploymentOperator,
    PromoteDeploymentOperator,
    UpdateAutoscalingOperator,
)
from airflow_provider_baseten.sensors.deployment import DeploymentStatusSensor
from airflow_provider_baseten.triggers.baseten import PromotionTrigger
from tests.dag_support import context, run_dag, task_states

START = datetime(2026, 1, 1)
MODEL = "echo1234"  # seeded: production dep1prod (ACTIVE), development dep2devl (SCALED_TO_ZERO), staging dep3stag
FAST = {"poke_interval": 0.02, "timeout": 60}
MODES = [pytest.param(False, id="poke"), pytest.param(True, id="deferrable")]


# -- helpers shared with test_training_operators --------------------------------------------------------
@pytest.fixture
def conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``baseten_default`` points at the emulator, whose clock runs 200x real time."""
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(200)
    return emulator


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """A value a task of a finished run pushed."""
    return dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id, key=key)


def requests_sent(emulator: Any) -> int:
    """How many API requests the emulator has answered (its per-endpoint counters, summed)."""
    return sum(emulator.counters()["requests"].values())


@pytest.fixture
def task_log() -> Iterator[list[dict[str, Any]]]:
    """What tasks log. Airflow 3's task loggers are structlog loggers that do not reach ``caplog``, so the
    events are captured at the structlog level (this also sees tasks run by ``dag.test()``, in process)."""
    with structlog.testing.capture_logs() as events:
        yield events


def messages(events: list[dict[str, Any]]) -> str:
    """Everything logged, as one string."""
    return "\n".join(str(e.get("event")) for e in events)


# -- promote -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", MODES)
def test_promote_development_to_production_scales_down_previous(conn: Any, deferrable: bool) -> None:
    with DAG(f"t_promote_prod_{deferrable}", schedule=None, start_date=START) as dag:
        PromoteDeploymentOperator(task_id="promote", deployment_id="development", deferrable=deferrable, **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    assert xcom(run, "promote") == "dep2devl"
    assert xcom(run, "promote", "deployment_id") == "dep2devl"
    assert xcom(run, "promote", "baseten_deployment_url").endswith(f"/models/{MODEL}/logs/dep2devl")
    hook = conn.hook()
    prod = hook.get_environment("production")
    assert prod.current_deployment.id == "dep2devl" and prod.current_deployment.status == "ACTIVE"
    assert hook.get_deployment("dep1prod").status == "SCALED_TO_ZERO"  # scale_down_previous=True (default)
    assert conn.counters()["requests"]["promote_development_deployment"] == 1


@pytest.mark.parametrize("scale_down", [True, False], ids=["scale-down", "keep-previous"])
@pytest.mark.parametrize("deferrable", MODES)
def test_promote_into_environment(conn: Any, deferrable: bool, scale_down: bool) -> None:
    new = conn.create_deployment(MODEL, name="v3")["id"]  # BUILDING -> DEPLOYING -> ACTIVE
    with DAG(f"t_promote_env_{deferrable}_{scale_down}", schedule=None, start_date=START) as dag:
        PromoteDeploymentOperator(
            task_id="promote",
            deployment_id=new,
            environment="staging",
            scale_down_previous=scale_down,
            deferrable=deferrable,
            **FAST,
        )
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    assert xcom(run, "promote") == new
    hook = conn.hook()
    staging = hook.get_environment("staging")
    assert staging.current_deployment.id == new and staging.current_deployment.status == "ACTIVE"
    assert hook.get_deployment("dep3stag").status == ("SCALED_TO_ZERO" if scale_down else "ACTIVE")
    assert hook.get_environment("production").current_deployment.id == "dep1prod"  # untouched
    assert conn.counters()["requests"]["promote_to_environment"] == 1


def test_promote_development_into_environment_resolves_its_id(conn: Any) -> None:
    op = PromoteDeploymentOperator(task_id="p", deployment_id="development", environment="staging", **FAST)
    ctx = context()
    assert op.execute(ctx) == "dep2devl"
    assert ctx["ti"].xcoms["deployment_id"] == "dep2devl"
    assert conn.hook().get_environment("staging").current_deployment.id == "dep2devl"


def test_promote_when_already_serving_does_nothing(conn: Any, task_log: list[dict[str, Any]]) -> None:
    with DAG("t_promote_noop", schedule=None, start_date=START) as dag:
        PromoteDeploymentOperator(task_id="promote", deployment_id="dep1prod", **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    assert xcom(run, "promote") == "dep1prod"
    counts = conn.counters()["requests"]
    assert not any(name.startswith("promote") for name in counts)
    assert "dep1prod already serves production" in messages(task_log)
    PromoteDeploymentOperator(task_id="p", deployment_id="dep3stag", environment="staging").execute(context())
    assert "dep3stag already serves staging" in messages(task_log)
    assert not any(name.startswith("promote") for name in conn.counters()["requests"])


def test_promote_of_a_failed_deployment_fails(conn: Any) -> None:
    bad = conn.create_deployment(MODEL, name="broken", status="BUILD_FAILED")["id"]
    with DAG("t_promote_bad", schedule=None, start_date=START) as dag:
        PromoteDeploymentOperator(task_id="promote", deployment_id=bad, **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"promote": "failed"}
    assert conn.hook().get_environment("production").current_deployment.id == "dep1prod"


def test_on_kill_cancels_only_this_tasks_promotion(conn: Any) -> None:
    conn.set_time_scale(0)  # frozen: promotions stay in progress until the clock is moved
    hook = conn.hook()

    # A promotion this task started: killed -> cancelled, and nothing is deactivated or scaled down.
    op = PromoteDeploymentOperator(task_id="p", deployment_id="development", wait_for_completion=False)
    assert op.execute(context()) == "dep2devl"
    assert hook.get_environment("production").in_progress_promotion.status == "RELEASING"
    op.on_kill()
    assert conn.counters()["cancellations"].get("promotion", 0) == 1
    assert hook.get_environment("production").in_progress_promotion.status == "CANCELED"
    assert hook.get_deployment("dep1prod").status == "ACTIVE"
    assert hook.get_environment("production").current_deployment.id == "dep1prod"

    # A promotion someone else started (same deployment): the task waits on it but never cancels it.
    hook.promote_deployment("development")
    adopter = PromoteDeploymentOperator(task_id="p2", deployment_id="development", wait_for_completion=False)
    adopter.execute(context())
    assert conn.counters()["requests"]["promote_development_deployment"] == 2  # op's + ours, none by adopter
    adopter.on_kill()
    assert conn.counters()["cancellations"].get("promotion", 0) == 1

    # Its trigger is told the same: only an owned promotion may be cancelled from the triggerer.
    from airflow.providers.common.compat.sdk import TaskDeferred

    deferring = PromoteDeploymentOperator(task_id="p3", deployment_id="development", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        deferring.execute(context())
    assert deferred.value.trigger.cancel_on_kill is False

    # With cancel_on_kill=False even the task's own promotion is left alone.
    hook.cancel_promotion("production")
    keep = PromoteDeploymentOperator(
        task_id="p4", deployment_id="development", wait_for_completion=False, cancel_on_kill=False
    )
    keep.execute(context())
    keep.on_kill()
    assert conn.counters()["cancellations"].get("promotion", 0) == 2  # only the explicit cancel above
    assert hook.get_environment("production").in_progress_promotion.status == "RELEASING"


def test_trigger_on_kill_cancels_only_its_own_promotion(conn: Any) -> None:
    conn.set_time_scale(0)
    hook = conn.hook()
    owned = PromoteDeploymentOperator(task_id="p", deployment_id="development", deferrable=True, poke_interval=0.02)
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        owned.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, PromotionTrigger) and trigger.cancel_on_kill is True
    again = PromotionTrigger(**trigger.serialize()[1])  # as the triggerer rebuilds it

    # A trigger for another deployment never cancels this promotion.
    stranger = PromotionTrigger(
        conn_id="baseten_default",
        model_id=MODEL,
        environment="production",
        deployment_id="dep3stag",
        cancel_on_kill=True,
    )
    asyncio.run(stranger.on_kill())
    assert conn.counters()["cancellations"].get("promotion", 0) == 0

    asyncio.run(again.on_kill())
    assert conn.counters()["cancellations"].get("promotion", 0) == 1
    assert hook.get_environment("production").current_deployment.id == "dep1prod"
    assert hook.get_deployment("dep1prod").status == "ACTIVE"


# -- activate / deactivate ------------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", MODES)
def test_deactivate_then_activate(conn: Any, deferrable: bool) -> None:
    with DAG(f"t_activation_{deferrable}", schedule=None, start_date=START) as dag:
        off_env = DeactivateDeploymentOperator(task_id="off_env", environment="staging", deferrable=deferrable, **FAST)
        on_dep = ActivateDeploymentOperator(task_id="on_dep", deployment_id="dep3stag", deferrable=deferrable, **FAST)
        off_dev = DeactivateDeploymentOperator(
            task_id="off_dev", environment="development", deferrable=deferrable, **FAST
        )
        on_env = ActivateDeploymentOperator(task_id="on_env", environment="production", deferrable=deferrable, **FAST)
        off_env >> on_dep >> off_dev >> on_env
    run = run_dag(dag)
    assert task_states(run) == {"off_env": "success", "on_dep": "success", "off_dev": "success", "on_env": "success"}
    assert xcom(run, "off_env") == "dep3stag" and xcom(run, "on_dep") == "dep3stag"
    assert xcom(run, "off_dev") == "dep2devl" and xcom(run, "on_env") == "dep1prod"
    hook = conn.hook()
    assert hook.get_deployment("dep3stag").status == "ACTIVE"  # went INACTIVE, then DEPLOYING -> ACTIVE
    assert hook.get_deployment("dep2devl").status == "INACTIVE"
    counts = conn.counters()["requests"]
    assert counts["deactivate_environment"] == 1 and counts["activate_deployment"] == 1
    assert counts["deactivate_development_deployment"] == 1 and counts["activate_environment"] == 1


def test_activation_refuses_both_targets_when_built() -> None:
    with pytest.raises(BasetenValidationError, match="not both"):
        DeactivateDeploymentOperator(task_id="d", deployment_id="x", environment="staging")
    with pytest.raises(BasetenValidationError, match="not both"):
        UpdateAutoscalingOperator(task_id="u", deployment_id="x", environment="staging", autoscaling_settings={})


def test_activation_without_a_target_acts_on_production(conn: Any) -> None:
    """The one target rule's default, as every operator and sensor has it (it needed a target before)."""
    with DAG("t_activation_default", schedule=None, start_date=START) as dag:
        ActivateDeploymentOperator(task_id="on", **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"on": "success"}
    assert xcom(run, "on") == "dep1prod"
    assert conn.counters()["requests"]["activate_environment"] == 1
    assert any(r["path"].endswith("/environments/production/activate") for r in conn.requests())


# -- autoscaling ----------------------------------------------------------------------------------------
def test_update_autoscaling_reports_baseten_status(conn: Any, task_log: list[dict[str, Any]]) -> None:
    with DAG("t_autoscaling", schedule=None, start_date=START, params={"max": 3}) as dag:
        first = UpdateAutoscalingOperator(
            task_id="first",
            deployment_id="dep1prod",
            autoscaling_settings={"min_replica": 1, "max_replica": "{{ params.max }}"},
        )
        same = UpdateAutoscalingOperator(
            task_id="same", deployment_id="dep1prod", autoscaling_settings={"min_replica": 1, "max_replica": 3}
        )
        env = UpdateAutoscalingOperator(
            task_id="env", environment="staging", autoscaling_settings={"scale_down_delay": 120}
        )
        first >> same >> env
    run = run_dag(dag)
    assert task_states(run) == {"first": "success", "same": "success", "env": "success"}
    assert xcom(run, "first")["status"] == "ACCEPTED"
    assert xcom(run, "same")["status"] == "UNCHANGED"
    assert xcom(run, "env")["status"] in ("ACCEPTED", "QUEUED")
    settings = conn.hook().get_deployment("dep1prod").autoscaling_settings
    assert (settings.min_replica, settings.max_replica) == (1, 3)
    assert conn.hook().get_environment("staging").autoscaling_settings.scale_down_delay == 120
    assert "UNCHANGED" in messages(task_log)
    UpdateAutoscalingOperator(
        task_id="dev", environment="development", autoscaling_settings={"max_replica": 2}
    ).execute(context())
    assert "development of model echo1234: ACCEPTED" in messages(task_log)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"min_replica": 5, "max_replica": 2}, None),
        ({"max_replica": 0}, "max_replica"),
        ({"target_utilization_percentage": 150}, "target_utilization_percentage"),
        ({"autoscaling_window": 5}, "autoscaling_window"),
        ({"replicas": 2}, "replicas"),
        ({}, "autoscaling_settings"),
    ],
    ids=["min-above-max", "max-zero", "utilization", "window", "unknown-field", "empty"],
)
def test_invalid_autoscaling_fails_before_any_request(conn: Any, settings: dict[str, Any], field: str | None) -> None:
    op = UpdateAutoscalingOperator(task_id="a", deployment_id="dep1prod", autoscaling_settings=settings)
    with pytest.raises(BasetenValidationError) as info:
        op.execute(context())
    if field:
        assert info.value.field == field
    assert requests_sent(conn) == 0


def test_invalid_autoscaling_fails_the_task_without_a_request(conn: Any) -> None:
    with DAG("t_autoscaling_bad", schedule=None, start_date=START) as dag:
        UpdateAutoscalingOperator(task_id="a", environment="staging", autoscaling_settings={"min_replica": -1})
    run = run_dag(dag)
    assert task_states(run) == {"a": "failed"}
    assert requests_sent(conn) == 0


# -- DeploymentStatusSensor -----------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", MODES)
def test_sensor_waits_for_a_new_deployment_to_be_active(conn: Any, deferrable: bool) -> None:
    new = conn.create_deployment(MODEL, name="v3")["id"]
    with DAG(f"t_sensor_ok_{deferrable}", schedule=None, start_date=START) as dag:
        DeploymentStatusSensor(
            task_id="sense", deployment_id=new, deferrable=deferrable, poke_interval=0.02, timeout=60
        )
    run = run_dag(dag)
    assert task_states(run) == {"sense": "success"}
    assert xcom(run, "sense") == "ACTIVE"
    assert xcom(run, "sense", "deployment_id") == new


def test_sensor_pokes_until_active(conn: Any) -> None:
    conn.set_time_scale(0)  # frozen: each state lasts until the clock is moved
    new = conn.create_deployment(MODEL, name="v3")["id"]
    sensor = DeploymentStatusSensor(task_id="s", deployment_id=new)
    ctx = context()
    assert sensor.poke(ctx) is False  # BUILDING
    conn.advance(3.5)
    assert sensor.poke(ctx) is False  # DEPLOYING
    conn.advance(2)
    done = sensor.poke(ctx)
    assert done.is_done and done.xcom_value == "ACTIVE"
    assert ctx["ti"].xcoms["deployment_id"] == new


@pytest.mark.parametrize("deferrable", MODES)
def test_sensor_fails_fast_on_a_failed_deployment(conn: Any, deferrable: bool) -> None:
    bad = conn.create_deployment(MODEL, name="broken", status="BUILD_FAILED")["id"]
    with DAG(f"t_sensor_bad_{deferrable}", schedule=None, start_date=START) as dag:
        DeploymentStatusSensor(task_id="sense", deployment_id=bad, deferrable=deferrable, poke_interval=5, timeout=60)
    run = run_dag(dag)  # poke_interval=5: a second poke would make this test slow; there is none
    assert task_states(run) == {"sense": "failed"}
    assert conn.counters()["requests"]["get_deployment"] == 1
    sensor = DeploymentStatusSensor(task_id="s", deployment_id=bad)
    with pytest.raises(BasetenRemoteStateError, match="BUILD_FAILED"):
        sensor.poke(context())


@pytest.mark.parametrize("deferrable", MODES)
def test_sensor_wakes_a_scaled_to_zero_deployment(conn: Any, deferrable: bool) -> None:
    with DAG(f"t_sensor_wake_{deferrable}", schedule=None, start_date=START) as dag:
        DeploymentStatusSensor(
            task_id="sense", model_id="sleepy12", wake=True, deferrable=deferrable, poke_interval=0.02, timeout=60
        )
    run = run_dag(dag)
    assert task_states(run) == {"sense": "success"}
    assert xcom(run, "sense", "deployment_id") == "dep4zzzz"
    assert conn.counters()["requests"]["deployment_wake"] == 1
    assert conn.hook().get_deployment("production", model_id="sleepy12").status == "ACTIVE"


def test_sensor_custom_targets_and_environment(conn: Any) -> None:
    # Without wake, a scaled-to-zero deployment can be a target in itself (it is healthy, just idle).
    with DAG("t_sensor_targets", schedule=None, start_date=START) as dag:
        DeploymentStatusSensor(
            task_id="idle", environment="production", model_id="sleepy12", target_statuses=["SCALED_TO_ZERO"]
        )
        DeploymentStatusSensor(task_id="staging", environment="staging", poke_interval=0.02)
    run = run_dag(dag)
    assert task_states(run) == {"idle": "success", "staging": "success"}
    assert xcom(run, "idle") == "SCALED_TO_ZERO" and xcom(run, "staging", "deployment_id") == "dep3stag"
    assert "deployment_wake" not in conn.counters()["requests"]
