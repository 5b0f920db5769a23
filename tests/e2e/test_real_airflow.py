"""The example DAGs in a real Airflow: api-server, dag-processor, scheduler (LocalExecutor) and triggerer.

Not ``dag.test()``: four separate Airflow processes share a temporary ``AIRFLOW_HOME`` with SQLite and the
``example_dags`` folder, talk to the emulator over HTTP, and the DAGs are unpaused and triggered through
the REST API, like a person would from the UI. The test then proves from the metadata DB that the sensors
really left their worker slot: each one was seen ``deferred``, its trigger row was claimed by the running
triggerer job, and its task log shows the deferral and the resumption that followed the trigger's event.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.emulator import BasetenEmulator
from airflow_provider_baseten.emulator.config import Durations
from dev.demo import WebhookReceiver
from tests.e2e._support import Component, airflow_env, free_port, migrate, start_airflow

pytestmark = pytest.mark.airflow_e2e

RUNS = {"baseten_async_inference": "e2e_async", "baseten_train_then_promote": "e2e_train"}
# Tasks that must wait in the triggerer, and the trigger class each one hands its wait to.
DEFERRING = {
    ("baseten_async_inference", "wait_for_results"): "WebhookResultTrigger",
    ("baseten_train_then_promote", "wait_for_training"): "TrainingJobTrigger",
    ("baseten_train_then_promote", "deploy_checkpoint"): "DeploymentStatusTrigger",
    ("baseten_train_then_promote", "promote_candidate"): "PromotionTrigger",
}
STARTUP_TIMEOUT = 240.0
RUN_TIMEOUT = 360.0


class Observer:
    """Reads the SQLite metadata DB (read-only) while the runs go, recording what each task went through."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.states: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.claims: dict[tuple[str, str], set[tuple[str, Any]]] = defaultdict(set)

    def _query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql, args).fetchall()

    def poll(self) -> dict[str, str]:
        """Record the task states and trigger claims seen now; return ``{dag_id: run state}``."""
        try:
            rows = self._query(
                "SELECT ti.dag_id, ti.task_id, ti.state, t.classpath, t.triggerer_id FROM task_instance ti"
                " LEFT JOIN [trigger] t ON t.id = ti.trigger_id WHERE ti.run_id IN (?, ?)",
                *RUNS.values(),
            )
            runs = self._query("SELECT dag_id, state FROM dag_run WHERE run_id IN (?, ?)", *RUNS.values())
        except sqlite3.OperationalError:  # locked for a moment by a writer: look again next round
            return {}
        for dag_id, task_id, state, classpath, triggerer_id in rows:
            seen = self.states[(dag_id, task_id)]
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            if classpath:
                self.claims[(dag_id, task_id)].add((classpath, triggerer_id))
        return dict(runs)

    def triggerer_job_ids(self) -> set[Any]:
        return {r[0] for r in self._query("SELECT id FROM job WHERE job_type = 'TriggererJob'")}


def task_logs(home: Path, dag_id: str, run_id: str, task_id: str) -> tuple[str, dict[str, str]]:
    """The task's own log, and the triggerer's log of its trigger(s) by triggerer job id.

    The triggerer writes ``attempt=N.log.trigger.<triggerer job id>.log`` beside the task's log.
    """
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    task = "\n".join(f.read_text(errors="replace") for f in sorted(folder.glob("attempt=*.log")))
    triggers = {
        f.name.rsplit(".", 2)[-2]: f.read_text(errors="replace") for f in folder.glob("attempt=*.log.trigger.*.log")
    }
    return task, triggers


