"""Each operator's ``get_openlineage_facets_on_complete`` after a real run against the emulator, including
the task resumed after a deferral (a fresh operator object that only saw the trigger's event)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage")

from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
from airflow_provider_baseten.operators.inference import PredictOperator
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
from tests.dag_support import context
from tests.integration import test_deployment_operators as shared
from tests.integration.test_deployment_operators import FAST, MODEL
from tests.integration.test_training_operators import IMAGE, PROJECT

conn = shared.conn  # the emulator-backed connection fixture


def _ids(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def test_in_memory_batch_reports_the_model_only(conn: Any) -> None:
    op = PredictOperator(task_id="p", model_inputs=[{"i": i} for i in range(3)], deployment_id="dep1prod")
    op.execute(context())
    got = op.get_openlineage_facets_on_complete(None)
    assert _ids(got.inputs) == [("baseten", f"model/{MODEL}/deployments/dep1prod")]  # the connection's model
    assert got.outputs == []


def test_resumed_batch_counts_every_line_of_the_output(conn: Any, tmp_path: Path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(f'{{"i": {i}}}\n' for i in range(7)))
    PredictOperator(task_id="p", model_inputs=str(src), output_path=str(out)).execute(context())
    op = PredictOperator(task_id="p", model_inputs=str(src), output_path=str(out), resume=True)
    op.execute(context())  # nothing left to run: all 7 skipped
    (written,) = op.get_openlineage_facets_on_complete(None).outputs
    assert written.outputFacets["outputStatistics"].rowCount == len(out.read_text().splitlines()) == 7


def test_training_and_promotion_resumed_from_the_event_alone(conn: Any) -> None:
    """After a deferral, ``execute_complete`` runs on an operator that never ran ``execute``."""
    job = CreateTrainingJobOperator(task_id="t", training_project_id=PROJECT, image=IMAGE, **FAST)
    event = {"status": "success", "message": "done", "training_project_id": PROJECT, "training_job_id": "j42"}
    job.execute_complete(context(), event)
    assert _ids(job.get_openlineage_facets_on_complete(None).outputs) == [
        ("baseten", f"training_project/{PROJECT}/jobs/j42")
    ]

    promote = PromoteDeploymentOperator(task_id="p", deployment_id="development", environment="staging", **FAST)
    assert promote.get_openlineage_facets_on_complete(None).outputs == []  # nothing known yet
    event = {"status": "success", "message": "done", "model_id": MODEL, "environment": "staging", "deployment_id": "d7"}
    promote.execute_complete(context(), event)
    got = promote.get_openlineage_facets_on_complete(None)
    assert _ids(got.inputs) == [("baseten", f"model/{MODEL}/deployments/d7")]
    assert _ids(got.outputs) == [("baseten", f"model/{MODEL}/environments/staging")]
    assert "lifecycleStateChange" in got.outputs[0].facets


def test_a_noop_promotion_still_reports_the_environment(conn: Any) -> None:
    op = PromoteDeploymentOperator(task_id="p", deployment_id="dep3stag", environment="staging", model_id=MODEL)
    op.execute(context())
    assert _ids(op.get_openlineage_facets_on_complete(None).outputs) == [
        ("baseten", f"model/{MODEL}/environments/staging")
    ]


def test_a_batch_that_failed_part_way_reports_its_files_without_counts(conn: Any, tmp_path: Path) -> None:
    """What the listener gets for a failed task (no ``on_failure`` method: it calls ``on_complete``): the files
    and the model, no row count it cannot vouch for, and no exception of its own."""
    from airflow_provider_baseten.exceptions import BasetenBatchError

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join('{"fail": true}\n' if i == 2 else f'{{"i": {i}}}\n' for i in range(5)))
    op = PredictOperator(task_id="p", model_inputs=str(src), output_path=str(out), on_error="fail")
    with pytest.raises(BasetenBatchError):
        op.execute(context())
    got = op.get_openlineage_facets_on_complete(None)
    assert _ids(got.inputs) == [("file", str(src)), ("baseten", f"model/{MODEL}/environments/production")]
    assert _ids(got.outputs) == [("file", str(out))]
    assert got.inputs[0].inputFacets == {} and got.outputs[0].outputFacets == {}
