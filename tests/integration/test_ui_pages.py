"""The Baseten pages (airflow_provider_baseten.ui), rendered by FastAPI's TestClient against the emulator.

Airflow's auth dependencies are replaced here (the real ones, with a real API server and browser, run in
``make ui-check``: tests/e2e/test_ui_pages.py), except for the 401 check, which needs no database.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from airflow_provider_baseten import xcom
from airflow_provider_baseten.loss import LossPoint, write_series
from airflow_provider_baseten.ui import data
from airflow_provider_baseten.ui.app import create_app
from airflow_provider_baseten.ui.data import TaskRecord

IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}
HOSTILE = "<script>alert(1)</script>"
TI_PARAMS = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": "-1"}


class User:
    def get_id(self) -> str:
        return "tester"


def client_for(records: dict[str, TaskRecord], emu: Any = None, connections: list[str] | None = None) -> TestClient:
    app = create_app(
        load_task=lambda dag_id, run_id, task_id, map_index: records.get(task_id),
        hook_factory=lambda conn_id: emu.hook(),
        connections=lambda: connections or [],
    )
    for dep in (app.state.read_ti, app.state.see_plugins):
        app.dependency_overrides[dep] = lambda: None
    app.dependency_overrides[app.state.get_user] = User
    return TestClient(app)


def record(task_id: str = "t", **xcoms: Any) -> TaskRecord:
    return TaskRecord("d", "r", task_id, -1, operator="SomeOperator", state="success", xcoms=xcoms)


def assert_no_secret(text: str, emu: Any) -> None:
    assert emu.api_key not in text
    assert "X-Amz-" not in text and "Signature=" not in text  # no presigned URL


@pytest.fixture
def emu(emulator: Any) -> Iterator[Any]:
    emulator.set_time_scale(0)  # the test moves the clock
    yield emulator


def test_training_tab_chart_equals_the_logged_losses(emu: Any) -> None:
    hook = emu.hook()
    project = next(iter(emu.state.projects))
    job = hook.create_training_job(project, {"image": IMAGE, "name": HOSTILE})
    emu.advance(3600)
    rec = record(
        **{
            xcom.CONN_ID: "baseten_default",
            xcom.TRAINING_PROJECT_ID: project,
            xcom.TRAINING_JOB_ID: job.id,
            xcom.TRAINING_JOB_URL: "https://app.baseten.co/training/x",
            "baseten_cost": {"usd": 1.25, "estimated": True, "minutes": 3.0, "instance_type": "H100", "source": "x"},
        }
    )
    answer = client_for({"t": rec}, emu).get("/ti", params=TI_PARAMS)
    assert answer.status_code == 200, answer.text
    chart = json.loads(re.search(r'<script type="application/json" id="loss-data">(.*?)</script>', answer.text)[1])
    # the emulator logs "step N/100 loss=2/(i+1)" for i = 1..10
    assert chart["steps"] == [i * 10 for i in range(1, 11)]
    assert chart["loss"] == [round(2.0 / (i + 1), 4) for i in range(1, 11)]
    assert HOSTILE not in answer.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert "$1.25" in answer.text and "TRAINING_JOB_COMPLETED" in answer.text
    assert 'id="checkpoints"' in answer.text
    assert_no_secret(answer.text, emu)


def test_a_hostile_log_line_renders_as_text(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.state.training_fail = True
    hook = emu.hook()
    project = next(iter(emu.state.projects))
    job = hook.create_training_job(project, {"image": IMAGE, "name": "j"})
    emu.advance(3600)
    lines = hook.get_training_job_logs(project, job.id)
    lines[-2].message = HOSTILE  # the ERROR line a user's script printed
    monkeypatch.setattr(
        type(hook), "get_training_job_logs", lambda self, *a, **k: lines if not k.get("start_epoch_millis") else []
    )
    rec = record(**{xcom.CONN_ID: "c", xcom.TRAINING_PROJECT_ID: project, xcom.TRAINING_JOB_ID: job.id})
    text = client_for({"t": rec}, emu).get("/ti", params=TI_PARAMS).text
    assert 'id="errors"' in text
    assert HOSTILE not in text and "&lt;script&gt;" in text


def ended_job_with_series(emu: Any, name: str, series_path: str, steps: int) -> tuple[Any, str, Any, TaskRecord]:
    """A training job run to its end on the emulator, and a task record whose loss XCom names ``series_path``:
    (hook, project, job, record)."""
    hook = emu.hook()
    project = next(iter(emu.state.projects))
    job = hook.create_training_job(project, {"image": IMAGE, "name": name})
    emu.advance(3600)
    rec = record(
        **{
            xcom.CONN_ID: "c",
            xcom.TRAINING_PROJECT_ID: project,
            xcom.TRAINING_JOB_ID: job.id,
            "baseten_loss": {"series_path": series_path, "steps": steps},
        }
    )
    return hook, project, job, rec


def test_a_100000_point_series_is_downsampled_on_the_server(emu: Any, tmp_path: Path) -> None:
    series = tmp_path / "loss.csv"
    # the layout loss.write_series writes (checked against it in test_saved_series_layout)
    series.write_text("step,loss,epoch\n" + "".join(f"{i},{1.0 / (i + 1)!r},\n" for i in range(100_000)))
    _hook, _project, _job, rec = ended_job_with_series(emu, "long", str(series), 100_000)
    client = client_for({"t": rec}, emu)
    first = client.get("/ti", params=TI_PARAMS)  # the cold load is timed by make ui-check, on a real API server
    started = time.perf_counter()
    answer = client.get("/ti", params=TI_PARAMS)  # the series file is read once per version
    took = time.perf_counter() - started
    assert answer.text == first.text
    chart = json.loads(re.search(r'id="loss-data">(.*?)</script>', answer.text)[1])
    assert chart["total"] == 100_000
    assert len(chart["steps"]) <= data.MAX_POINTS
    assert chart["steps"][0] == 0 and chart["steps"][-1] == 99_999
    assert len(answer.content) < 200_000
    assert took < 1.0, took


@pytest.mark.parametrize("series_path", ["/dev/zero", "/no/such/worker-local/loss.csv", "/etc/hostname"])
def test_a_series_path_the_server_cannot_use_falls_back_to_the_logs(emu: Any, series_path: str) -> None:
    """The path comes from an XCom: a worker's local file, an endless device or some other file is not read
    unbounded and does not break the tab; the chart comes from the job's logs instead."""
    hook, project, job, rec = ended_job_with_series(emu, "elsewhere", series_path, 100)
    answer = client_for({"t": rec}, emu).get("/ti", params=TI_PARAMS)
    assert answer.status_code == 200
    chart = json.loads(re.search(r'id="loss-data">(.*?)</script>', answer.text)[1])
    logged = [p.loss for p in data.loss_series(line.message for line in hook.get_training_job_logs(project, job.id))]
    assert logged and chart["loss"] == logged  # the emulator's logged losses


