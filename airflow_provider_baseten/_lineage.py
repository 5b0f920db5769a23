"""OpenLineage facets of the provider's operators (the ``[openlineage]`` extra).

Each operator's ``get_openlineage_facets_on_complete`` is one call to a function here, built from ids the
operator already holds (no request to Baseten: the OpenLineage listener runs it after the task, often in
a fork). What the events carry:

- batch predict: the input file (``inputStatistics.rowCount``: inputs read), the model as an input dataset
  (its environment, or its deployment), and the output file (``outputStatistics.rowCount``: result lines);
- a training job: the job as an output dataset, and what it cost as the run facet ``baseten_cost``
  (:class:`~airflow_provider_baseten._lineage_facets.BasetenCostRunFacet`);
- promote or deploy into an environment: the deployment as an input, the environment as an output (with a
  ``lifecycleStateChange`` of ``OVERWRITE``: the environment now serves another deployment).

Baseten objects are datasets in the ``baseten`` namespace, named like the provider's asset URIs without
their scheme (``model/{model_id}/environments/{env}``, ``model/{model_id}/deployments/{id}``,
``training_project/{project_id}/jobs/{job_id}``); files follow OpenLineage's naming (``s3://bucket`` +
key, ``file`` + path). Importing this module is free; OpenLineage is imported only when a function runs,
and only the OpenLineage listener calls them, so without the extra nothing changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from typing import TypeAlias

    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.generated.base import Dataset, InputDataset, OutputDataset

    from airflow_provider_baseten.cost import CostReport

    Lineage: TypeAlias = OperatorLineage[Dataset, Any]

#: The OpenLineage namespace of Baseten's objects (models, deployments, environments, training jobs).
NAMESPACE = "baseten"


def never_raises(method: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap an operator's ``get_openlineage_facets_on_*``: a lineage bug must not fail (or hide) a task.

    Any exception is logged as a warning on the operator's logger and the method returns ``None`` (the
    OpenLineage listener then reports the task without datasets).
    """

    @functools.wraps(method)
    def facets(self: Any, task_instance: Any) -> Any:
        try:
            return method(self, task_instance)
        except Exception as exc:
            self.log.warning(
                "OpenLineage: no datasets for task %s (%s: %s); the task's result is unchanged.",
                getattr(self, "task_id", "?"),
                type(exc).__name__,
                exc,
            )
            return None

    return facets


def model_name(model_id: str, *, environment: str | None = None, deployment_id: str | None = None) -> str:
    """The dataset name of a model target: a deployment when ``deployment_id`` is given, else an environment."""
    if deployment_id:
        return f"model/{model_id}/deployments/{deployment_id}"
    return f"model/{model_id}/environments/{environment or 'production'}"


def training_job_name(training_project_id: str, training_job_id: str) -> str:
    """The dataset name of a training job."""
    return f"training_project/{training_project_id}/jobs/{training_job_id}"


def file_uri(path: Any) -> str:
    """The URL of a file: a ``scheme://`` URL as given, a local path as ``file:///abs/path``.

    Without user info, query or fragment: an ``ObjectStoragePath("s3://aws_default@bucket/key")`` is
    ``s3://bucket/key`` (``aws_default`` is an Airflow connection id, not part of the file's identity), and
    a signed URL's signature never reaches an asset URI (stored and shown in cleartext).
    """
    text = str(path)
    if "://" not in text:
        import os

        return "file://" + os.path.abspath(text)
    parts = urlsplit(text)
    if "@" in parts.netloc or parts.query or parts.fragment:
        text = parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment="").geturl()
    return text


def file_dataset_ids(path: Any) -> tuple[str, str]:
    """``(namespace, name)`` of a file: a local path, a ``scheme://`` URL or an ``ObjectStoragePath``.

    ``s3://bucket/key`` is ``("s3://bucket", "key")`` (an ``ObjectStoragePath``'s connection id dropped); a
    local path is ``("file", "/abs/path")``, as Airflow's own ``file`` asset converter names it.
    """
    parts = urlsplit(file_uri(path))
    if parts.scheme == "file":
        return (f"file://{parts.netloc}" if parts.netloc else "file"), parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") or "/"


