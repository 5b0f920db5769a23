"""Start real Airflow components as subprocesses, each in its own process group, and always stop them.

The machinery lives in :mod:`airflow_provider_baseten._local_airflow` (``make demo`` uses it too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from airflow_provider_baseten._local_airflow import (
    AIRFLOW,
    Component,
    free_port,
    server_env,
    start_airflow,
    wait_http,
)

__all__ = [
    "AIRFLOW",
    "EXAMPLE_DAGS",
    "ROOT",
    "Component",
    "airflow_env",
    "emulator_airflow",
    "free_port",
    "migrate",
    "private_home",
    "running_airflow",
    "start_airflow",
    "wait_http",
]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "example_dags"


def airflow_env(home: Path, api_port: int, **extra: str) -> dict[str, str]:
    """A private Airflow: its own home and SQLite DB, the example DAGs, every server on 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cached bytecode saves each airflow command ~15 s of compiling
    env.update(server_env(home, api_port))
    env.update({"AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"})
    env.update(extra)
    return env


def migrate(env: dict[str, str]) -> None:
    proc = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def private_home(tmp: Path, *dag_files: Path) -> tuple[Path, Path]:
    """``(home, dags)`` under ``tmp``: an empty Airflow home and a DAG folder holding only ``dag_files``."""
    home, dags = tmp / "home", tmp / "dags"
    home.mkdir()
    dags.mkdir()
    for dag_file in dag_files:
        shutil.copy(dag_file, dags)
    return home, dags


@contextmanager
def running_airflow(
    env: dict[str, str], port: int, logs: Path, dag_ids: Iterable[str], timeout: float = 300
) -> Iterator[tuple[str, list[Component]]]:
    """Migrate, start every component, yield ``(api base URL, components)``; always stop them after."""
    migrate(env)
    components: list[Component] = []
    try:
        yield start_airflow(env, port, logs, components, dag_ids, timeout), components
    finally:
        for c in reversed(components):
            c.stop()
    for c in components:
        assert not c.alive()


def emulator_airflow(tmp: Path, dag_file: Path, connection_json: str, **extra: str) -> tuple[Path, int, dict[str, str]]:
    """A private Airflow under ``tmp`` (home, migrated DB) whose only DAG file is ``dag_file`` and whose
    ``baseten_default`` is ``connection_json`` (an emulator's): its home, API port and environment."""
    home, dags = private_home(tmp, dag_file)
    port = free_port()
    env = airflow_env(
        home, port, AIRFLOW__CORE__DAGS_FOLDER=str(dags), AIRFLOW_CONN_BASETEN_DEFAULT=connection_json, **extra
    )
    migrate(env)
    return home, port, env