def test_batch_tab_counts_and_failed_items_with_errors(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(
        "\n".join(
            json.dumps({"index": i, "error": HOSTILE} if i in (3, 7) else {"index": i, "output": i}) for i in range(10)
        )
        + "\n"
    )
    summary = {
        "total": 10,
        "succeeded": 8,
        "failed": 2,
        "skipped": 0,
        "elapsed_seconds": 2.0,
        "output_path": str(out),
        "failed_indices": [3, 7],
    }
    text = client_for({"t": record(return_value=summary)}).get("/ti", params=TI_PARAMS).text
    assert '<td id="succeeded">8</td>' in text and '<td id="failed">2</td>' in text
    assert '<td id="throughput">5.0 items/s</td>' in text
    assert text.count("<tr><td>3</td>") == 1 and text.count("<tr><td>7</td>") == 1
    assert HOSTILE not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_deploy_tab_shows_status_environment_and_autoscaling(emu: Any) -> None:
    hook = emu.hook()
    model = hook.list_models()[0]
    env = hook.get_environment("production", model_id=model.id)
    dep = env.current_deployment
    rec = record(
        **{
            xcom.CONN_ID: "c",
            xcom.DEPLOYMENT_ID: dep.id,
            xcom.MODEL_ID: model.id,
            xcom.PREVIOUS_DEPLOYMENT_ID: "old1",
            xcom.MODEL_URL: f"https://app.baseten.co/models/{model.id}/overview",
        }
    )
    text = client_for({"t": rec}, emu).get("/ti", params=TI_PARAMS).text
    assert f'<td id="deployment-status">{dep.status}</td>' in text
    assert '<td id="env-before">old1</td>' in text and f'<td id="env-after">{dep.id}</td>' in text
    assert 'id="autoscaling"' in text
    assert_no_secret(text, emu)


def test_async_tab_shows_each_request_state(emu: Any) -> None:
    hook = emu.hook()
    model = hook.list_models()[0]
    ids = [hook.async_predict({"x": i}, model_id=model.id).request_id for i in range(3)]
    rec = record(
        **{
            xcom.CONN_ID: "c",
            xcom.REQUEST_IDS: ids,
            xcom.MODEL_URL: f"https://app.baseten.co/models/{model.id}/overview",
        }
    )
    text = client_for({"t": rec}, emu).get("/ti", params=TI_PARAMS).text
    assert all(i in text for i in ids)
    assert "3 requests" in text
    assert_no_secret(text, emu)


def test_a_non_baseten_task_gets_a_one_line_empty_state() -> None:
    client = client_for({"t": record(return_value=42)})
    text = client.get("/ti", params=TI_PARAMS).text
    assert 'id="empty"' in text and "not a Baseten task" in text
    assert 'id="empty"' in client.get("/ti", params={**TI_PARAMS, "task_id": "missing"}).text


def test_nav_page_lists_models_environments_and_jobs(emu: Any) -> None:
    hook = emu.hook()
    project = next(iter(emu.state.projects))
    hook.create_training_job(project, {"image": IMAGE, "name": "nav-job"})
    app = create_app(hook_factory=lambda conn_id: emu.hook(), connections=lambda: ["mine", "theirs"])
    app.dependency_overrides[app.state.see_plugins] = lambda: None
    app.dependency_overrides[app.state.get_user] = User
    app.state.may_read_connection = lambda user, conn_id: conn_id == "mine"  # the user may not read "theirs"
    text = TestClient(app).get("/").text
    assert "Connection mine" in text
    assert "theirs" not in text
    assert "nav-job" in text and "production" in text
    assert "https://app.baseten.co/models/" in text
    assert_no_secret(text, emu)


def test_every_route_needs_a_token() -> None:
    client = TestClient(create_app(load_task=lambda *a: None))
    for path in ("/ti?dag_id=d&run_id=r&task_id=t&map_index=-1", "/", "/static/baseten.js"):
        assert client.get(path).status_code == 401, path


def test_static_files_have_their_mime_type_and_cache_control() -> None:
    app = create_app()
    app.dependency_overrides[app.state.get_user] = User
    client = TestClient(app)
    js = client.get("/static/uPlot.iife.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert js.headers["cache-control"] == "no-cache"
    assert client.get("/static/uPlot.min.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/static/app.py").status_code == 404


def test_importing_the_plugin_builds_nothing_and_touches_no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process (fast): re-import the plugin with the database and create_app booby-trapped."""
    import importlib

    import sqlalchemy.engine

    import airflow_provider_baseten.plugin as plugin
    import airflow_provider_baseten.ui.app as ui_app

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("I/O or app build at import")

    monkeypatch.setattr(sqlalchemy.engine.Engine, "connect", boom)
    monkeypatch.setattr(ui_app, "create_app", boom)
    fresh = importlib.reload(plugin)
    importlib.reload(importlib.import_module("airflow_provider_baseten.ui"))
    apps = {a["url_prefix"]: a["app"] for a in fresh.BasetenPlugin.fastapi_apps}
    assert isinstance(apps["/baseten"], fresh.LazyASGIApp) and apps["/baseten"]._app is None
    views = {v["destination"]: v for v in fresh.BasetenPlugin.external_views}
    assert views["task_instance"]["href"] == (
        "/baseten/ti?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}"
    )
    assert views["task_instance"]["url_route"] == "baseten" and views["nav"]["href"] == "/baseten/"


@pytest.mark.airflow_e2e
def test_a_fresh_interpreter_imports_the_plugin_without_io() -> None:
    """The same in a fresh interpreter, where nothing was imported before (slow: Airflow's own import)."""
    code = (
        "import sys, sqlalchemy.engine\n"
        "def boom(*a, **k): raise SystemExit('database connection attempted')\n"
        "sqlalchemy.engine.Engine.connect = boom\n"
        "import airflow_provider_baseten.ui.app as ui_app\n"
        "built = []\n"
        "real = ui_app.create_app\n"
        "ui_app.create_app = lambda **k: built.append(1) or real(**k)\n"
        "import airflow_provider_baseten.plugin as p, airflow_provider_baseten.ui\n"
        "assert not built, 'create_app ran at import'\n"
        "assert all(a['app']._app is None for a in p.BasetenPlugin.fastapi_apps)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1:] == ["ok"], proc.stderr[-2000:]


def test_a_deployment_wait_records_each_status_it_saw_once(emu: Any) -> None:
    import asyncio

    from airflow_provider_baseten.triggers.baseten import DeploymentStatusTrigger

    model = emu.hook().list_models()[0]
    dep = emu.create_deployment(model.id, "timeline")
    trigger = DeploymentStatusTrigger(conn_id="unused", model_id=model.id, deployment_id=dep["id"], poll_interval=0.01)
    trigger._hook_obj = emu.hook()

    async def run() -> Any:
        for _ in range(20):
            result = await trigger.check(trigger._hook_obj)
            if result is not None:
                return trigger.with_timeline(result)
            emu.advance(0.5)  # two checks per status: each change is recorded once
        raise AssertionError("never ACTIVE")

    event = asyncio.run(run())
    assert [e["status"] for e in event["timeline"]] == ["BUILDING", "DEPLOYING", "ACTIVE"]


def test_the_operator_records_the_timeline_and_the_tab_shows_it(emu: Any) -> None:
    from airflow_provider_baseten.operators.deployment import ActivateDeploymentOperator

    pushed: dict[str, Any] = {}

    class TI:
        def xcom_push(self, key: str, value: Any) -> None:
            pushed[key] = value

    op = ActivateDeploymentOperator(task_id="a", model_id="m", deployment_id="d")
    timeline = [{"at": 0, "status": "BUILDING"}, {"at": 5, "status": HOSTILE}, {"at": 9, "status": "ACTIVE"}]
    op._finish({"ti": TI()}, {"status": "success", "message": "ok", "timeline": timeline})  # type: ignore[arg-type]
    assert pushed[xcom.STATUS_TIMELINE] == timeline
    rec = record(**{xcom.CONN_ID: "c", xcom.MODEL_URL: "https://app.baseten.co/models/m/overview", **pushed})
    text = client_for({"t": rec}, emu).get("/ti", params=TI_PARAMS).text
    states = re.findall(r'<li data-status="([^"]*)"', text)
    assert states == ["BUILDING", "&lt;script&gt;alert(1)&lt;/script&gt;", "ACTIVE"]


def test_saved_series_layout(tmp_path: Path) -> None:
    """The tab reads the file loss.write_series writes (its own fast reader, same points)."""
    path = tmp_path / "s.csv"
    points = [LossPoint(step=1, loss=0.5, epoch=1.0), LossPoint(step=2, loss=float("nan"), epoch=None)]
    write_series(points, str(path))
    got = data.series_from_file(str(path))
    assert [(p.step, p.loss) for p in got][:1] == [(1, 0.5)] and len(got) == 2
    assert data.chart_points(got) == {"steps": [1], "loss": [0.5], "total": 1}


class PushedTI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_operators_and_sensors_record_their_connection_and_what_their_wait_saw() -> None:
    from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
    from airflow_provider_baseten.sensors.training import TrainingJobSensor

    timeline = [{"at": 1.0, "status": "TRAINING_JOB_RUNNING"}, {"at": 2.0, "status": "TRAINING_JOB_COMPLETED"}]
    for task in (
        CreateTrainingJobOperator(task_id="op", training_project_id="p", image={}, baseten_conn_id="mine"),
        TrainingJobSensor(task_id="sensor", training_project_id="p", training_job_id="j", baseten_conn_id="mine"),
    ):
        ti = PushedTI()
        task.pre_execute({"ti": ti})  # type: ignore[arg-type]
        assert ti.pushed == {xcom.CONN_ID: "mine"}
        failed = {"status": "failed", "message": "no", "timeline": timeline, "job_status": "X"}
        with pytest.raises(Exception, match="no"):
            task._finish({"ti": ti}, failed)  # type: ignore[attr-defined]
        assert ti.pushed[xcom.STATUS_TIMELINE] == timeline  # recorded before the failure is raised


def test_a_long_wait_keeps_its_first_and_newest_statuses() -> None:
    from airflow_provider_baseten.triggers._poll import MAX_TIMELINE
    from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger

    trigger = TrainingJobTrigger(conn_id="c", training_project_id="p", training_job_id="j")
    for i in range(3 * MAX_TIMELINE):
        trigger.observe("A" if i % 2 else "B")
        trigger.observe("A" if i % 2 else "B")  # the same status again: not a change
    statuses = [e["status"] for e in trigger._timeline]
    assert len(statuses) == MAX_TIMELINE
    assert statuses[0] == "B" and statuses[-1] == "A"
