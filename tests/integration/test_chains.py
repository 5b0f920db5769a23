"""Chains get the train-then-promote treatment: the chain management hook methods over HTTP against the
emulator, and ChainDeploymentSensor, PromoteChainOperator and UpdateChainAutoscalingOperator in real Airflow
(``dag.test()``). Counts are read on the server."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten import assets
from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.exceptions import BasetenValidationError
from airflow_provider_baseten.operators.chains import PromoteChainOperator, UpdateChainAutoscalingOperator
from airflow_provider_baseten.sensors.chains import ChainDeploymentSensor
from tests.dag_support import context, run_dag, task_states
from tests.integration import test_deployment_operators as shared
from tests.integration.test_asset_events import events

START = datetime(2026, 1, 1)
CHAIN = "chain123"  # seeded: chain123dep (chainlets chain123depc0 Entrypoint, chain123depc1 Retriever)
SEEDED = "chain123dep"  # serves production and staging; the development deployment
FAST = {"poke_interval": 0.02, "timeout": 60}
MODES = [pytest.param(False, id="inline"), pytest.param(True, id="deferrable")]

conn = shared.conn  # baseten_default on the emulator, its clock 200x real time
task_log = shared.task_log


def log_text(events: list[dict[str, Any]]) -> str:
    """Everything the tasks logged, with %-arguments filled in, and their errors."""
    out = []
    for e in events:
        text, args = str(e.get("event")), e.get("positional_args")
        out.append(text % tuple(args) if args else text)
        out.extend(str(e[k]) for k in ("exception", "error_detail") if e.get(k))
    return "\n".join(out)


def sent(emulator: Any, name: str) -> int:
    return int(emulator.counters()["requests"].get(name, 0))


def new_deployment(emulator: Any, **kw: Any) -> str:
    return str(emulator.state.create_chain_deployment(CHAIN, **kw)["id"])


# -- hook methods --------------------------------------------------------------------------------------
def test_chain_lifecycle_through_the_hook(emulator: Any) -> None:
    emulator.set_time_scale(0)
    hook = emulator.hook()
    [seeded] = hook.list_chain_deployments(CHAIN)
    assert seeded.id == SEEDED and seeded.status == "ACTIVE" and seeded.environment in ("production", "staging")
    assert [c.name for c in seeded.chainlets] == ["Entrypoint", "Retriever"]
    new = new_deployment(emulator)
    assert hook.get_chain_deployment(CHAIN, new).status == "BUILDING"
    emulator.advance(10)
    dep = hook.get_chain_deployment(CHAIN, new)
    assert dep.status == "ACTIVE" and all(c.status == "ACTIVE" for c in dep.chainlets)
    logs = hook.get_chainlet_logs(CHAIN, new, dep.chainlets[1].id, min_level="INFO")
    assert any("ACTIVE" in line.message for line in logs)

    env = hook.create_chain_environment(
        CHAIN, "canary", chainlet_settings={"Retriever": {"autoscaling_settings": {"max_replica": 3}}}
    )
    assert env.current_deployment is None and env.chain_id == CHAIN
    assert {e.name for e in hook.list_chain_environments(CHAIN)} == {"production", "staging", "canary"}
    assert hook.update_chain_environment(CHAIN, "canary", promotion_settings={"rolling_deploy": True}).ok

    promoted = hook.promote_to_chain_environment(CHAIN, "canary", new)
    assert promoted.id == new
    env = hook.get_chain_environment(CHAIN, "canary")
    assert env.candidate_deployment is not None and env.candidate_deployment.id == new
    emulator.advance(10)
    env = hook.get_chain_environment(CHAIN, "canary")
    assert env.current_deployment is not None and env.current_deployment.id == new
    assert env.candidate_deployment is None

    result = hook.update_chainlet_autoscaling_settings(CHAIN, "canary", {"Retriever": {"min_replica": 1}})
    assert result.status == "ACCEPTED"
    assert hook.update_chainlet_autoscaling_settings(CHAIN, "canary", {"Retriever": {"min_replica": 1}}).status == (
        "UNCHANGED"
    )
    retriever = next(
        s for s in hook.get_chain_environment(CHAIN, "canary").chainlet_settings if s.chainlet_name == "Retriever"
    )
    assert retriever.autoscaling_settings is not None and retriever.autoscaling_settings.min_replica == 1
    assert retriever.autoscaling_settings.max_replica == 3

    moved = hook.update_chainlet_instance_types(CHAIN, "canary", {"Entrypoint": "2x8"})
    assert moved.requires_redeployment and moved.chain_deployment is not None
    again = hook.update_chainlet_instance_types(CHAIN, "canary", {"Entrypoint": "2x8"})
    assert not again.requires_redeployment and again.chain_deployment is None

    spare = new_deployment(emulator, status="ACTIVE")
    assert hook.deactivate_chain_deployment(CHAIN, spare).success
    assert hook.get_chain_deployment(CHAIN, spare).status == "INACTIVE"
    assert hook.delete_chain_deployment(CHAIN, spare).deleted
    assert spare not in {d.id for d in hook.list_chain_deployments(CHAIN)}


async def test_the_async_twins_reach_the_same_routes(emulator: Any) -> None:
    hook = emulator.hook()
    try:
        dep = await hook.aget_chain_deployment(CHAIN, SEEDED)
        env = await hook.aget_chain_environment(CHAIN, "production")
        lines = await hook.aget_chainlet_logs(CHAIN, SEEDED, dep.chainlets[0].id)
    finally:
        await hook.aclose()
    assert env.current_deployment is not None and env.current_deployment.id == dep.id
    assert isinstance(lines, list)
    assert sent(emulator, "get_chain_deployment") == 1 and sent(emulator, "get_chainlet_logs") == 1


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (
            lambda h: h.update_chainlet_autoscaling_settings(CHAIN, "production", {"Retriever": {"max_replica": 0}}),
            "max_replica",
        ),
        (lambda h: h.update_chainlet_autoscaling_settings(CHAIN, "production", {}), "settings"),
        (lambda h: h.update_chainlet_instance_types(CHAIN, "production", {"Retriever": ""}), "instance_type_id"),
        (
            lambda h: h.create_chain_environment(CHAIN, "x", chainlet_settings={"Retriever": {"replicas": 2}}),
            "chainlet_settings",
        ),
        (
            lambda h: h.promote_to_chain_environment(CHAIN, "production", SEEDED, scale_down_previous="yes"),
            "scale_down_previous",
        ),
        (lambda h: h.get_chainlet_logs(CHAIN, SEEDED, "c", min_level="LOUD"), "min_level"),
        (lambda h: h.update_chain_environment(CHAIN, "production", promotion_settings={}), "promotion_settings"),
    ],
    ids=["range", "empty", "instance-type", "unknown-key", "flag", "level", "no-settings"],
)
def test_bad_input_is_refused_before_sending(emulator: Any, call: Any, field: str) -> None:
    before = sum(emulator.counters()["requests"].values())
    with pytest.raises(BasetenValidationError) as err:
        call(emulator.hook())
    assert err.value.field == field
    assert sum(emulator.counters()["requests"].values()) == before


# -- ChainDeploymentSensor -----------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", MODES)
def test_sensor_waits_for_the_chain_deployment_to_be_active(conn: Any, deferrable: bool) -> None:
    new = new_deployment(conn)
    with DAG(f"t_chain_sensor_{deferrable}", schedule=None, start_date=START) as dag:
        ChainDeploymentSensor(task_id="wait", chain_id=CHAIN, chain_deployment_id=new, deferrable=deferrable, **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"wait": "success"}
    assert shared.xcom(run, "wait") == "ACTIVE"
    assert conn.hook().get_chain_deployment(CHAIN, new).status == "ACTIVE"


@pytest.mark.parametrize("deferrable", MODES)
def test_sensor_fails_with_the_failed_chainlets_error_lines(
    conn: Any, task_log: list[dict[str, Any]], deferrable: bool
) -> None:
    new = new_deployment(conn, fail="DEPLOY_FAILED")
    with DAG(f"t_chain_sensor_fail_{deferrable}", schedule=None, start_date=START) as dag:
        ChainDeploymentSensor(task_id="wait", chain_id=CHAIN, chain_deployment_id=new, deferrable=deferrable, **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"wait": "failed"}
    logged = log_text(task_log)
    assert f"Chain deployment {new} is DEPLOY_FAILED (Entrypoint: ACTIVE, Retriever: DEPLOY_FAILED)." in logged
    assert "[Retriever]" in logged and "CUDA out of memory" in logged
    assert "[Entrypoint]" not in logged  # only the failed chainlet's lines
    assert sent(conn, "get_chainlet_logs") == 1


# -- PromoteChainOperator ------------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", MODES)
def test_promote_chain_waits_and_emits_the_chain_environment_asset(
    conn: Any, task_log: list[dict[str, Any]], deferrable: bool
) -> None:
    new = new_deployment(conn)
    with DAG(f"t_chain_promote_{deferrable}", schedule=None, start_date=START) as dag:
        op = PromoteChainOperator(
            task_id="promote",
            chain_id=CHAIN,
            chain_deployment_id=new,
            environment="staging",
            deferrable=deferrable,
            **FAST,
        )
    assert op.outlets == [assets.chain_environment_asset(CHAIN, "staging")]
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    assert shared.xcom(run, "promote") == new
    env = conn.hook().get_chain_environment(CHAIN, "staging")
    assert env.current_deployment is not None and env.current_deployment.id == new
    assert sent(conn, "promote_to_chain_environment") == 1
    [(uri, extra)] = events(run)
    assert uri == f"baseten://chain/{CHAIN}/environments/staging"
    assert extra["chain_id"] == CHAIN and extra["deployment_id"] == new and extra["previous_deployment_id"] == SEEDED
    assert extra["environment"] == "staging" and extra["noop"] is False and extra["serving"] is True
    assert set(extra) == {
        "chain_id",
        "environment",
        "deployment_id",
        "previous_deployment_id",
        "promoted_at",
        "noop",
        "serving",
    }
    logged = log_text(task_log)
    assert f"Promotion of chain deployment {new} into staging started." in logged
    assert f"Chain deployment {new} serves staging (ACTIVE)." in logged


def test_a_promotion_answered_502_after_it_acted_promotes_once(conn: Any) -> None:
    """The promote call takes effect, then the client gets a 502: the transport resends it, Baseten refuses
    ("already in progress"), and the task continues with the one promotion the server made."""
    new = new_deployment(conn)
    conn.set_faults([FaultRule("502", endpoints=["promote_to_chain_environment"], times=1, after=True)])
    with DAG("t_chain_promote_502_after", schedule=None, start_date=START) as dag:
        PromoteChainOperator(task_id="promote", chain_id=CHAIN, chain_deployment_id=new, environment="staging", **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    assert conn.state.submissions["chain_promotion"] == 1  # one promotion on the server
    statuses = [(r["status"], r["fault"]) for r in conn.requests() if r["endpoint"] == "promote_to_chain_environment"]
    assert statuses == [(200, None), (502, "502"), (400, None)]
    [(_, extra)] = events(run)
    assert extra["previous_deployment_id"] == SEEDED and extra["noop"] is False


def test_a_retry_reconnects_to_the_promotion_an_earlier_try_started(conn: Any, task_log: list[dict[str, Any]]) -> None:
    """An earlier try promoted and was killed while waiting: the retry waits for that promotion, never sends a
    second one."""
    new = new_deployment(conn)
    conn.set_time_scale(0)  # the earlier try's promotion stays in progress however long this try takes to start
    conn.hook().promote_to_chain_environment(CHAIN, "staging", new)  # the killed try's promote call
    with DAG("t_chain_promote_retry", schedule=None, start_date=START) as dag:
        PromoteChainOperator(
            task_id="promote", chain_id=CHAIN, chain_deployment_id=new, environment="staging", **FAST,
            on_execute_callback=lambda context: conn.set_time_scale(10),  # now let it finish (10 emulated s)
        )  # fmt: skip
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    assert conn.state.submissions["chain_promotion"] == 1
    assert sent(conn, "promote_to_chain_environment") == 1  # the earlier try's only
    assert "already in progress" in log_text(task_log)
    [(_, extra)] = events(run)
    assert extra["previous_deployment_id"] == SEEDED and extra["noop"] is False


def test_promoting_what_already_serves_is_a_noop_event(conn: Any) -> None:
    with DAG("t_chain_promote_noop", schedule=None, start_date=START) as dag:
        PromoteChainOperator(task_id="promote", chain_id=CHAIN, chain_deployment_id=SEEDED, **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    assert sent(conn, "promote_to_chain_environment") == 0
    [(uri, extra)] = events(run)
    assert uri == f"baseten://chain/{CHAIN}/environments/production" and extra["noop"] is True


def test_a_failed_chain_promotion_fails_the_task(conn: Any, task_log: list[dict[str, Any]]) -> None:
    new = new_deployment(conn)
    conn.state.promotion_fail = True
    with DAG("t_chain_promote_fail", schedule=None, start_date=START) as dag:
        PromoteChainOperator(task_id="promote", chain_id=CHAIN, chain_deployment_id=new, environment="staging", **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"promote": "failed"}
    logged = log_text(task_log)
    assert "ERROR line(s)" in logged and f"Chain deployment {new} failed its health checks (emulated)." in logged
    assert conn.hook().get_chain_environment(CHAIN, "staging").current_deployment.id == SEEDED  # type: ignore[union-attr]


def test_at_the_deadline_the_task_stops_its_own_promotion(conn: Any) -> None:
    """No retry left: at the timeout the promotion this task started is stopped (its candidate deactivated, as
    the chain API has no cancel); what serves is untouched."""
    new = new_deployment(conn)
    conn.set_time_scale(0)  # the promotion never finishes
    with DAG("t_chain_promote_timeout", schedule=None, start_date=START) as dag:
        PromoteChainOperator(
            task_id="promote",
            chain_id=CHAIN,
            chain_deployment_id=new,
            environment="staging",
            poke_interval=0.02,
            timeout=0.5,
        )
    run = run_dag(dag)
    assert task_states(run) == {"promote": "failed"}
    assert sent(conn, "deactivate_chain_deployment") == 1
    hook = conn.hook()
    assert hook.get_chain_deployment(CHAIN, new).status == "INACTIVE"
    env = hook.get_chain_environment(CHAIN, "staging")
    assert env.candidate_deployment is None and env.current_deployment.id == SEEDED  # type: ignore[union-attr]


def test_a_kill_stops_only_this_tasks_promotion(conn: Any) -> None:
    """Killed while waiting inline: the candidate it promoted is deactivated; a promotion it did not start
    (found in progress) is left alone."""
    conn.set_time_scale(0)  # the promotions stay in progress
    mine = new_deployment(conn, status="ACTIVE")
    op = PromoteChainOperator(task_id="p", chain_id=CHAIN, chain_deployment_id=mine, environment="staging")
    op._owned = True  # as execute leaves it once its promote call was accepted
    conn.hook().promote_to_chain_environment(CHAIN, "staging", mine)
    op.on_kill()
    assert sent(conn, "deactivate_chain_deployment") == 1
    assert conn.hook().get_chain_environment(CHAIN, "staging").candidate_deployment is None

    theirs = new_deployment(conn, status="ACTIVE")
    conn.hook().promote_to_chain_environment(CHAIN, "production", theirs)
    other = PromoteChainOperator(task_id="q", chain_id=CHAIN, chain_deployment_id=theirs)
    other.on_kill()  # never owned: nothing is sent
    assert sent(conn, "deactivate_chain_deployment") == 1
    assert conn.hook().get_chain_environment(CHAIN, "production").candidate_deployment.id == theirs  # type: ignore[union-attr]


def test_hook_params_reach_the_chain_triggers(conn: Any) -> None:
    """The task's hook settings go with its wait into the triggerer (serialized, built again from the kwargs)."""
    from airflow_provider_baseten.triggers.chains import ChainDeploymentTrigger

    params = {"retry": {"total_timeout": 60.0}}
    sensor = ChainDeploymentSensor(task_id="w", chain_id=CHAIN, chain_deployment_id=SEEDED, hook_params=params)
    _, kwargs = sensor.make_trigger(context(), None).serialize()
    assert ChainDeploymentTrigger(**kwargs).hook_params == params
    assert PromoteChainOperator(
        task_id="p", chain_id=CHAIN, chain_deployment_id="d", hook_params=params
    ).hook_params == (params)


