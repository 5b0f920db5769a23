"""The pytest plugin's ``baseten_dag_test`` fixture runs a DAG defined in a test function against the emulator.

Without it, ``dag.test()`` of such a DAG fails on Airflow 3 ("Cannot create DagRun ... because the dag is not
serialized"): the DAG is in no DAGs folder, so no DAG processor ever serialized it.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_provider_baseten.operators.inference import PredictOperator


def test_runs_a_dag_defined_in_the_test_against_the_emulator(baseten_dag_test: Any, emulator: Any) -> None:
    with DAG("t_fixture_inline", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        PredictOperator(task_id="predict", model_id="echo1234", model_input={"text": "hello"})

    run = baseten_dag_test(dag)

    assert run.get_task_instance("predict").state == "success"
    assert run.get_task_instance("predict").xcom_pull(task_ids="predict")["upper"] == "HELLO"
    assert emulator.counters()["requests"]["production_predict"] == 1  # counted on the server


def test_sets_the_emulator_connection_for_the_test(baseten_dag_test: Any, emulator: Any) -> None:
    assert os.environ["AIRFLOW_CONN_BASETEN_DEFAULT"] == emulator.connection_env()["AIRFLOW_CONN_BASETEN_DEFAULT"]
