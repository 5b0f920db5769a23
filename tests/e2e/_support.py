"""Start real Airflow components as subprocesses, each in its own process group, and always stop them."""

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

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "example_dags"
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def airflow_env(home: Path, api_port: int, **extra: str) -> dict[str, str]:
    """A private Airflow: its own home and SQLite DB, the example DAGs, every server on 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cached bytecode saves each airflow command ~15 s of compiling
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            # SQLite's default 5 s busy wait is too short when four components write at once on 2 cores.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            # Every component must sign and check task tokens with the same secret.
            "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-test-jwt-secret-" + "0" * 24,
            "AIRFLOW__API_AUTH__JWT_ISSUER": "airflow-provider-baseten-e2e",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def migrate(env: dict[str, str]) -> None:
    proc = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


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


def wait_http(url: str, timeout: float, components: list[Component] = ()) -> None:  # type: ignore[assignment]
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
