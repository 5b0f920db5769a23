"""Run a real Airflow locally (api-server, dag-processor, scheduler, triggerer), for ``make demo``'s approval
step and the real-Airflow tests: each component in its own process group, on 127.0.0.1, always stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path, api_port: int) -> dict[str, str]:
    """The settings that make a private multi-process Airflow: SQLite, LocalExecutor, a local API server,
    every component signing and checking task tokens with the same secret."""
    return {
        "AIRFLOW_HOME": str(home),
        # SQLite's default 5 s busy wait is too short when four components write at once on 2 cores.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": "local-airflow-jwt-secret-" + "0" * 24,
        "AIRFLOW__API_AUTH__JWT_ISSUER": "airflow-provider-baseten-local",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


class Component:
    """One ``airflow <command>`` in its own session (process group), logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path, program: str = AIRFLOW) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            [program, *args], env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left after ``grace`` seconds."""
        try:
            pgid = os.getpgid(self.proc.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None:
            _signal_group(pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
            _signal_group(pgid, signal.SIGKILL)  # children (task supervisors, gunicorn workers) too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._fh.close()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_http(url: str, timeout: float, components: Iterable[Component] = ()) -> None:
    """Until ``url`` answers 200 (fails early if a component died)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for c in components:
            assert c.alive(), f"{c.name} exited:\n{c.tail()}"
        try:
            r = httpx.get(url, timeout=5)
            if r.status_code == 200:
                return
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout:.0f} s (last: {last!r})")


def start_airflow(
    env: dict[str, str],
    port: int,
    logs: Path,
    components: list[Component],
    dag_ids: Iterable[str] = (),
    timeout: float = 300,
) -> str:
    """Start api-server, dag-processor, scheduler and triggerer; wait for health and for ``dag_ids``.

    Each component is appended to ``components`` as soon as it starts, so the caller's ``finally`` stops
    whatever did start even when start-up fails. Returns the API server's base URL.
    """
    for name, args in (
        ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port)]),
        ("dag-processor", ["dag-processor"]),
        # No log servers: they listen on every interface, and the logs are on this disk anyway.
        ("scheduler", ["scheduler", "--skip-serve-logs"]),
        ("triggerer", ["triggerer", "--skip-serve-logs"]),
    ):
        components.append(Component(name, args, env, logs))
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/api/v2/monitor/health", timeout, components)
    for dag_id in dag_ids:  # parsed by the dag-processor and serialized to the DB
        wait_http(f"{base}/api/v2/dags/{dag_id}", timeout, components)
    return base


def scheduler_saw_pause(scheduler_log: Path, dag_id: str, task_id: str, run_id: str, try_number: int = 1) -> bool:
    """Whether the scheduler has handled the exit of the try that paused to await a human's input.

    Answering before that makes Airflow 3.3 fail the resumed try ("finished with state success, but the task
    instance's state attribute is queued", apache/airflow#67287): answer only once this is true.
    """
    key = f"TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}', run_id='{run_id}', try_number={try_number},"
    text = scheduler_log.read_text(errors="replace") if scheduler_log.exists() else ""
    return any("Received executor event with state success" in line and key in line for line in text.splitlines())


def answer_approval(
    api: httpx.Client,
    dag_id: str,
    run_id: str,
    task_id: str,
    choice: str,
    components: list[Component],
    timeout: float,
) -> dict[str, Any]:
    """Wait until ``task_id`` (an ``ApprovalOperator``) asks, then answer ``choice`` through the REST API.

    Raises :class:`RuntimeError` when the run ends (e.g. fails upstream) before it asks.
    """
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
    scheduler = next(c for c in components if c.name == "scheduler")
    deadline = time.monotonic() + timeout
    while not (api.get(path).status_code == 200 and scheduler_saw_pause(scheduler.log, dag_id, task_id, run_id)):
        for c in components:
            if not c.alive():
                raise RuntimeError(f"{c.name} exited:\n{c.tail()}")
        if api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json().get("state") in ("success", "failed"):
            raise RuntimeError(f"{dag_id} {run_id} ended before {task_id} asked for approval")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} {run_id}: {task_id} did not ask for approval in {timeout:.0f} s")
        time.sleep(0.5)
    r = api.patch(path, json={"chosen_options": [choice], "params_input": {}})
    r.raise_for_status()
    answered: dict[str, Any] = r.json()
    return answered
