"""Read what Airflow recorded about a task instance (its row and its XComs), on the API server only.

Airflow's database is read with Airflow's own models; the provider keeps no table of its own.
"""

from __future__ import annotations

from typing import Any, cast

from airflow_provider_baseten.ui.data import TaskRecord

#: XComs read per task instance: far more than any provider task pushes, and a bound on a hostile one.
MAX_XCOMS = 50


def load_task(dag_id: str, run_id: str, task_id: str, map_index: int) -> TaskRecord | None:
    """The task instance's operator, state and XComs, or ``None`` when there is no such task instance.

    :param dag_id: The Dag.
    :param run_id: The Dag run.
    :param task_id: The task.
    :param map_index: The map index (-1: not mapped).
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.execute(
            select(TaskInstance.operator, TaskInstance.custom_operator_name, TaskInstance.state).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        ).first()
        if row is None:
            return None
        xcoms: dict[str, Any] = {}
        query = XComModel.get_many(
            run_id=run_id, dag_ids=dag_id, task_ids=task_id, map_indexes=map_index, limit=MAX_XCOMS
        )
        for entry in session.scalars(query):
            entry = cast("Any", entry)
            xcoms[entry.key] = XComModel.deserialize_value(entry)
        return TaskRecord(
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            operator=row.custom_operator_name or row.operator,
            state=str(row.state) if row.state is not None else None,
            xcoms=xcoms,
        )


def baseten_connections() -> list[str]:
    """The ids of the connections of type ``baseten`` in Airflow's database (environment ones are not listed)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(Connection.conn_id).where(Connection.conn_type == "baseten").limit(100)))
