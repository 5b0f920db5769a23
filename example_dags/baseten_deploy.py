# Markers (Sphinx exampleinclude): howto_operator_deploy_model, howto_operator_deploy_truss,
# howto_operator_predict_new_deployment
"""Deploy a model from Airflow: a config (no code) and a Truss directory, then call the new deployment.

What it shows
-------------
1. ``deploy_config`` (:class:`DeployModelOperator`, ``config=``) deploys a ``config.yaml`` given as a dict,
   e.g. an engine-builder model that needs no code of yours.
2. ``deploy_truss`` (:class:`DeployModelOperator`, ``truss_dir=``) packs a Truss directory (this file's
   ``truss/hello``, less what its ``.truss_ignore`` lists) and deploys it.

   Each uploads the archive, creates a new deployment of the model named in the config (the model is
   created on the first run), pushes ``model_id`` and the deployment id to XCom before waiting, and waits
   (deferred) until the deployment is ACTIVE, failing fast with its last error log lines on a failed build.
   Neither touches production: pass ``environment="production"`` to deploy straight into an environment.
3. ``call_truss`` (:class:`PredictOperator`) calls the new deployment by its id.

Configure it
------------
* Connection ``baseten_default`` (type Baseten, direct API): the API key. Needs
  ``pip install 'airflow-provider-baseten[deploy]'`` (botocore, for the upload).
* ``BASETEN_EXAMPLE_POLL_SECONDS`` (environment): seconds between status checks (default 15).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_provider_baseten.operators.deploy import DeployModelOperator
from airflow_provider_baseten.operators.inference import PredictOperator

POLL_SECONDS = float(os.environ.get("BASETEN_EXAMPLE_POLL_SECONDS", "15"))
TRUSS_DIR = str(Path(__file__).parent / "truss" / "hello")  # ship the Truss next to the DAG file
# A config-only model: an embedding model served by Baseten's engine builder (no model code).
CONFIG = {
    "model_name": "airflow-example-embedder",
    "resources": {"accelerator": "L4", "use_gpu": True},
    "trt_llm": {
        "build": {
            "base_model": "encoder",
            "checkpoint_repository": {"source": "HF", "repo": "BAAI/bge-small-en-v1.5"},
        }
    },
}

with DAG(
    dag_id="baseten_deploy",
    description="Deploy a config and a Truss directory as new Baseten deployments, then call one",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
    tags=["baseten", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_deploy_model]
    deploy_config = DeployModelOperator(
        task_id="deploy_config",
        config=CONFIG,  # the model is found (or created) by the config's model_name
        labels={"airflow_dag": "baseten_deploy"},
        deferrable=True,  # the wait for ACTIVE runs in the triggerer
        poke_interval=POLL_SECONDS,
        timeout=2 * 3600,
    )
    # [END howto_operator_deploy_model]

    # [START howto_operator_deploy_truss]
    deploy_truss = DeployModelOperator(
        task_id="deploy_truss",
        truss_dir=TRUSS_DIR,  # config.yaml + model/model.py
        deployment_name="hello-{{ dag_run.run_after | ts_nodash }}",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=2 * 3600,
    )
    # [END howto_operator_deploy_truss]

    # [START howto_operator_predict_new_deployment]
    call_truss = PredictOperator(
        task_id="call_truss",
        model_id="{{ ti.xcom_pull(task_ids='deploy_truss', key='model_id') }}",
        deployment_id=deploy_truss.output,  # the new deployment, not what production serves
        model_input={"name": "Airflow"},
    )
    # [END howto_operator_predict_new_deployment]

    @task
    def report(config_deployment: str, truss_deployment: str, answer: dict) -> dict:
        """The two new deployments, and what the Truss one answered."""
        print(f"config -> deployment {config_deployment}; truss -> deployment {truss_deployment}: {answer}")
        return {"config": config_deployment, "truss": truss_deployment, "answer": answer}

    report(deploy_config.output, deploy_truss.output, call_truss.output)
