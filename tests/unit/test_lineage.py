"""OpenLineage facets (issue 17 §3): what ``_lineage`` builds for each operator, and that nothing of
OpenLineage is imported until a facet is asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage")

from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.generated.base import InputDataset, OutputDataset
from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet
from openlineage.client.generated.lifecycle_state_change_dataset import (
    LifecycleStateChange,
    LifecycleStateChangeDatasetFacet,
)
from openlineage.client.generated.output_statistics_output_dataset import (
    OutputStatisticsOutputDatasetFacet,
)

from airflow_provider_baseten import _lineage

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("s3://bucket/in/part-0.jsonl", ("s3://bucket", "in/part-0.jsonl")),
        ("gs://b/x.jsonl", ("gs://b", "x.jsonl")),
        ("file:///tmp/x.jsonl", ("file", "/tmp/x.jsonl")),
        ("/tmp/x.jsonl", ("file", "/tmp/x.jsonl")),
    ],
)
def test_file_names_follow_openlineage_naming(path: str, expected: tuple[str, str]) -> None:
    assert _lineage.file_dataset_ids(path) == expected


def test_relative_and_object_storage_paths() -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    assert _lineage.file_dataset_ids("in.jsonl") == ("file", str(Path("in.jsonl").absolute()))
    assert _lineage.file_dataset_ids(ObjectStoragePath("file:///data/in.jsonl")) == ("file", "/data/in.jsonl")
    # The connection id of an ObjectStoragePath is not part of the file's name (OpenLineage: s3://bucket).
    with_conn = ObjectStoragePath("s3://aws_default@bucket/out/x.jsonl")
    assert _lineage.file_dataset_ids(with_conn) == ("s3://bucket", "out/x.jsonl")


def test_batch_predict_files_model_and_row_counts() -> None:
    got = _lineage.predict_lineage(
        "m1",
        environment="staging",
        input_path="s3://b/in.jsonl",
        input_rows=300,
        output_path="/out/r.jsonl",
        output_rows=298,
    )
    assert got == OperatorLineage(
        inputs=[
            InputDataset(
                "s3://b", "in.jsonl", inputFacets={"inputStatistics": InputStatisticsInputDatasetFacet(rowCount=300)}
            ),
            InputDataset("baseten", "model/m1/environments/staging"),
        ],
        outputs=[
            OutputDataset(
                "file",
                "/out/r.jsonl",
                outputFacets={"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=298)},
            )
        ],
    )


def test_predict_names_the_deployment_when_given_and_production_by_default() -> None:
    assert _lineage.predict_lineage("m1", deployment_id="d9").inputs == [
        InputDataset("baseten", "model/m1/deployments/d9")
    ]
    assert _lineage.predict_lineage("m1").inputs == [InputDataset("baseten", "model/m1/environments/production")]
    assert _lineage.predict_lineage(None) == OperatorLineage()


def test_training_job_is_the_output() -> None:
    assert _lineage.training_lineage("p1", "j1") == OperatorLineage(
        outputs=[OutputDataset("baseten", "training_project/p1/jobs/j1")]
    )
    assert _lineage.training_lineage(None, None) == OperatorLineage()


def test_promotion_deployment_in_environment_out_overwritten() -> None:
    change = LifecycleStateChangeDatasetFacet(lifecycleStateChange=LifecycleStateChange.OVERWRITE)
    assert _lineage.environment_lineage("m1", "d2", "staging") == OperatorLineage(
        inputs=[InputDataset("baseten", "model/m1/deployments/d2")],
        outputs=[OutputDataset("baseten", "model/m1/environments/staging", facets={"lifecycleStateChange": change})],
    )
    assert _lineage.environment_lineage("m1", None, "staging") == OperatorLineage()


def test_events_serialize_to_json() -> None:
    from openlineage.client.serde import Serde

    text = Serde.to_json(_lineage.environment_lineage("m1", "d2", None).outputs[0])
    assert '"name": "model/m1/environments/production"' in text and '"OVERWRITE"' in text


def _ol_modules_after(code: str) -> Any:
    script = f"import sys, airflow.sdk\nbefore = set(sys.modules)\n{code}\nprint(sorted(m for m in set(sys.modules) - before if 'openlineage' in m))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def test_operators_import_no_openlineage() -> None:
    """Lazy: importing and building the operators (as the DAG processor does) loads nothing of OpenLineage."""
    code = (
        "from airflow_provider_baseten import _lineage\n"
        "from airflow_provider_baseten.operators.inference import PredictOperator\n"
        "from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator\n"
        "from airflow_provider_baseten.operators.training import CreateTrainingJobOperator\n"
        "PredictOperator(task_id='p', model_inputs='in.jsonl', output_path='out.jsonl')\n"
        "PromoteDeploymentOperator(task_id='q', deployment_id='d')\n"
        "CreateTrainingJobOperator(task_id='t', training_project_id='p', training_job={})\n"
    )
    assert _ol_modules_after(code) == "[]"


def test_asset_converter_names_baseten_assets_like_the_operators_facets() -> None:
    pytest.importorskip("airflow.providers.openlineage")
    from airflow_provider_baseten import _lineage
    from airflow_provider_baseten.assets import environment_asset, to_openlineage, training_job_asset

    env = to_openlineage(environment_asset("abc123", "production"))
    assert (env.namespace, env.name) == (_lineage.NAMESPACE, _lineage.model_name("abc123", environment="production"))
    job = to_openlineage(training_job_asset("p1", "j1"))
    assert (job.namespace, job.name) == ("baseten", "training_project/p1/jobs/j1")
    with pytest.raises(ValueError, match="not a baseten://"):
        to_openlineage(type("A", (), {"uri": "s3://bucket/key"})())


def test_provider_info_points_at_the_converter() -> None:
    import importlib

    from airflow_provider_baseten import get_provider_info

    (entry,) = get_provider_info()["asset-uris"]
    module, _, name = entry["to_openlineage_converter"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_facets_never_fail_the_task(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lineage bug must not fail a task: the listener gets ``None`` and the task log a warning."""
    from airflow_provider_baseten.operators.deploy import DeployModelOperator
    from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
    from airflow_provider_baseten.operators.inference import PredictOperator
    from airflow_provider_baseten.operators.training import CreateTrainingJobOperator

    # A real one: no model_id and no connection to read the default model from.
    monkeypatch.delenv("AIRFLOW_CONN_BASETEN_DEFAULT", raising=False)
    predict = PredictOperator(task_id="predict", model_inputs="/tmp/in.jsonl", output_path="/tmp/out.jsonl")
    assert predict.get_openlineage_facets_on_complete(None) is None
    assert "OpenLineage: no datasets for task predict" in caplog.text + capsys.readouterr().out

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a lineage bug")

    for name in ("predict_lineage", "environment_lineage", "training_lineage", "deployment_lineage"):
        monkeypatch.setattr(_lineage, name, broken)
    operators = [
        PredictOperator(task_id="p", model_id="m", model_inputs="/tmp/in.jsonl"),
        PromoteDeploymentOperator(task_id="promote", deployment_id="d", model_id="m"),
        CreateTrainingJobOperator(task_id="train", training_project_id="p", image={"base_image": "x"}),
        DeployModelOperator(task_id="deploy", model_name="m", truss_dir="/tmp", environment="production"),
    ]
    for op in operators:
        assert op.get_openlineage_facets_on_complete(None) is None, op.task_id
    logged = caplog.text + capsys.readouterr().out  # the task logger writes through structlog
    assert logged.count("a lineage bug") == len(operators)
