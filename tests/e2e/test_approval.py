"""The approval gate of ``baseten_train_then_promote`` in a real Airflow, answered through the REST API.

Two runs in one Airflow (api-server, dag-processor, scheduler, triggerer): the first is approved (exactly one
promote call reaches Baseten and production serves the checkpoint it deployed), the second is rejected (no
further promote call: production keeps the first run's deployment). Every count is the emulator's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.emulator import BasetenEmulator
from airflow_provider_baseten.emulator.config import Durations
from dev.local_airflow import answer_approval
from tests.e2e._support import Component, airflow_env, free_port, migrate, start_airflow

pytestmark = pytest.mark.airflow_e2e

DAG_ID = "baseten_train_then_promote"
STARTUP_TIMEOUT = 240.0
RUN_TIMEOUT = 420.0
GATE = "approve_promotion"


def promote_calls(emu: BasetenEmulator) -> int:
    """Promote requests the emulator answered (every promote endpoint)."""
    return sum(n for name, n in emu.counters()["requests"].items() if name.startswith("promote"))


def wait_for(what: str, check: Any, components: list[Component], timeout: float = RUN_TIMEOUT) -> Any:
    """Poll ``check()`` until it returns something truthy (components must stay alive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in components:
            assert c.alive(), f"{c.name} exited:\n{c.tail()}"
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(
        f"timed out waiting for {what}\n" + "\n".join(f"--- {c.name}\n{c.tail(30)}" for c in components)
    )


def run_state(api: httpx.Client, run_id: str) -> str | None:
    r = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}")
    state = r.json().get("state") if r.status_code == 200 else None
    return state if state in ("success", "failed") else None


def test_approve_promotes_once_and_reject_leaves_production_untouched(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    port = free_port()
    durations = Durations(training_running=10.0, build=8.0, promotion_ramping=8.0, checkpoint_sync=0.0)
    components: list[Component] = []
    with BasetenEmulator(api_key="e2e-api-key-not-a-secret", time_scale=1.0, durations=durations) as emu:
        env = airflow_env(
            home,
            port,
            AIRFLOW_CONN_BASETEN_DEFAULT=emu.connection_json(),
            AIRFLOW_VAR_BASETEN_TRAINING_PROJECT_ID=next(iter(emu.state.projects)),
            AIRFLOW_VAR_BASETEN_DEPLOY_MODEL_NAME="e2e-fine-tune",
            BASETEN_EXAMPLE_POLL_SECONDS="1",
        )
        migrate(env)
        try:
            base = start_airflow(env, port, tmp_path, components, [DAG_ID], STARTUP_TIMEOUT)
            api = httpx.Client(base_url=f"{base}/api/v2", timeout=30)
            r = api.patch(f"/dags/{DAG_ID}", json={"is_paused": False})
            assert r.status_code == 200, r.text
            results: dict[str, dict[str, Any]] = {}
            for run_id, choice in (("e2e_approve", "Approve"), ("e2e_reject", "Reject")):
                before = promote_calls(emu)
                r = api.post(f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
                assert r.status_code in (200, 201), r.text
                answered = answer_approval(api, DAG_ID, run_id, GATE, choice, components, RUN_TIMEOUT)
                assert answered["chosen_options"] == [choice]
                state = wait_for(f"{run_id} to finish", lambda rid=run_id: run_state(api, rid), components)
                tis = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
                xcom = api.get(
                    f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/deploy_checkpoint/xcomEntries/return_value"
                ).json()["value"]
                results[run_id] = {
                    "state": state,
                    "tasks": {ti["task_id"]: ti["state"] for ti in tis},
                    "promotes": promote_calls(emu) - before,
                    "deployment": xcom,
                }
            approve, reject = results["e2e_approve"], results["e2e_reject"]
            print("\nApproval runs:", results)
            assert approve["state"] == "success", approve
            assert approve["tasks"]["promote_candidate"] == "success" and approve["promotes"] == 1, approve
            assert reject["state"] == "success", reject
            assert reject["tasks"][GATE] == "success", reject  # the human answered: the task did its job
            assert reject["tasks"]["promote_candidate"] == "skipped", reject
            assert reject["tasks"]["set_autoscaling"] == "skipped", reject
            assert reject["promotes"] == 0, reject
            model = next(m for m in emu.state.models.values() if m.name == "e2e-fine-tune")
            assert len(model.deployments) == 2  # one per run, never a second one per run
            production = emu.hook().get_deployment("production", model_id=model.id)
            assert production.id == approve["deployment"] != reject["deployment"]  # untouched by the reject
        finally:
            for c in reversed(components):
                c.stop()
    for c in components:
        assert not c.alive()
