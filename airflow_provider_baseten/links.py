"""The Baseten UI URLs of a task's objects: its extra links (read from the ids the task pushed to XCom) and
its log lines. This module is the one home of those URLs; they always point at Baseten's UI
(``app.baseten.co``), whichever connection the task used (direct or a LowCodeAPI gateway), and never hold a key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

from airflow_provider_baseten import xcom

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

BASETEN_APP = "https://app.baseten.co"


def _pulled(ti_key: TaskInstanceKey, key: str) -> str:
    from airflow.providers.common.compat.sdk import XCom

    try:
        value = XCom.get_value(ti_key=ti_key, key=key)
    except Exception:  # no XCom yet (task not run): no link
        return ""
    return value if isinstance(value, str) else ""


class BasetenModelLink(BaseOperatorLink):
    """Link to the model's page on Baseten (XCom key ``baseten_model_url``)."""

    name = "Baseten model"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The URL pushed by the task, or an empty string."""
        return _pulled(ti_key, xcom.MODEL_URL)


class BasetenDeploymentLink(BaseOperatorLink):
    """Link to the deployment's page on Baseten (XCom key ``baseten_deployment_url``)."""

    name = "Baseten deployment"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The URL pushed by the task, or an empty string."""
        return _pulled(ti_key, xcom.DEPLOYMENT_URL)


class BasetenTrainingJobLink(BaseOperatorLink):
    """Link to the training job's page on Baseten (XCom key ``baseten_training_job_url``)."""

    name = "Baseten training job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The URL pushed by the task, or an empty string."""
        return _pulled(ti_key, xcom.TRAINING_JOB_URL)


def model_url(model_id: str) -> str:
    """The Baseten UI page of a model."""
    return f"{BASETEN_APP}/models/{model_id}/overview"


def deployment_url(model_id: str, deployment_id: str) -> str:
    """The Baseten UI page of a deployment."""
    return f"{BASETEN_APP}/models/{model_id}/logs/{deployment_id}"


def training_job_url(training_project_id: str, training_job_id: str) -> str:
    """The Baseten UI page of a training job."""
    return f"{BASETEN_APP}/training/{training_project_id}/jobs/{training_job_id}"


def baseten_tab_url(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The task instance's Baseten tab in the Airflow UI (the provider's plugin pages, mounted at ``/baseten``).

    Relative to the Airflow UI, so a link in a page or a HITL body works on whatever host serves Airflow.
    """
    from urllib.parse import urlencode

    query = urlencode({"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index})
    return f"/baseten/ti?{query}"


def log_link(log: Any, what: str, url: str) -> None:
    """Write where to watch ``what`` on Baseten to the task log at INFO, as the Databricks and EMR operators do.

    Called once per try by each operator that creates or starts something on Baseten (a training job, a
    deployment, a promotion, async requests), so the log says where to look without opening the extra link.
    """
    log.info("View %s on Baseten at %s", what, url)