def test_sensors_defer_to_the_triggerer_in_a_real_airflow(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    port = free_port()
    # Every remote wait lasts 8 s or more of real time. The observer (every 0.2 s) sees each deferral, and
    # no trigger fires before the scheduler has handled the deferring try's exit: if it does, Airflow 3.3
    # marks the resumed task up_for_retry ("state attribute is queued"; apache/airflow#67287, #72716).
    durations = Durations(
        async_in_progress=8.0,
        training_running=10.0,
        promotion_ramping=8.0,
        wake=8.0,
        build=8.0,  # the deployed checkpoint builds for 8 s (then deploys and loads)
        checkpoint_sync=0.0,  # synced when the job completes: no sub-second wait that could race
    )
    components: list[Component] = []
    with (
        BasetenEmulator(api_key="e2e-api-key-not-a-secret", time_scale=1.0, durations=durations) as emu,
        WebhookReceiver(home / "webhook-store") as receiver,
    ):
        env = airflow_env(
            home,
            port,
            AIRFLOW_CONN_BASETEN_DEFAULT=emu.connection_json(),
            AIRFLOW_VAR_BASETEN_TRAINING_PROJECT_ID=next(iter(emu.state.projects)),
            AIRFLOW_VAR_BASETEN_WEBHOOK_URL=receiver.url,
            AIRFLOW_VAR_BASETEN_RESULTS_PATH=str(home / "webhook-store"),
            AIRFLOW_VAR_BASETEN_ASYNC_OUTPUT=str(home / "async-outputs.jsonl"),
            AIRFLOW_VAR_BASETEN_ASYNC_BATCH_SIZE="10",
            AIRFLOW_VAR_BASETEN_SKIP_APPROVAL="true",  # unattended here; test_approval.py answers the gate
            BASETEN_EXAMPLE_POLL_SECONDS="1",
        )
        migrate(env)
        try:
            base = start_airflow(env, port, tmp_path, components, RUNS, STARTUP_TIMEOUT)
            api = httpx.Client(base_url=f"{base}/api/v2", timeout=30)

            for dag_id, run_id in RUNS.items():
                r = api.post(f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
                assert r.status_code in (200, 201), r.text
                r = api.patch(f"/dags/{dag_id}", json={"is_paused": False})
                assert r.status_code == 200 and r.json()["is_paused"] is False, r.text

            observer = Observer(home / "airflow.db")
            deadline = time.monotonic() + RUN_TIMEOUT
            runs: dict[str, str] = {}
            while time.monotonic() < deadline:
                for c in components:
                    assert c.alive(), f"{c.name} exited:\n{c.tail()}"
                runs = observer.poll()
                if len(runs) == len(RUNS) and all(s in ("success", "failed") for s in runs.values()):
                    break
                time.sleep(0.2)
            observer.poll()
            report = {k: v for k, v in observer.states.items()}
            assert runs == dict.fromkeys(RUNS, "success"), f"runs {runs}; task states {report}\n" + "\n".join(
                f"--- {c.name}\n{c.tail(30)}" for c in components
            )

            # The REST API agrees: every task of both runs succeeded (or was skipped by a branch).
            for dag_id, run_id in RUNS.items():
                tis = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
                states = {ti["task_id"]: ti["state"] for ti in tis}
                assert set(states.values()) <= {"success", "skipped"}, states

            # The deferral evidence, per sensor or deferrable operator.
            triggerers = observer.triggerer_job_ids()
            assert triggerers, "no TriggererJob in the job table"
            evidence = {}
            for (dag_id, task_id), trigger_class in DEFERRING.items():
                seen = observer.states[(dag_id, task_id)]
                claims = observer.claims[(dag_id, task_id)]
                assert "deferred" in seen, f"{task_id} never seen deferred: {seen}"
                assert seen[-1] == "success", seen
                assert seen.index("deferred") < len(seen) - 1  # it came back from the triggerer
                assert any(cls.endswith(trigger_class) for cls, _ in claims), claims
                claimed_by = {job for _, job in claims if job is not None}
                assert claimed_by and claimed_by <= triggerers, (claims, triggerers)
                log, trigger_logs = task_logs(home, dag_id, RUNS[dag_id], task_id)
                assert "Pausing task as DEFERRED" in log, log[-3000:]
                assert trigger_logs and {int(j) for j in trigger_logs} <= triggerers, trigger_logs.keys()
                fired = "".join(trigger_logs.values())
                assert "Trigger fired event" in fired and "'status': 'success'" in fired, fired[-3000:]
                assert "trigger completed" in fired, fired[-3000:]
                evidence[task_id] = {"states": seen, "trigger": trigger_class, "triggerer_job": sorted(claimed_by)}
            print("\nDeferral evidence:", evidence)

            # And the work itself happened on the emulator.
            promoted = api.get(
                f"/dags/baseten_train_then_promote/dagRuns/{RUNS['baseten_train_then_promote']}"
                "/taskInstances/promote_candidate/xcomEntries/return_value"
            ).json()["value"]
            model = api.get(
                f"/dags/baseten_train_then_promote/dagRuns/{RUNS['baseten_train_then_promote']}"
                "/taskInstances/deploy_checkpoint/xcomEntries/model_id"
            ).json()["value"]
            assert emu.hook().get_deployment("production", model_id=model).id == promoted
            assert receiver.count() >= 10  # the async DAG's webhooks arrived (a scheduled run may add more)
        finally:
            for c in reversed(components):
                c.stop()
    for c in components:
        assert not c.alive()
