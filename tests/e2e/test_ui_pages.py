"""The Baseten pages on a real ``airflow api-server``, seen by headless Chromium (``make ui-check``).

1. The training, deploy and batch example DAGs run (``airflow dags test``) against the emulator, in a
   private Airflow home; a fourth tiny DAG records a 100,000-step loss series for the trained job.
2. ``airflow api-server`` starts on 127.0.0.1 with SimpleAuthManager (an admin and an ``outsider`` who may
   not read ``baseten_deploy``: tests/e2e/_ui_auth.py) and the provider's plugin from its entry point.
3. Over HTTP: no token is 401, the outsider's request for the hidden Dag is 403, no response holds the API
   key or a presigned URL.
4. In Chromium (scripts/ui-pages.mjs): each tab and the nav page render; the chart's points are the loss
   values in the emulator's logs; the deployment's status history is the emulator's sequence; a model named
   ``<script>...`` shows as text and runs nothing; the 100,000-step tab loads in under a second.
   Screenshots go to docs/_static/screenshots/ (commit them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from airflow_provider_baseten.emulator import BasetenEmulator
from airflow_provider_baseten.emulator.config import Durations
from airflow_provider_baseten.loss import parse_loss_line
from dev.demo import API_KEY, DEMO_PROJECT, DagRunner, write_inputs, xcom
from tests.e2e._support import EXAMPLE_DAGS, ROOT, Component, airflow_env, free_port, migrate, wait_http

pytestmark = pytest.mark.airflow_e2e

SHOTS = ROOT / "docs" / "_static" / "screenshots"
PLAYWRIGHT_DIR = ROOT / "build" / "ui-check" / "node_modules"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HOSTILE = "<script>alert('baseten')</script>"
DAGS = ("baseten_train_then_promote", "baseten_deploy", "baseten_batch_inference", "ui_check_long_series")
#: An uploaded deployment's statuses on the emulator (emulator/handlers/deploy.py), each lasting 3 s here.
UPLOAD_STATUSES = ["BUILDING", "DEPLOYING", "LOADING_MODEL", "ACTIVE"]
PROMOTION_PHASES = ["RELEASING", "RAMPING_UP", "RAMPING_DOWN", "SUCCEEDED"]


def browser_ready() -> bool:
    return shutil.which("node") is not None and Path(CHROMIUM).exists() and PLAYWRIGHT_DIR.is_dir()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The emulator, the example runs in a private Airflow, and its API server: what the checks need."""
    if not browser_ready() and not os.environ.get("BASETEN_UI_CHECK"):
        pytest.skip("node, chromium or playwright-core missing (make ui-check installs them)")
    work = tmp_path_factory.mktemp("ui-pages")
    home, dags, data, logs = work / "home", work / "dags", work / "data", work / "logs"
    for d in (home, dags, data / "output", logs):
        d.mkdir(parents=True)
    for name in DAGS[:3]:
        shutil.copy(EXAMPLE_DAGS / f"{name}.py", dags)
    shutil.copytree(EXAMPLE_DAGS / "truss", dags / "truss")  # the deploy example's Truss directory
    shutil.copy(ROOT / "tests" / "e2e" / "dags" / "ui_check_long_series.py", dags)
    write_inputs(data / "input.jsonl", 200)
    with BasetenEmulator(api_key=API_KEY, time_scale=1.0) as emu:
        # Real time, each status long enough for a 1 s poll to see it. BUILDING starts at the create, before the
        # deploy task's first check: 10 s, so a slow task start on a loaded machine still sees it.
        emu.core.config.durations = Durations(
            build=10.0, deploy=3.0, loading_model=3.0, training_pending=1.0, training_created=1.0,
            training_deploying=1.0, training_running=4.0, checkpoint_sync=1.0, promotion_releasing=2.0,
            promotion_ramping=2.0,
        )  # fmt: skip
        emu.state.models[emu.model_id].name = HOSTILE  # the nav page must show it as text
        port = free_port()
        env = airflow_env(
            home,
            port,
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__CORE__AUTH_MANAGER="tests.e2e._ui_auth.OneDagHiddenAuthManager",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,outsider:viewer",
            AIRFLOW_CONN_BASETEN_DEFAULT=emu.connection_json(),
            AIRFLOW_VAR_BASETEN_BATCH_INPUT=str(data / "input.jsonl"),
            AIRFLOW_VAR_BASETEN_BATCH_OUTPUT_DIR=str(data / "output"),
            AIRFLOW_VAR_BASETEN_TRAINING_PROJECT=DEMO_PROJECT,
            AIRFLOW_VAR_BASETEN_SKIP_APPROVAL="true",
            BASETEN_EXAMPLE_POLL_SECONDS="1",
            UI_CHECK_SERIES=str(data / "loss.csv"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        migrate(env)
        runner = DagRunner(env, logs)
        try:
            for dag_id in DAGS:
                ok, seconds, log = runner.run(dag_id)
                assert ok, f"{dag_id} failed after {seconds:.0f} s:\n" + log.read_text()[-4000:]
        finally:
            runner.close()
        server = Component("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port)], env, logs)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/api/v2/monitor/health", 240, [server])
            passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
            tokens = {
                user: httpx.post(
                    f"{base}/auth/token", json={"username": user, "password": passwords[user]}, timeout=60
                ).json()["access_token"]
                for user in ("admin", "outsider")
            }
            yield {"base": base, "emu": emu, "db": home / "airflow.db", "tokens": tokens, "logs": logs}
        finally:
            server.stop()


def ti_path(db: Path, dag_id: str, task_id: str) -> str:
    with sqlite3.connect(db) as conn:
        run_id = conn.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()[0]
    query = httpx.QueryParams({"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": "-1"})
    return f"/baseten/ti?{query}"


def airflow_ti_page(db: Path, dag_id: str, task_id: str) -> str:
    """Airflow's own page of the task instance, on its Baseten tab (``url_route="baseten"``)."""
    with sqlite3.connect(db) as conn:
        run_id = conn.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()[0]
    return f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}/plugin/baseten"


def test_plugin_routes_need_a_token_and_read_access_to_the_dag(site: dict[str, Any]) -> None:
    base, db, tokens = site["base"], site["db"], site["tokens"]
    deploy = ti_path(db, "baseten_deploy", "deploy_truss")
    batch = ti_path(db, "baseten_batch_inference", "predict")
    for path in (deploy, "/baseten/", "/baseten/static/baseten.js"):
        assert httpx.get(base + path, timeout=60).status_code == 401, path
    outsider = {"Authorization": f"Bearer {tokens['outsider']}"}
    assert httpx.get(base + deploy, headers=outsider, timeout=60).status_code == 403
    assert httpx.get(base + batch, headers=outsider, timeout=60).status_code == 200
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    assert httpx.get(base + deploy, headers=admin, timeout=60).status_code == 200
    plugins = httpx.get(f"{base}/api/v2/plugins", headers=admin, timeout=60).json()["plugins"]
    ours = next(p for p in plugins if p["name"] == "baseten")
    assert {v["destination"] for v in ours["external_views"]} == {"task_instance", "nav"}
    assert "/baseten" in {a["url_prefix"] for a in ours["fastapi_apps"]}


def test_pages_in_chromium(site: dict[str, Any]) -> None:
    base, db, emu, tokens = site["base"], site["db"], site["emu"], site["tokens"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = [
        # the sensor that waited for the job: its tab has the loss curve and the statuses it saw
        {"name": "training", "path": ti_path(db, "baseten_train_then_promote", "wait_for_training")},
        {"name": "deploy", "path": ti_path(db, "baseten_deploy", "deploy_truss")},
        {"name": "promote", "path": ti_path(db, "baseten_train_then_promote", "promote_candidate")},
        {"name": "batch", "path": ti_path(db, "baseten_batch_inference", "predict")},
        {"name": "other", "path": ti_path(db, "baseten_batch_inference", "check_inputs")},
        {"name": "nav", "path": "/baseten/"},
        {"name": "long", "path": ti_path(db, "ui_check_long_series", "long_series")},
        # The same tab inside Airflow's own task-instance page (an iframe), and the nav entry's page.
        {"name": "airflow-tab", "path": airflow_ti_page(db, "baseten_deploy", "deploy_truss"), "frame": "/baseten/ti"},
        {"name": "airflow-nav", "path": "/plugin/baseten-overview", "frame": "/baseten/"},
    ]
    for p in pages:
        if p["name"] != "long":
            p["shot"] = str(SHOTS / f"tab-{p['name']}.png")
    spec = site["logs"] / "pages.json"
    spec.write_text(json.dumps(pages))
    proc = subprocess.run(
        ["node", str(ROOT / "scripts" / "ui-pages.mjs"), base, tokens["admin"], str(spec)],
        cwd=ROOT,
        env={**os.environ, "CHROMIUM": CHROMIUM, "PLAYWRIGHT_CORE_DIR": str(PLAYWRIGHT_DIR)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = {p["name"]: p for p in json.loads(proc.stdout.strip().splitlines()[-1])}
    assert all(p["status"] == 200 and p["alerts"] == 0 for p in shown.values()), shown

    # The chart's points are the loss values of the emulator's logs, read with the same parser.
    project = xcom(db, "baseten_train_then_promote", "create_training_job", "training_project_id")
    job = xcom(db, "baseten_train_then_promote", "create_training_job", "training_job_id")
    lines = emu.hook().get_training_job_logs(project, job)
    logged = [p for p in (parse_loss_line(line.message) for line in lines) if p is not None]
    assert logged, "the emulator logged no loss"
    assert shown["training"]["chart"] == {"steps": [p.step for p in logged], "loss": [p.loss for p in logged]}
    assert shown["training"]["timeline"][-1] == "TRAINING_JOB_COMPLETED"
    assert emu.hook().get_training_job(project, job).current_status == "TRAINING_JOB_COMPLETED"

    # The deployment's status history is the emulator's sequence for an uploaded deployment.
    assert shown["deploy"]["timeline"] == UPLOAD_STATUSES
    deployment = xcom(db, "baseten_deploy", "deploy_truss", "deployment_id")
    model = xcom(db, "baseten_deploy", "deploy_truss", "model_id")
    assert emu.hook().get_deployment(deployment, model_id=model).status == UPLOAD_STATUSES[-1]
    # The promotion's phases in the emulator's order (a 1 s poll may see a 2 s phase once or not at all).
    phases = [s for s in shown["promote"]["timeline"] if not s.startswith("SERVING")]
    assert phases == sorted(phases, key=PROMOTION_PHASES.index) and phases[-1] == "SUCCEEDED", phases

    summary = xcom(db, "baseten_batch_inference", "predict")
    assert f"Succeeded\t{summary['succeeded']}" in shown["batch"]["text"]
    assert "not a Baseten task" in shown["other"]["text"]
    assert shown["airflow-tab"]["timeline"] == UPLOAD_STATUSES  # the tab as Airflow's UI shows it
    assert "Recent training jobs" in shown["airflow-nav"]["text"]

    # A hostile model name is text on the page, not a script.
    assert HOSTILE in shown["nav"]["text"]
    assert shown["nav"]["scripts"] == 2  # uPlot and baseten.js only
    for p in shown.values():
        assert API_KEY not in p["text"] and "X-Amz-Signature" not in p["text"]

    long = shown["long"]
    assert len(long["chart"]["steps"]) <= 2000 and long["chart"]["steps"][-1] == 99_999
    print(f"\n100,000-step tab: {long['loadMs']} ms from navigation to load (chart drawn)")
    (site["logs"] / "load-times.json").write_text(json.dumps({k: v["loadMs"] for k, v in shown.items()}))
    assert long["loadMs"] < 1000, long["loadMs"]


def test_no_response_holds_a_secret(site: dict[str, Any]) -> None:
    base, db, tokens = site["base"], site["db"], site["tokens"]
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    paths = [
        ti_path(db, "baseten_train_then_promote", "create_training_job"),
        ti_path(db, "baseten_deploy", "deploy_truss"),
        ti_path(db, "baseten_batch_inference", "predict"),
        "/baseten/",
    ]
    for path in paths:
        body = httpx.get(base + path, headers=admin, timeout=60).text
        assert API_KEY not in body, path
        assert not re.search(r"X-Amz-(Signature|Credential)|aws_secret_access_key", body), path
        assert tokens["admin"] not in body, path
