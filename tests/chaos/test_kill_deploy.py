"""SIGKILL a deploy task mid-upload, mid-create (the create has acted, its answer is held) and mid-wait, then
retry it: exactly one deployment, counted on the server. ``mid-create`` runs in ``make test`` (it found a
defect: with a deployment name you chose, the retry deployed again); the others are in ``make chaos``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.emulator.server import BasetenEmulator
from tests.chaos._deploy_child import FileStore, main

CONFIG = {"model_name": "killed-deploy", "resources": {"accelerator": "H100:1", "use_gpu": True}}


def _until(what: str, check: Callable[[], Any], proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Poll the server's state until ``check``; fail early if the child exited (state, not luck)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"the deploy child exited before {what}:\n{proc.stdout.read()}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def _counters(emu: BasetenEmulator, group: str, key: str) -> int:
    return int(emu.counters()[group].get(key, 0))


def _deployments(emu: BasetenEmulator) -> list[Any]:
    with emu.state.lock:
        return [d for m in emu.state.models.values() if m.name == CONFIG["model_name"] for d in m.deployments.values()]


@pytest.mark.parametrize("name", [None, "chosen-name"], ids=["run-unique-name", "chosen-name"])
@pytest.mark.parametrize(
    "moment",
    [
        "mid-create",
        pytest.param("mid-upload", marks=pytest.mark.chaos),
        pytest.param("mid-wait", marks=pytest.mark.chaos),
    ],
)
def test_a_deploy_killed_then_retried_makes_one_deployment(
    emulator: BasetenEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str, name: str | None
) -> None:
    pytest.importorskip("airflow.sdk.bases.resumablejobmixin")  # task_state_store: Airflow 3.3+
    env = {**os.environ, **emulator.connection_env()}
    store = str(tmp_path / "state.json")
    spec = {"store": store, "config": CONFIG, "deployment_name": name}
    if moment == "mid-upload":  # every PUT refused: the child sits in botocore's retries, prepared, not committed
        emulator.set_faults([FaultRule("503", endpoints=["s3_put_object"])])
    elif moment == "mid-create":  # the create acts, then its answer is held 5 s: the child is killed in that time
        # (the test kills it as soon as the server holds the deployment; the hold also delays the emulator's stop)
        emulator.set_faults([FaultRule("slow", endpoints=["create_model"], times=1, after=True, delay=5)])
    else:
        emulator.set_time_scale(0)  # the deployment stays BUILDING: the child waits on it
    cmd = [sys.executable, "-m", "tests.chaos._deploy_child", json.dumps(spec)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        if moment == "mid-upload":
            _until("an upload was refused", lambda: _counters(emulator, "faults", "s3_put_object:503") >= 1, proc)
        elif moment == "mid-create":
            _until("the create has acted", lambda: bool(_deployments(emulator)), proc)
        else:
            _until(
                "the child waits on its deployment",
                lambda: _counters(emulator, "requests", "get_deployment") >= 2 and bool(_deployments(emulator)),
                proc,
            )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    created = 0 if moment == "mid-upload" else 1
    assert _counters(emulator, "requests", "create_model") == created and len(_deployments(emulator)) == created
    if moment == "mid-create":  # killed at the awkward moment: created, but nothing recorded but the marker
        assert FileStore(store).get("baseten_model_deployment") is None
        assert FileStore(store).get("baseten_deploy_create_unknown")
    emulator.clear_faults()
    emulator.set_time_scale(200)
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    main(spec)  # the retry, in this process, with what the killed try left in the store
    deps = _deployments(emulator)
    assert len(deps) == 1 and deps[0].status == "ACTIVE"
    assert _counters(emulator, "requests", "create_model") == 1
    assert FileStore(store).get("baseten_model_deployment")["deployment_id"] == deps[0].id
