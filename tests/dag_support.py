"""Run real DAGs in tests: a migrated SQLite metadata DB and ``dag.test()`` with a connection env var."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_migrated = False


def ensure_db() -> None:
    """Give the test AIRFLOW_HOME a migrated SQLite DB once per session (a subprocess keeps our process clean).

    A migration costs 5-15 s of CPU, so the migrated file is kept in the virtualenv, one per set of installed
    Airflow distributions (the schema's only inputs), and copied: make test's two pytest-xdist workers, each
    with a DB of its own (tests/conftest.py), and later runs all start from it. A DB set outside the test
    home (another URL in AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) is migrated in place.
    """
    global _migrated
    if _migrated:
        return
    home = Path(os.environ["AIRFLOW_HOME"])
    marker = home / ".migrated"
    db = home / "airflow.db"
    conn = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if not marker.exists():
        if conn == f"sqlite:///{db}":
            shutil.copyfile(_migrated_template(), db)
        else:
            _migrate(conn)
        marker.touch()
    _migrated = True


def _migrated_template() -> Path:
    """The migrated DB kept for these Airflow distributions, made by the first process that needs it."""
    keep = Path(sys.prefix) if os.access(sys.prefix, os.W_OK) else Path(tempfile.gettempdir())  # the virtualenv
    template = keep / f"baseten-test-airflow-{_schema_key()}.db"
    with open(template.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process migrates; the others wait here, then copy its file
        if not template.exists():
            Path(f"{template}.part").unlink(missing_ok=True)  # left by a run killed mid-migration
            _migrate(f"sqlite:///{template}.part")
            os.replace(f"{template}.part", template)
    return template


def _schema_key() -> str:
    """What the migrated schema depends on: the installed Airflow distributions and their versions."""
    names = sorted(
        f"{d.metadata['Name']}=={d.version}"
        for d in importlib.metadata.distributions()
        if d.metadata["Name"].lower().startswith("apache-airflow")
    )
    return hashlib.sha256(" ".join(names).encode()).hexdigest()[:16]


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