def test_promote_chain_refuses_bad_arguments_at_construction() -> None:
    with pytest.raises(BasetenValidationError, match="chain_deployment_id is required"):
        PromoteChainOperator(task_id="p", chain_id=CHAIN, chain_deployment_id="")
    with pytest.raises(BasetenValidationError, match="scale_down_previous"):
        PromoteChainOperator(task_id="p", chain_id=CHAIN, chain_deployment_id="d", scale_down_previous="no")  # type: ignore[arg-type]


# -- UpdateChainAutoscalingOperator --------------------------------------------------------------------
def test_update_chain_autoscaling(conn: Any) -> None:
    with DAG("t_chain_scale", schedule=None, start_date=START) as dag:
        UpdateChainAutoscalingOperator(
            task_id="scale", chain_id=CHAIN, autoscaling_settings={"Retriever": {"min_replica": 1, "max_replica": 4}}
        )
    run = run_dag(dag)
    assert task_states(run) == {"scale": "success"}
    assert shared.xcom(run, "scale")["status"] == "ACCEPTED"
    env = conn.hook().get_chain_environment(CHAIN, "production")
    retriever = next(s for s in env.chainlet_settings if s.chainlet_name == "Retriever")
    assert retriever.autoscaling_settings.min_replica == 1 and retriever.autoscaling_settings.max_replica == 4  # type: ignore[union-attr]


def test_update_chain_autoscaling_refuses_bad_settings_unsent(conn: Any) -> None:
    settings = {"Retriever": {"min_replica": 5, "max_replica": 2}}
    with DAG("t_chain_scale_bad", schedule=None, start_date=START) as dag:
        op = UpdateChainAutoscalingOperator(task_id="scale", chain_id=CHAIN, autoscaling_settings=settings)
    run = run_dag(dag)
    assert task_states(run) == {"scale": "failed"}
    with pytest.raises(BasetenValidationError, match=r"Chainlet 'Retriever': .*max_replica"):
        op.execute(context())
    assert sent(conn, "update_chainlet_autoscaling_settings") == 0
