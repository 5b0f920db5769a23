"""Run real DAGs in tests: a migrated SQLite metadata DB and ``dag.test()`` with a connection env var."""

from __future__ import annotations

import fcntl
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

_migrated = False


def ensure_db() -> None:
    """Migrate the test AIRFLOW_HOME's SQLite DB once per session (a subprocess keeps our process clean).

    Under pytest-xdist each worker has a DB of its own (tests/conftest.py): the first worker to need one
    migrates it into the controller's home and the others copy that file, as a migration costs 5-15 s of CPU.
    """
    global _migrated
    if _migrated:
        return
    home = Path(os.environ["AIRFLOW_HOME"])
    marker = home / ".migrated"
    if not marker.exists():
        shared = os.environ.get("BASETEN_TEST_HOME_MADE")  # the pytest-xdist controller's home
        db = home / "airflow.db"
        if os.environ.get("PYTEST_XDIST_WORKER") and shared and _conn() == f"sqlite:///{db}":
            template = Path(shared) / "migrated.db"
            with open(Path(shared) / "migrated.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes; the other workers wait here
                if not template.exists():
                    _migrate(f"sqlite:///{template}.part")
                    os.replace(f"{template}.part", template)
            shutil.copyfile(template, db)
        else:
            _migrate(_conn())
        marker.touch()
    _migrated = True


def _conn() -> str:
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def _migrate(conn: str) -> None:
    airflow = Path(sys.executable).parent / "airflow"
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn}
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=env)


def sync_dag(dag: Any) -> None:
    """Serialize an in-memory DAG into the metadata DB, as the DAG processor would for a file."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:  # Airflow >= 3.2
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[no-redef]

    Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).mkdir(parents=True, exist_ok=True)
    DagBundlesManager().sync_bundles_to_db()
    wanted = {"dag_folder": os.devnull, "include_examples": False, "collect_dags": False}
    accepted = inspect.signature(DagBag.__init__).parameters  # the signature differs across 3.x
    bag = DagBag(**{k: v for k, v in wanted.items() if k in accepted})
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """``dag.test()`` an in-memory DAG and return the DagRun; the caller asserts on task states."""
    ensure_db()
    sync_dag(dag)
    return dag.test(**kwargs)


def task_states(dag_run: Any) -> dict[str, str]:
    """``{task_id (with map index): state}`` of a finished run."""
    out = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        out[key] = str(ti.state.value if hasattr(ti.state, "value") else ti.state)
    return out


class StateStore:
    """The Airflow 3.3 ``task_state_store`` the resumable mixin reads and writes, in memory."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value


class FakeTI:
    """Just enough of a task instance for ``operator.execute`` outside a DAG run."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}
        self.stats_tags: dict[str, str] = {}
        self.task_id = "task"
        self.map_index = -1

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        """What this task pushed under ``key`` (None if nothing)."""
        return self.xcoms.get(key)


def context(**extra: Any) -> Any:
    """A minimal task context for calling ``execute`` / ``poke`` directly."""
    return {"ti": FakeTI(), **extra}
