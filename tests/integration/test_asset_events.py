"""The operators' default outlets in real DAG runs (``dag.test()``) on the emulator: the asset events Airflow
recorded in its metadata DB, with their extras."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, Asset, AssetAlias

from airflow_provider_baseten import assets
from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
from airflow_provider_baseten.operators.inference import PredictOperator
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
from tests.dag_support import run_dag, task_states
from tests.integration import test_deployment_operators as shared

START = datetime(2026, 1, 1)
MODEL = "echo1234"  # seeded: production dep1prod, development dep2devl, staging dep3stag
FAST = {"poke_interval": 0.02, "timeout": 60}
IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}


conn = shared.conn  # baseten_default on the emulator, its clock 200x real time


def events(run: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(asset uri, extra)`` of every asset event the run's tasks emitted, as Airflow stored them."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent).where(AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id)
        ).all()
        return [(row.asset.uri, dict(row.extra or {})) for row in rows]


@pytest.mark.parametrize("deferrable", [False, True], ids=["inline", "deferred"])
def test_promote_emits_the_environment_asset_with_its_extras(conn: Any, deferrable: bool) -> None:
    new = conn.create_deployment(MODEL, name="v3")["id"]
    with DAG(f"t_asset_promote_{deferrable}", schedule=None, start_date=START) as dag:
        op = PromoteDeploymentOperator(
            task_id="promote", deployment_id=new, model_id=MODEL, environment="staging", deferrable=deferrable, **FAST
        )
    assert op.outlets == [assets.environment_asset(MODEL, "staging")]
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    [(uri, extra)] = events(run)
    assert uri == f"baseten://model/{MODEL}/environments/staging"
    assert extra["deployment_id"] == new and extra["previous_deployment_id"] == "dep3stag"
    assert extra["environment"] == "staging" and extra["noop"] is False and extra["serving"] is True
    assert datetime.fromisoformat(extra["promoted_at"]).tzinfo is not None


def test_a_noop_promotion_emits_with_noop_true(conn: Any) -> None:
    with DAG("t_asset_noop", schedule=None, start_date=START) as dag:
        PromoteDeploymentOperator(task_id="promote", deployment_id="dep1prod", model_id=MODEL, **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    assert conn.counters()["requests"].get("promote_to_environment", 0) == 0  # nothing was promoted
    [(uri, extra)] = events(run)
    assert uri == f"baseten://model/{MODEL}/environments/production"
    assert extra["noop"] is True and extra["deployment_id"] == extra["previous_deployment_id"] == "dep1prod"


def test_a_templated_model_emits_through_the_alias(conn: Any) -> None:
    with DAG("t_asset_alias", schedule=None, start_date=START, params={"model": MODEL}) as dag:
        op = PromoteDeploymentOperator(
            task_id="promote", deployment_id="development", model_id="{{ params.model }}", environment="staging", **FAST
        )
    assert op.outlets == [AssetAlias(assets.ENVIRONMENT_ALIAS)]
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    [(uri, extra)] = events(run)
    assert uri == f"baseten://model/{MODEL}/environments/staging"
    assert extra["deployment_id"] == "dep2devl" and extra["previous_deployment_id"] == "dep3stag"


def test_a_completed_training_job_emits_its_asset_and_a_failed_one_nothing(conn: Any) -> None:
    project = next(iter(conn.state.projects))
    with DAG("t_asset_training", schedule=None, start_date=START) as dag:
        CreateTrainingJobOperator(task_id="train", training_project_id=project, image=IMAGE, name="ok", **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"train": "success"}
    job = run.get_task_instance("train").xcom_pull(task_ids="train")
    [(uri, extra)] = events(run)
    assert uri == f"baseten://training_project/{project}/jobs/{job}"
    assert extra["training_job_id"] == job and extra["status"] == "TRAINING_JOB_COMPLETED"

    with DAG("t_asset_training_nowait", schedule=None, start_date=START) as dag2:
        CreateTrainingJobOperator(
            task_id="train", training_project_id=project, image=IMAGE, wait_for_completion=False, **FAST
        )
    run2 = run_dag(dag2)
    assert task_states(run2) == {"train": "success"}
    assert events(run2) == []  # started, not completed: no event


def test_a_batch_output_file_is_an_outlet(conn: Any, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with DAG("t_asset_batch", schedule=None, start_date=START) as dag:
        op = PredictOperator(
            task_id="batch", model_id=MODEL, model_inputs=[{"i": i} for i in range(5)], output_path=str(out)
        )
    assert op.outlets == [Asset(f"file://{out}")]
    run = run_dag(dag)
    assert task_states(run) == {"batch": "success"}
    assert len(out.read_text().splitlines()) == 5
    [(uri, extra)] = events(run)
    assert uri == f"file://{out}"
    assert extra == {"total": 5, "succeeded": 5, "failed": 0, "skipped": 0, "model_id": MODEL, "path": f"file://{out}"}
    assert conn.api_key not in json.dumps(extra)


def test_a_promotion_not_waited_for_says_serving_false(conn: Any) -> None:
    new = conn.create_deployment(MODEL, name="v4", status="ACTIVE")["id"]
    with DAG("t_asset_nowait", schedule=None, start_date=START) as dag:
        PromoteDeploymentOperator(
            task_id="promote", deployment_id=new, model_id=MODEL, wait_for_completion=False, **FAST
        )
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    [(uri, extra)] = events(run)
    assert uri == f"baseten://model/{MODEL}/environments/production"
    assert extra["deployment_id"] == new and extra["previous_deployment_id"] == "dep1prod"
    assert extra["serving"] is False and extra["noop"] is False


def test_a_retry_that_finds_the_job_completed_emits_its_asset(conn: Any) -> None:
    """The durable path (Airflow 3.3): an earlier try's job already COMPLETED, so this try only reports it."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from tests.dag_support import FakeTI

    project = next(iter(conn.state.projects))
    job = conn.hook().create_training_job(project, {"image": IMAGE, "name": "earlier-try"}).id
    conn.advance(3600)
    op = CreateTrainingJobOperator(task_id="train", training_project_id=project, image=IMAGE)
    ctx = {"task": op, "ti": FakeTI(), "outlet_events": OutletEventAccessors()}
    ref = {"training_project_id": project, "training_job_id": job}
    assert op.is_job_succeeded(op.get_job_status(ref, ctx))
    assert op.get_job_result(ref, ctx) == job
    [added] = ctx["outlet_events"][AssetAlias(assets.TRAINING_JOB_ALIAS)].asset_alias_events
    assert added.dest_asset_key.uri == f"baseten://training_project/{project}/jobs/{job}"
    assert added.extra["status"] == "TRAINING_JOB_COMPLETED" and added.extra["training_job_id"] == job


