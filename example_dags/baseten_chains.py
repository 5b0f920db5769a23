# Markers (Sphinx exampleinclude): howto_operator_run_chain, howto_operator_run_chain_batch,
# howto_operator_run_chain_async, howto_sensor_run_chain_async
"""Chains: call a Baseten Chain synchronously, in a batch, and asynchronously (waiting deferred).

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

Configure it
------------
* Connection ``baseten_default`` (type Baseten, direct API): the API key.
* Variable ``baseten_chain_id`` (or ``AIRFLOW_VAR_BASETEN_CHAIN_ID``): the id of your chain (required).
* ``BASETEN_EXAMPLE_POLL_SECONDS`` (environment): seconds between status checks (default 10).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.operators.openai import RunChainOperator
from airflow_provider_baseten.sensors.inference import AsyncPredictSensor

POLL_SECONDS = float(os.environ.get("BASETEN_EXAMPLE_POLL_SECONDS", "10"))
CHAIN_ID = "{{ var.value.baseten_chain_id }}"  # a missing Variable fails the task, naming it
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
