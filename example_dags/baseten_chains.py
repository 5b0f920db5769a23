# Markers (Sphinx exampleinclude): howto_operator_run_chain, howto_operator_run_chain_batch,
# howto_operator_run_chain_async, howto_sensor_run_chain_async, howto_sensor_chain_deployment,
# howto_operator_run_chain_deployment, howto_operator_promote_chain, howto_operator_update_chain_autoscaling
"""Chains: call a Baseten Chain synchronously, in a batch, and asynchronously (waiting deferred); then take a
new chain deployment to production: wait until it is ACTIVE, smoke-test it, promote it, and scale it.

A chain is called with its entrypoint's ``run_remote`` arguments, by name, as a dict.

What it shows
-------------
1. ``ask`` (:class:`RunChainOperator`, ``chain_input``) makes one synchronous call; the chain's output goes
   to XCom.
2. ``ask_many`` (:class:`RunChainOperator`, ``chain_inputs``) runs a batch of calls with bounded
   concurrency; the outputs come back in input order (or, with ``output_path``, go to a JSONL/Parquet file).
3. ``submit_async`` (:class:`AsyncPredictOperator` with ``chain_id=``) queues long calls on the chain's
   ``async_run_remote`` and pushes the request ids at once; ``wait_for_async`` (:class:`AsyncPredictSensor`
   with ``chain_id=``, deferrable) waits in the triggerer until each is done. Baseten returns an async
   call's *status* only: its output goes wherever the chain sends it (e.g. a webhook, or storage).
4. A new chain deployment (pushed with ``truss chains push``) goes to production: ``wait_active``
   (:class:`ChainDeploymentSensor`, deferrable) waits until every chainlet is ACTIVE and fails with the
   failed chainlets' ERROR log lines otherwise; ``smoke`` calls that deployment directly (``deployment_id=``);
   ``promote`` (:class:`PromoteChainOperator`) promotes it into ``production`` and waits until it serves,
   emitting ``baseten://chain/{chain_id}/environments/production``; ``scale`` (:class:`UpdateChainAutoscalingOperator`)
   sets its entrypoint chainlet's autoscaling there.

Configure it
------------
* Connection ``baseten_default`` (type Baseten, direct API): the API key.
* Variable ``baseten_chain_id`` (or ``AIRFLOW_VAR_BASETEN_CHAIN_ID``): the id of your chain (required).
* Variable ``baseten_chain_deployment_id``: the chain deployment to take to production (required).
* ``ENTRYPOINT`` below: the name of your chain's entrypoint chainlet.
* ``BASETEN_EXAMPLE_POLL_SECONDS`` (environment): seconds between status checks (default 10).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from airflow_provider_baseten.operators.chains import PromoteChainOperator, UpdateChainAutoscalingOperator
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.operators.openai import RunChainOperator
from airflow_provider_baseten.sensors.chains import ChainDeploymentSensor
from airflow_provider_baseten.sensors.inference import AsyncPredictSensor

POLL_SECONDS = float(os.environ.get("BASETEN_EXAMPLE_POLL_SECONDS", "10"))
CHAIN_ID = "{{ var.value.baseten_chain_id }}"  # a missing Variable fails the task, naming it
NEW_DEPLOYMENT = "{{ var.value.baseten_chain_deployment_id }}"
ENTRYPOINT = "Entrypoint"  # your chain's entrypoint chainlet (its class name)
QUESTIONS = [
    "What does Airflow schedule?",
    "What does Baseten serve?",
    "Where do async outputs go?",
]

with DAG(
    dag_id="baseten_chains",
    description="Call a Baseten Chain: one call, a batch, and async calls waited for in the triggerer",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["baseten", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_run_chain]
    ask = RunChainOperator(
        task_id="ask",
        chain_id=CHAIN_ID,
        chain_input={"question": "What is a chain?"},  # the entrypoint's run_remote arguments
        environment="production",  # or "development", another environment, or deployment_id=
    )
    # [END howto_operator_run_chain]

    # [START howto_operator_run_chain_batch]
    ask_many = RunChainOperator(
        task_id="ask_many",
        chain_id=CHAIN_ID,
        chain_inputs=[{"question": q} for q in QUESTIONS],  # or an XComArg, or a JSONL/Parquet file
        max_concurrency=4,
    )
    # [END howto_operator_run_chain_batch]

    # [START howto_operator_run_chain_async]
    submit_async = AsyncPredictOperator(
        task_id="submit_async",
        chain_id=CHAIN_ID,  # a chain's async_run_remote instead of a model
        model_inputs=[{"question": q} for q in QUESTIONS],
        max_time_in_queue_seconds=3600,
        wait_for_completion=False,  # the sensor below waits, deferred
    )
    # [END howto_operator_run_chain_async]

    # [START howto_sensor_run_chain_async]
    wait_for_async = AsyncPredictSensor(
        task_id="wait_for_async",
        chain_id=CHAIN_ID,
        request_ids=submit_async.output,  # the ids, from XCom
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=2 * 3600,
    )
    # [END howto_sensor_run_chain_async]

    @task
    def report(one: dict, many: list, states: dict[str, str]) -> dict:
        """What came back: the sync outputs, and the final state of each async call."""
        print(f"ask: {one}")
        print(f"ask_many: {len(many)} outputs, in input order")
        print(f"async: {states}")
        return {"sync_outputs": 1 + len(many), "async_states": sorted(set(states.values()))}

    report(ask.output, ask_many.output, wait_for_async.output)

    # [START howto_sensor_chain_deployment]
    wait_active = ChainDeploymentSensor(
        task_id="wait_active",
        chain_id=CHAIN_ID,
        chain_deployment_id=NEW_DEPLOYMENT,
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=3600,
    )
    # [END howto_sensor_chain_deployment]

    # [START howto_operator_run_chain_deployment]
    smoke = RunChainOperator(
        task_id="smoke",
        chain_id=CHAIN_ID,
        chain_input={"question": "Are you up?"},
        deployment_id=NEW_DEPLOYMENT,  # this deployment, before it serves production
    )
    # [END howto_operator_run_chain_deployment]

    # [START howto_operator_promote_chain]
    promote = PromoteChainOperator(
        task_id="promote",
        chain_id=CHAIN_ID,
        chain_deployment_id=NEW_DEPLOYMENT,
        environment="production",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=3600,  # at the deadline, with no retry left, the promotion this task started is stopped
    )
    # [END howto_operator_promote_chain]

    # [START howto_operator_update_chain_autoscaling]
    scale = UpdateChainAutoscalingOperator(
        task_id="scale",
        chain_id=CHAIN_ID,
        environment="production",
        autoscaling_settings={ENTRYPOINT: {"min_replica": 1, "max_replica": 4}},  # per chainlet name
    )
    # [END howto_operator_update_chain_autoscaling]

    wait_active >> smoke >> promote >> scale