def _input(namespace: str, name: str, rows: int | None = None) -> InputDataset:
    from openlineage.client.generated.base import InputDataset
    from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet

    facets = {"inputStatistics": InputStatisticsInputDatasetFacet(rowCount=rows)} if rows is not None else {}
    return InputDataset(namespace=namespace, name=name, inputFacets=facets)  # type: ignore[arg-type]


def _output(namespace: str, name: str, rows: int | None = None, facets: dict[str, Any] | None = None) -> OutputDataset:
    from openlineage.client.generated.base import OutputDataset
    from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet

    output_facets = {"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=rows)} if rows is not None else {}
    return OutputDataset(namespace=namespace, name=name, facets=facets or {}, outputFacets=output_facets)  # type: ignore[arg-type]


def _lineage(
    inputs: list[Dataset] | None = None, outputs: list[Dataset] | None = None, cost: CostReport | None = None
) -> Lineage:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=inputs or [], outputs=outputs or [], run_facets=cost_facets(cost))


def cost_facets(cost: CostReport | None) -> dict[str, Any]:
    """The run facet ``baseten_cost`` (the XCom ``baseten_cost`` fields) of a task that knows its cost."""
    if cost is None:
        return {}
    from airflow_provider_baseten._lineage_facets import BasetenCostRunFacet

    return {"baseten_cost": BasetenCostRunFacet(**cost.as_xcom())}


def empty() -> Lineage:
    """No datasets: what an operator reports when it holds no ids (e.g. the task did nothing)."""
    return _lineage()


def predict_lineage(
    model_id: str | None,
    *,
    environment: str | None = None,
    deployment_id: str | None = None,
    input_path: Any = None,
    input_rows: int | None = None,
    output_path: Any = None,
    output_rows: int | None = None,
) -> Lineage:
    """Batch (or single) predict: the input file and the model in, the output file out, with row counts."""
    inputs: list[Dataset] = []
    if input_path is not None:
        inputs.append(_input(*file_dataset_ids(input_path), rows=input_rows))
    if model_id:
        inputs.append(_input(NAMESPACE, model_name(model_id, environment=environment, deployment_id=deployment_id)))
    outputs: list[Dataset] = []
    if output_path is not None:
        outputs.append(_output(*file_dataset_ids(output_path), rows=output_rows))
    return _lineage(inputs, outputs)


def training_lineage(
    training_project_id: str | None, training_job_id: str | None, cost: CostReport | None = None
) -> Lineage:
    """A training job this task ran (or reconnected to), as the task's output, with its cost as a run facet."""
    if not (training_project_id and training_job_id):
        return empty()
    output = _output(NAMESPACE, training_job_name(training_project_id, training_job_id))
    return _lineage(outputs=[output], cost=cost)


def deployment_lineage(model_id: str | None, deployment_id: str | None) -> Lineage:
    """A deployment this task created (deploy with no environment), as the task's output."""
    if not (model_id and deployment_id):
        return empty()
    return _lineage(outputs=[_output(NAMESPACE, model_name(model_id, deployment_id=deployment_id))])


def environment_lineage(
    model_id: str | None, deployment_id: str | None, environment: str | None, *, changed: bool = True
) -> Lineage:
    """A deployment now serving an environment (promote, or deploy into an environment).

    The deployment is the input and the environment the output, marked ``OVERWRITE``: what the environment
    served before is replaced (``changed=False``, when it already served that deployment: no lifecycle facet).
    One line wires a deploy operator::

        def get_openlineage_facets_on_complete(self, task_instance):
            return _lineage.environment_lineage(self.model_id, self.deployment_id, self.environment)
    """
    if not (model_id and deployment_id):
        return empty()
    from openlineage.client.generated.lifecycle_state_change_dataset import (
        LifecycleStateChange,
        LifecycleStateChangeDatasetFacet,
    )

    change = {
        "lifecycleStateChange": LifecycleStateChangeDatasetFacet(lifecycleStateChange=LifecycleStateChange.OVERWRITE)
    }
    return _lineage(
        inputs=[_input(NAMESPACE, model_name(model_id, deployment_id=deployment_id))],
        outputs=[
            _output(
                NAMESPACE,
                model_name(model_id, environment=environment or "production"),
                facets=change if changed else None,
            )
        ],
    )
