"""Issue 21 §1: a create killed mid-flight never makes a second object, in a real Airflow.

One Airflow (api-server, dag-processor, scheduler with LocalExecutor, triggerer; ``tests/e2e/_support.py``)
runs ``chaos_create``: one task per operator that creates something billable, each with ``retries=1``. The
emulator commits each create and then holds its answer (``FaultRule("slow", after=True)``); while it is
held, the test SIGKILLs the task runner. Airflow retries the task. The objects are counted on the emulator:
exactly one each. The async task's inputs: one request each, except the one in flight at the kill (sent again).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from airflow_provider_baseten.emulator import BasetenEmulator
from airflow_provider_baseten.emulator.config import Durations, FaultRule
from tests.chaos._support import until
from tests.chaos.report import Row
from tests.e2e._support import Component, airflow_env, free_port, private_home, running_airflow

pytestmark = [pytest.mark.chaos, pytest.mark.airflow_e2e]

KEY = "chaos-create-key-not-a-secret"
IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}
HOLD = 45.0  # seconds each create's answer is held: the time the test has to find and kill the task runner
ASYNC = ["production_async_predict", "environment_async_predict", "deployment_async_predict"]
TASKS = ("create_training_job", "recreate_training_job", "deploy_model", "deploy_checkpoint", "async_submit")


def _objects(emu: BasetenEmulator, setup_jobs: set[str]) -> dict[str, int]:
    """What each task made, as the server holds it (the async task: requests per input, summed)."""
    with emu.state.lock:
        jobs = [j for j in emu.state.jobs.values() if j.id not in setup_jobs]
        deps = {m.name: len(m.deployments) for m in emu.state.models.values()}
        asyncs = [r for r in emu.state.async_requests.values() if isinstance(r.model_input, dict)]
    return {
        "create_training_job": sum(j.name != "chaos-source" for j in jobs),
        "recreate_training_job": sum(j.name == "chaos-source" for j in jobs),
        "deploy_model": deps.get("chaos-deploy", 0),
        "deploy_checkpoint": deps.get("chaos-ckpt", 0),
        "async_submit": sum(r.model_input.get("case") == "kill-create" for r in asyncs),
    }


def _per_input(emu: BasetenEmulator) -> dict[int, int]:
    """Async requests on the server per input of the async task."""
    counts: dict[int, int] = {}
    with emu.state.lock:
        for r in emu.state.async_requests.values():
            if isinstance(r.model_input, dict) and r.model_input.get("case") == "kill-create":
                counts[r.model_input["i"]] = counts.get(r.model_input["i"], 0) + 1
    return dict(sorted(counts.items()))


def _task_runner(ti_id: str) -> psutil.Process | None:
    """The task runner of a task instance: the deepest process whose command line names it (the supervisor
    forks the runner, which keeps the supervisor's title)."""
    mine = []
    for proc in psutil.process_iter(["cmdline"]):
        if ti_id in " ".join(proc.info.get("cmdline") or []):
            mine.append(proc)
    pids = {p.pid for p in mine}
    runners = [p for p in mine if p.ppid() in pids]
    return (runners or mine or [None])[0]


@pytest.fixture(scope="module")
def airflow_world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("airflow")
    home, dags = private_home(tmp, Path(__file__).parent / "dags" / "chaos_create.py")
    durations = Durations(async_queued=3600.0, training_running=3600.0)
    with BasetenEmulator(api_key=KEY, time_scale=1.0, durations=durations) as emu:
        hook = emu.hook()
        project = next(iter(emu.state.projects))
        source = hook.create_training_job(project, {"image": IMAGE, "name": "chaos-source"}).id
        trained = hook.create_training_job(project, {"image": IMAGE, "name": "chaos-trained"}).id
        emu.advance(4000)  # both complete; the trained job's checkpoints are synced
        port = free_port()
        env = airflow_env(
            home,
            port,
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__CORE__PARALLELISM="6",  # the five tasks run (and are held) at once
            AIRFLOW_CONN_BASETEN_DEFAULT=emu.connection_json(),
            AIRFLOW_VAR_CHAOS_PROJECT=project,
            AIRFLOW_VAR_CHAOS_SOURCE_JOB=source,
            AIRFLOW_VAR_CHAOS_TRAINED_JOB=trained,
        )
        try:
            with running_airflow(env, port, tmp, ["chaos_create"]) as (base, components):
                api = httpx.Client(base_url=f"{base}/api/v2", timeout=30)
                yield {"emu": emu, "api": api, "components": components, "setup_jobs": {source, trained}}
        finally:
            emu.clear_faults()


def test_every_create_killed_mid_flight_makes_one_object(airflow_world: dict[str, Any], chaos_row: Row) -> None:
    chaos_row.case = "21.1 kill mid-create (SIGKILL while the committed create's answer is held)"
    emu: BasetenEmulator = airflow_world["emu"]
    api: httpx.Client = airflow_world["api"]
    comps: list[Component] = airflow_world["components"]
    setup_jobs: set[str] = airflow_world["setup_jobs"]
    emu.set_faults(
        [
            FaultRule("slow", endpoints=["create_training_job"], times=1, after=True, delay=HOLD),
            FaultRule("slow", endpoints=["recreate_training_job"], times=1, after=True, delay=HOLD),
            FaultRule("slow", endpoints=["create_model"], times=2, after=True, delay=HOLD),  # both deploys
            FaultRule("slow", endpoints=ASYNC, skip=1, times=1, after=True, delay=HOLD),  # the 2nd submit
        ]
    )
    assert api.patch("/dags/chaos_create", json={"is_paused": False}).status_code == 200
    r = api.post("/dags/chaos_create/dagRuns", json={"dag_run_id": "kill1", "logical_date": None})
    assert r.status_code in (200, 201), r.text

    def tis() -> dict[str, dict[str, Any]]:
        got = api.get("/dags/chaos_create/dagRuns/kill1/taskInstances")
        return {ti["task_id"]: ti for ti in got.json().get("task_instances", [])} if got.status_code == 200 else {}

    held_at = {"async_submit": 2}  # the server has this many objects of the task while its answer is held
    killed: dict[str, int] = {}
    at_kill: dict[str, int] = {}

    def kill_the_held() -> bool:
        """SIGKILL each task runner whose create the server committed (its answer is held now)."""
        objects, states = _objects(emu, setup_jobs), tis()
        for task in TASKS:
            ti = states.get(task, {})
            if task in killed or ti.get("state") != "running" or ti.get("try_number") != 1:
                continue
            if objects[task] >= held_at.get(task, 1):
                runner = _task_runner(ti["id"])
                if runner is not None:
                    os.kill(runner.pid, signal.SIGKILL)
                    killed[task], at_kill[task] = runner.pid, objects[task]
        return len(killed) == len(TASKS)

    until("every task killed mid-create", kill_the_held, 600, comps, step=0.2)

    def finished() -> dict[str, dict[str, Any]] | None:
        states = tis()
        done = all(states.get(t, {}).get("state") in ("success", "failed") for t in TASKS)
        return states if done else None

    final = until("every retry to finish", finished, 600, comps)
    objects = _objects(emu, setup_jobs)
    # One object per create. The async task: 3 inputs, and the 2nd, in flight at the kill, once more (Baseten
    # cannot list async requests, so no retry can find it; sending it again beats losing it).
    expected = {t: (3 + 1 if t == "async_submit" else 1) for t in TASKS}
    per_input = _per_input(emu)
    chaos_row.tried = (
        "real Airflow 3.3 (LocalExecutor); 5 creating tasks (retries=1), each SIGKILLed while the emulator held "
        "its committed create's answer (async: the 2nd of 3 submits); Airflow retries them"
    )
    chaos_row.happened = (
        f"objects at the kill {at_kill}; after the retries {objects} (async per input {per_input}); states "
        f"{ {t: (final[t]['state'], final[t]['try_number']) for t in TASKS} }"
    )
    unique = len(TASKS) - 1 + 3  # four single creates and three async inputs
    chaos_row.lost = f"{sum(objects.values()) - unique} object(s) made twice (expected 1: the submit in flight)"
    chaos_row.metrics.update(objects=objects)
    print(json.dumps({"at_kill": at_kill, "objects": objects, "expected": expected, "per_input": per_input}))
    assert {t: final[t]["try_number"] for t in TASKS} == dict.fromkeys(TASKS, 2)
    assert objects == expected
    assert per_input == {0: 1, 1: 2, 2: 1}  # only the submit in flight at the kill was sent twice
    assert {t: final[t]["state"] for t in TASKS} == dict.fromkeys(TASKS, "success")
