"""Run real DAGs in tests: a migrated SQLite metadata DB and ``dag.test()`` with a connection env var."""

from __future__ import annotations

from typing import Any

# One home: the package's, which the pytest plugin's ``baseten_dag_test`` fixture uses too.
from airflow_provider_baseten.emulator.dagrun import ensure_db as ensure_db
from airflow_provider_baseten.emulator.dagrun import run_dag as run_dag
from airflow_provider_baseten.emulator.dagrun import sync_dag as sync_dag


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