def test_a_promotion_answered_502_after_it_committed_emits_one_real_change(conn: Any) -> None:
    """The promote call commits, then the client gets a 502: one promote on the server, one event, and the
    extra names the real previous deployment (not a no-op: the promotion was this task's)."""
    from airflow_provider_baseten.emulator.config import FaultRule

    new = conn.create_deployment(MODEL, name="v3")["id"]
    conn.advance(600)  # ACTIVE
    conn.set_faults([FaultRule("502", endpoints=["promote_to_environment"], times=1, after=True)])
    with DAG("t_asset_promote_502_after", schedule=None, start_date=START) as dag:
        PromoteDeploymentOperator(task_id="promote", deployment_id=new, model_id=MODEL, environment="staging", **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"promote": "success"}
    assert conn.counters()["faults"].get("502", 0) == 1
    sent = [(r["status"], r["fault"]) for r in conn.requests() if r["endpoint"] == "promote_to_environment"]
    # The server acted once (200, whose answer the client got as a 502); the retry was refused (400).
    assert sent == [(200, None), (502, "502"), (400, None)]
    [(uri, extra)] = events(run)
    assert uri == f"baseten://model/{MODEL}/environments/staging"
    assert extra["deployment_id"] == new and extra["previous_deployment_id"] == "dep3stag"
    assert extra["noop"] is False


def test_runs_with_different_output_paths_leave_one_asset_and_no_warnings(conn: Any, tmp_path: Path) -> None:
    """A templated output path is one asset (its pattern), however many runs write files: ``airflow assets
    list`` stays bounded, and Airflow logs no "AssetModel ... not found" / "inactive AssetModel" warnings."""
    import structlog
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    template = "{{ params.dir }}/out-{{ run_id }}.jsonl"
    with DAG("t_asset_batch_pattern", schedule=None, start_date=START, params={"dir": str(tmp_path)}) as dag:
        op = PredictOperator(task_id="batch", model_id=MODEL, model_inputs=[{"i": 1}, {"i": 2}], output_path=template)
    assert op.outlets == [assets.output_asset(template)]

    def count() -> int:
        with create_session() as session:
            return int(session.scalar(select(func.count()).select_from(AssetModel)) or 0)

    run_dag(dag)  # registers the DAG's assets; the count below is what further runs add
    before = count()
    paths = []
    with structlog.testing.capture_logs() as logged:
        for _ in range(3):
            run = run_dag(dag)
            assert task_states(run) == {"batch": "success"}
            [(uri, extra)] = events(run)
            assert uri == f"x-baseten-output:{template}"
            assert extra["succeeded"] == 2 and extra["path"].startswith(f"file://{tmp_path}/out-")
            paths.append(extra["path"])
    assert len(set(paths)) == 3 and len(list(tmp_path.glob("out-*.jsonl"))) == 4  # a new file each run
    assert count() == before  # ... and no new asset
    warned = [e["event"] for e in logged if e.get("log_level") == "warning" and "AssetModel" in str(e["event"])]
    assert warned == []


def test_the_old_per_path_asset_is_an_opt_in(conn: Any, tmp_path: Path) -> None:
    template = "{{ params.dir }}/out-{{ run_id }}.jsonl"
    with DAG("t_asset_batch_alias", schedule=None, start_date=START, params={"dir": str(tmp_path)}) as dag:
        PredictOperator(
            task_id="batch",
            model_id=MODEL,
            model_inputs=[{"i": 1}],
            output_path=template,
            outlets=[AssetAlias(assets.OUTPUT_ALIAS)],
        )
    run = run_dag(dag)
    [(uri, extra)] = events(run)
    [written] = tmp_path.glob("out-*.jsonl")
    assert uri == extra["path"] == f"file://{written}"
