"""Each created or started Baseten object logs its Baseten UI URL once, at INFO (issue 23 §1).

A training job, a deployment (deploy operator), a promotion and async requests: the task log says where to
watch them, as the Databricks and EMR operators do. The URL is Baseten's UI whichever connection the task used
(a LowCodeAPI gateway too): never the gateway's host, never the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog
from airflow.sdk import DAG

from airflow_provider_baseten.links import BASETEN_APP
from airflow_provider_baseten.operators.deploy import DeployModelOperator
from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
from tests.dag_support import run_dag, task_states

MODEL = "echo1234"  # seeded: production dep1prod, development dep2devl, staging dep3stag
FAST = {"poke_interval": 0.02, "timeout": 60}
LINK = re.compile(r"^View (.+) on Baseten at (\S+)$")


@pytest.fixture
def task_log() -> Iterator[list[dict[str, Any]]]:
    """What tasks log (Airflow 3's task loggers are structlog loggers that do not reach ``caplog``)."""
    with structlog.testing.capture_logs() as events:
        yield events


@pytest.mark.parametrize("gateway", ["baseten", "lowcodeapi"])
def test_each_created_object_logs_its_baseten_url_once(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, task_log: list[dict[str, Any]], gateway: Any
) -> None:
    for key, value in emulator.connection_env(gateway=gateway).items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(200)
    project = next(iter(emulator.state.projects))
    new = emulator.create_deployment(MODEL, name="v3")["id"]
    with DAG(f"t_log_links_{gateway}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        if gateway == "baseten":  # training and deploying are not in the LowCodeAPI reference: direct only
            CreateTrainingJobOperator(
                task_id="train", training_project_id=project, image={"base_image": "python:3.11"}, name="j", **FAST
            )
            DeployModelOperator(task_id="deploy", config={"model_name": "my-finetune"}, **FAST)
        PromoteDeploymentOperator(task_id="promote", deployment_id=new, model_id=MODEL, environment="staging", **FAST)
        AsyncPredictOperator(task_id="submit", model_id=MODEL, model_inputs=[{"i": 1}, {"i": 2}])
    run = run_dag(dag)
    assert set(task_states(run).values()) == {"success"}

    links = [(e["log_level"], LINK.match(str(e["event"]))) for e in task_log if LINK.match(str(e["event"]))]
    assert {level for level, _ in links} == {"info"}
    logged = [match.group(2) for _, match in links]
    expected = [
        f"{BASETEN_APP}/models/{MODEL}/logs/{new}",  # the promoted deployment
        f"{BASETEN_APP}/models/{MODEL}/overview",  # where the async requests run
    ]
    if gateway == "baseten":
        job = run.get_task_instance("train").xcom_pull(task_ids="train")
        expected.insert(0, f"{BASETEN_APP}/training/{project}/jobs/{job}")
        dep = run.get_task_instance("deploy").xcom_pull(task_ids="deploy")
        deployed_model = run.get_task_instance("deploy").xcom_pull(task_ids="deploy", key="model_id")
        expected.append(f"{BASETEN_APP}/models/{deployed_model}/logs/{dep}")
    assert sorted(logged) == sorted(expected)  # each object once
    for url in logged:  # the same URL the task's extra link shows, never the gateway or the key
        assert url.startswith("https://app.baseten.co/")
        assert emulator.url not in url and emulator.api_key not in url
