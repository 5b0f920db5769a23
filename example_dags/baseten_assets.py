# Markers (Sphinx exampleinclude): howto_asset_watcher, howto_operator_predict_candidate, howto_asset_producer,
# howto_asset_consumer
"""Assets: promote every new deployment that passes a smoke test, and re-score when production changes.

Two DAGs, linked by Baseten assets (``baseten://model/{model_id}/...``):

``baseten_promote_new_deployment`` (the producer)
    Scheduled by an :class:`~airflow.sdk.AssetWatcher`: a :class:`DeploymentActiveTrigger` in the triggerer
    polls the model's deployments and fires when one becomes ACTIVE (a ``truss push``, a deploy from any
    DAG). The DAG smoke-tests that deployment, then :class:`PromoteDeploymentOperator` promotes it to
    production. The promotion's outlet is the production environment's asset: its event says which
    deployment production now serves. Run it by hand to promote the deployment named by the Variable
    ``baseten_candidate_deployment_id``.
``baseten_on_new_production`` (the consumer)
    Scheduled on that asset: each promotion runs it once. It reads the event (``inlet_events``) and
    re-scores a few reference inputs on the new production deployment.

The watcher watches deployments becoming ACTIVE, not production: a promotion made by the producer does
not wake the producer again, and reaches the consumer once (through the producer's event).
A watcher polls only while a DAG it schedules is unpaused, and needs a running triggerer.

Configure it
------------
* Connection ``baseten_default`` (type Baseten): the API key.
* ``BASETEN_EXAMPLE_MODEL_ID`` (environment, read when the file is parsed): the model to watch. Assets
  and watchers are fixed when the DAG is parsed, so the id cannot come from a Variable or the connection.
* Variable ``baseten_candidate_deployment_id``: the deployment to promote in a manual run.
* ``BASETEN_EXAMPLE_POLL_SECONDS`` (environment): seconds between the watcher's polls (default 30).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, AssetWatcher, Variable, task

from airflow_provider_baseten.assets import environment_asset, model_asset
from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
from airflow_provider_baseten.operators.inference import PredictOperator
from airflow_provider_baseten.triggers.watchers import DeploymentActiveTrigger

MODEL_ID = os.environ.get("BASETEN_EXAMPLE_MODEL_ID", "abcd1234")
POLL_SECONDS = float(os.environ.get("BASETEN_EXAMPLE_POLL_SECONDS", "30"))
REFERENCE_INPUTS = [{"text": "The delivery was quick."}, {"text": "The product broke after a day."}]

# [START howto_asset_watcher]
# "A deployment of MODEL_ID became ACTIVE", polled by the triggerer: one event per deployment.
new_deployments = model_asset(
    MODEL_ID,
    watchers=[
        AssetWatcher(
            name=f"baseten_{MODEL_ID}_deployment_active",
            trigger=DeploymentActiveTrigger(model_id=MODEL_ID, poll_interval=POLL_SECONDS),
        )
    ],
)
# [END howto_asset_watcher]
# What production serves: the promotion below emits its events; the consumer is scheduled on it.
production = environment_asset(MODEL_ID, "production")

with DAG(
    dag_id="baseten_promote_new_deployment",
    description="Smoke-test and promote each deployment that becomes ACTIVE (an AssetWatcher schedules it)",
    schedule=[new_deployments],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["baseten", "example"],
    doc_md=__doc__,
):
    # [START howto_operator_predict_candidate]
    @task
    def candidate(triggering_asset_events: Any = None) -> str:
        """The deployment the watcher saw become ACTIVE, or (a manual run) the Variable's."""
        for events in (triggering_asset_events or {}).values():
            payload = events[-1].extra["payload"]  # a watcher's event: {"kind", "deployment_id", ...}
            print(f"Deployment {payload['deployment_id']} of {payload['model_id']} became ACTIVE")
            return str(payload["deployment_id"])
        return Variable.get("baseten_candidate_deployment_id")

    deployment_id = candidate()
    smoke_test = PredictOperator(
        task_id="smoke_test",
        model_id=MODEL_ID,
        deployment_id=deployment_id,  # this deployment, not what production serves
        model_inputs=REFERENCE_INPUTS,
    )
    # [END howto_operator_predict_candidate]

    # [START howto_asset_producer]
    promote = PromoteDeploymentOperator(
        task_id="promote",
        model_id=MODEL_ID,
        deployment_id=deployment_id,
        environment="production",
        outlets=[production],  # the default too; the event: {deployment_id, previous_deployment_id, ...}
        deferrable=True,
        poke_interval=POLL_SECONDS,
    )
    # [END howto_asset_producer]
    smoke_test >> promote

# [START howto_asset_consumer]
with DAG(
    dag_id="baseten_on_new_production",
    description="Re-score reference inputs whenever production of the model changes (an asset schedules it)",
    schedule=[production],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["baseten", "example"],
    doc_md=__doc__,
):

    @task(inlets=[production])
    def new_production(inlet_events: Any = None) -> str:
        """The deployment production serves now, from the asset's latest event."""
        event = inlet_events[production][-1]
        print(f"production of {event.extra['model_id']} now serves {event.extra['deployment_id']}: {event.extra}")
        return str(event.extra["deployment_id"])

    rescore = PredictOperator(
        task_id="rescore",
        model_id=MODEL_ID,
        deployment_id=new_production(),
        model_inputs=REFERENCE_INPUTS,
    )
# [END howto_asset_consumer]
