"""Cases 3 and 4 in a real Airflow (api-server, dag-processor, scheduler with LocalExecutor, triggerer;
started with ``tests/e2e/_support.py``) against the emulator.

3. Kill while deferred: six deferred tasks are marked failed through the REST API. The triggerer calls each
   trigger's ``on_kill``: only what the task started is canceled (its QUEUED async requests, its training
   job, its promotion); the sensors and the task that only waited on someone else's promotion touch nothing.
4. Crash: the task processes of a non-deferrable AsyncPredictOperator and CreateTrainingJobOperator
   (retries=1) are ``kill -9``-ed mid-wait. Airflow retries them; the retry reconnects (ResumableJobMixin +
   task_state_store), and the emulator counts exactly one submission of each.
10.2 Partial submit: an AsyncPredictOperator with 6 inputs is ``kill -9``-ed while its 4th submit is held by
   the emulator. The retry submits only the inputs without a request id: inputs 0-2 are submitted once.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from airflow_provider_baseten.emulator import BasetenEmulator
from airflow_provider_baseten.emulator.config import Durations, FaultRule
from tests.chaos._support import until
from tests.chaos.report import Row
from tests.e2e._support import Component, airflow_env, free_port, migrate, start_airflow

pytestmark = [pytest.mark.chaos, pytest.mark.airflow_e2e]

KEY = "chaos-airflow-key-not-a-secret"
IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}
KILL_TASKS = (
    "async_own",
    "async_sensor_foreign",
    "training_own",
    "training_sensor_foreign",
    "promote_own",
    "promote_foreign",
)
STARTUP = 300.0


class Airflow:
    """A running Airflow on the emulator, with a REST client."""

    def __init__(self, api: httpx.Client, components: list[Component], home: Path) -> None:
        self.api, self.components, self.home = api, components, home

    def tis(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        r = self.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in r.json().get("task_instances", [])} if r.status_code == 200 else {}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        r = self.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        return r.json().get("value") if r.status_code == 200 else None

    def trigger(self, dag_id: str, run_id: str) -> None:
        r = self.api.patch(f"/dags/{dag_id}", json={"is_paused": False})
        assert r.status_code == 200, r.text
        r = self.api.post(f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
        assert r.status_code in (200, 201), r.text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("airflow")
    home, dags = tmp / "home", tmp / "dags"
    home.mkdir()
    dags.mkdir()
    shutil.copy(Path(__file__).parent / "dags" / "chaos_kill.py", dags)
    durations = Durations(async_queued=3600.0, training_running=3600.0, promotion_ramping=3600.0)
    with BasetenEmulator(api_key=KEY, time_scale=1.0, durations=durations) as emu:
        hook = emu.hook()
        project = next(iter(emu.state.projects))
        foreign_ids = [hook.async_predict({"case": "foreign", "i": i}).request_id for i in range(2)]
        foreign_job = hook.create_training_job(project, {"image": IMAGE, "name": "foreign"}).id
        hook.promote_deployment("dep2devl", environment="production")  # someone else's promotion
        port = free_port()
        env = airflow_env(
            home,
            port,
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW_CONN_BASETEN_DEFAULT=emu.connection_json(),
            AIRFLOW_VAR_CHAOS_FOREIGN_IDS=__import__("json").dumps(foreign_ids),
            AIRFLOW_VAR_CHAOS_FOREIGN_JOB=foreign_job,
            AIRFLOW_VAR_CHAOS_PROJECT=project,
        )
        migrate(env)
        components: list[Component] = []
        try:
            dag_ids = ("chaos_kill", "chaos_crash", "chaos_partial")
            base = start_airflow(env, port, tmp, components, dag_ids, STARTUP)
            af = Airflow(httpx.Client(base_url=f"{base}/api/v2", timeout=30), components, home)
            af.trigger("chaos_kill", "kill1")
            af.trigger("chaos_crash", "crash1")
            yield {
                "emu": emu,
                "af": af,
                "foreign_ids": foreign_ids,
                "foreign_job": foreign_job,
                "project": project,
                "kill_checked": False,
            }
        finally:
            for c in reversed(components):
                c.stop()
    for c in components:
        assert not c.alive()


def test_kill_while_deferred(world: dict[str, Any], chaos_row: Row) -> None:
    chaos_row.case = "3 kill while deferred"
    emu: BasetenEmulator = world["emu"]
    af: Airflow = world["af"]
    comps = af.components

    def all_deferred() -> bool:
        tis = af.tis("chaos_kill", "kill1")
        return all(tis.get(t, {}).get("state") == "deferred" for t in KILL_TASKS)

    until("six deferred tasks", all_deferred, 300, comps)

    def trigger_logs(task_id: str) -> list[Path]:
        return sorted(af.home.glob(f"logs/dag_id=chaos_kill/run_id=kill1/task_id={task_id}/*.trigger.*.log"))

    # Deferred in the DB is not yet waiting in the triggerer: a task marked failed before the triggerer
    # picked its trigger up never gets an on_kill (Airflow drops the trigger unstarted). Kill real waits.
    until("every trigger running in the triggerer", lambda: all(trigger_logs(t) for t in KILL_TASKS), 120, comps)
    before = emu.counters()
    own_ids = af.xcom("chaos_kill", "kill1", "async_own", "request_ids")
    own_job = af.xcom("chaos_kill", "kill1", "training_own", "training_job_id")
    assert own_ids and len(own_ids) == 3 and own_job
    for task_id in KILL_TASKS:
        r = af.api.patch(f"/dags/chaos_kill/dagRuns/kill1/taskInstances/{task_id}", json={"new_state": "failed"})
        assert r.status_code == 200, r.text

    def killed() -> bool:
        said = [any("invoking on_kill" in f.read_text(errors="replace") for f in trigger_logs(t)) for t in KILL_TASKS]
        c = emu.counters()["cancellations"]
        want = {"async_request": 3, "training_job": 1, "promotion": 1}  # what this DAG's own tasks started
        return all(said) and all(c.get(k, 0) - before["cancellations"].get(k, 0) >= n for k, n in want.items())

    until("on_kill of every trigger", killed, 120, comps)
    after = emu.counters()
    cancels = {k: after["cancellations"].get(k, 0) - before["cancellations"].get(k, 0) for k in after["cancellations"]}
    now = emu.core.clock.now()
    st = emu.state
    own_states = [st.async_requests[r].status(now)[0] for r in own_ids]
    foreign_states = [st.async_requests[r].status(now)[0] for r in world["foreign_ids"]]
    own_job_state = st.jobs[own_job].status(now)[0]
    foreign_job_state = st.jobs[world["foreign_job"]].status(now)[0]
    envs = {e.name: e for e in emu.hook().list_environments()}
    staging = envs["staging"].in_progress_promotion
    production = envs["production"].in_progress_promotion
    chaos_row.tried = (
        "real Airflow (scheduler, triggerer, api-server, dag-processor); 6 deferred tasks marked failed via REST "
        "PATCH: AsyncPredictOperator (3 own QUEUED requests), AsyncPredictSensor (2 foreign), "
        "CreateTrainingJobOperator (own job), TrainingJobSensor (foreign job), PromoteDeploymentOperator "
        "(own promotion into staging), PromoteDeploymentOperator waiting on a foreign promotion into production"
    )
    chaos_row.happened = (
        f"cancellations {cancels}; own requests {own_states}, foreign {foreign_states}; own job {own_job_state}, "
        f"foreign job {foreign_job_state}; staging promotion {staging.status if staging else None}, "
        f"production (foreign) {production.status if production else None}"
    )
    foreign_touched = (
        sum(s != "QUEUED" for s in foreign_states)
        + (foreign_job_state == "TRAINING_JOB_STOPPED")
        + (production is None or production.status == "CANCELED")
    )
    chaos_row.lost = f"{foreign_touched} foreign objects touched"
    world["kill_checked"] = True
    assert own_states == ["CANCELED"] * 3
    assert foreign_states == ["QUEUED"] * 2
    assert own_job_state == "TRAINING_JOB_STOPPED" and foreign_job_state != "TRAINING_JOB_STOPPED"
    assert cancels.get("async_request") == 3 and cancels.get("training_job") == 1 and cancels.get("promotion") == 1
    assert production is not None and production.status in ("RELEASING", "RAMPING_UP", "RAMPING_DOWN", "PAUSED")


def _task_pid(ti_id: str) -> int | None:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if f"airflow worker -- {ti_id}" in cmd:
            return proc.pid
    return None


def test_crash_reconnects(world: dict[str, Any], chaos_row: Row) -> None:
    chaos_row.case = "4 crash (kill -9)"
    emu: BasetenEmulator = world["emu"]
    af: Airflow = world["af"]
    comps = af.components
    tasks = ("async_crash", "training_crash")

    def polling(task_id: str) -> Any:
        """The task is in its wait (its external id is in the task state store): it is polling Baseten."""
        ti = af.tis("chaos_crash", "crash1").get(task_id, {})
        if ti.get("state") != "running":
            return None
        if task_id == "async_crash":
            ids = af.xcom("chaos_crash", "crash1", task_id, "request_ids") or []
            paths = [r["path"] for r in emu.requests() if r["endpoint"] == "get_async_request"]
            return ti if ids and any(ids[-1] in p for p in paths) else None
        jid = af.xcom("chaos_crash", "crash1", task_id, "training_job_id")
        paths = [r["path"] for r in emu.requests() if r["endpoint"] == "get_training_job"]
        return ti if jid and sum(jid in p for p in paths) >= 2 else None

    killed = {}
    first_ids: list[str] = []
    first_job = ""
    for task_id in tasks:
        ti = until(f"{task_id} polling", lambda t=task_id: polling(t), 300, comps)
        pid = until(f"{task_id}'s process", lambda i=ti["id"]: _task_pid(i), 30, comps)
        if task_id == "async_crash":  # what the first try started (a retry's XComs start empty)
            first_ids = af.xcom("chaos_crash", "crash1", task_id, "request_ids")
        else:
            first_job = af.xcom("chaos_crash", "crash1", task_id, "training_job_id")
        os.kill(pid, signal.SIGKILL)
        killed[task_id] = pid

    def retried_and_waiting() -> bool:
        tis = af.tis("chaos_crash", "crash1")
        return all(tis.get(t, {}).get("try_number") == 2 and tis[t].get("state") == "running" for t in tasks)

    until("both retries running", retried_and_waiting, 240, comps)
    ids, jid = first_ids, first_job
    assert ids and jid

    def polls() -> tuple[int, int]:
        paths = [r["path"] for r in emu.requests()]
        return sum(ids[-1] in p for p in paths), sum(jid in p for p in paths)

    seen = polls()
    # The retries reconnected once they poll again (a resubmit would show in the submissions instead).
    until("the retries to poll", lambda: all(a > b for a, b in zip(polls(), seen, strict=True)), 120, comps)
    # Let the requests and the job finish (past 3600 s of queue/run, inside Baseten's 1 h status retention).
    emu.advance(3700)

    def done() -> dict[str, dict[str, Any]] | None:
        tis = af.tis("chaos_crash", "crash1")
        return tis if all(tis.get(t, {}).get("state") in ("success", "failed") for t in tasks) else None

    tis = until("the retries to finish", done, 240, comps)
    st = emu.state
    crash_requests = [
        r
        for r in st.async_requests.values()
        if isinstance(r.model_input, dict) and r.model_input.get("case") == "crash"
    ]
    crash_jobs = [j for j in st.jobs.values() if j.name == "chaos-crash"]
    # Every submission the emulator ever accepted: 2 foreign + 3 (kill case) + 3 (crash) async requests and
    # 1 foreign + 1 (kill) + 1 (crash) training jobs, so a resubmitted crash would show here too.
    submissions = emu.counters()["submissions"]
    chaos_row.tried = (
        "real Airflow; kill -9 of the task process of a non-deferrable AsyncPredictOperator (3 inputs) and a "
        "CreateTrainingJobOperator mid-wait (retries=1), then let Airflow retry"
    )
    chaos_row.happened = (
        f"killed pids {killed}; tries {[tis[t]['try_number'] for t in tasks]}, states "
        f"{[tis[t]['state'] for t in tasks]}; emulator: {len(crash_requests)} async submissions for 3 inputs, "
        f"{len(crash_jobs)} training job(s) submitted"
    )
    duplicates = submissions.get("async_predict", 0) - 8 + submissions.get("training_job", 0) - 3
    chaos_row.lost = f"{duplicates} duplicate submissions (emulator submission counters {dict(submissions)})"
    assert [tis[t]["state"] for t in tasks] == ["success", "success"]
    assert [tis[t]["try_number"] for t in tasks] == [2, 2]
    assert len(crash_requests) == 3 and len(crash_jobs) == 1
    assert submissions == {"async_predict": 8, "training_job": 3}


def test_partial_submit_then_kill(world: dict[str, Any], chaos_row: Row) -> None:
    chaos_row.case = "10.2 partial async submit (kill -9)"
    emu: BasetenEmulator = world["emu"]
    af: Airflow = world["af"]
    comps = af.components
    # Hold the 4th submit to this deployment long enough to kill the task while it waits for the answer.
    emu.set_faults([FaultRule("slow", endpoints=["deployment_async_predict"], skip=3, times=1, delay=20.0)])
    af.trigger("chaos_partial", "partial1")

    def partial_requests() -> list[Any]:
        with emu.state.lock:
            reqs = list(emu.state.async_requests.values())
        return [r for r in reqs if isinstance(r.model_input, dict) and r.model_input.get("case") == "partial"]

    def held() -> Any:
        ti = af.tis("chaos_partial", "partial1").get("async_partial", {})
        faults = emu.counters()["faults"]
        return (
            ti if ti.get("state") == "running" and faults.get("slow", 0) == 1 and len(partial_requests()) == 3 else None
        )

    ti = until("the 4th submit to be held", held, 300, comps)
    pid = until("the task's process", lambda: _task_pid(ti["id"]), 30, comps)
    os.kill(pid, signal.SIGKILL)
    at_kill = len(partial_requests())

    def finished() -> dict[str, Any] | None:
        t = af.tis("chaos_partial", "partial1").get("async_partial", {})
        return t if t.get("state") in ("success", "failed") else None

    final = until("the retry to finish", finished, 240, comps)
    # The held request reaches the API 20 s after it was sent, whether or not its client is still alive (it
    # was in flight at the kill): give it that long to land, so the counts below are final.
    deadline = time.monotonic() + 30
    while len(partial_requests()) < 7 and time.monotonic() < deadline:
        time.sleep(0.5)
    per_input: dict[int, int] = {}
    for r in partial_requests():
        per_input[r.model_input["i"]] = per_input.get(r.model_input["i"], 0) + 1
    chaos_row.tried = (
        "real Airflow; AsyncPredictOperator with 6 inputs (retries=1); the emulator holds the 4th submit for 20 s "
        "and the task process is kill -9-ed while it waits; Airflow retries"
    )
    chaos_row.happened = (
        f"{at_kill} requests at the kill; try {final['try_number']} {final['state']}; submissions per input "
        f"{dict(sorted(per_input.items()))} (input 3 was in flight at the kill)"
    )
    resent = sum(n - 1 for i, n in per_input.items() if i != 3)
    chaos_row.lost = f"{resent} inputs re-sent that already had an id; 1 in flight at the kill"
    chaos_row.metrics.update(per_input=per_input)
    assert final["state"] == "success" and final["try_number"] == 2
    assert at_kill == 3
    assert {i: per_input.get(i, 0) for i in (0, 1, 2, 4, 5)} == {0: 1, 1: 1, 2: 1, 4: 1, 5: 1}
    assert per_input.get(3, 0) in (1, 2)  # the retry resends it; the held one may land too: it was in flight
