"""The Baseten pages in Airflow's UI: a task-instance tab and a navigation page (``ui/app.py``).

Importing this package builds nothing and reads nothing: :func:`create_app` builds the app, and the plugin
(:mod:`airflow_provider_baseten.plugin`) calls it on the API server's first request to ``/baseten``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]


def create_app(**kwargs: Any) -> FastAPI:
    """Build the pages' FastAPI app (the plugin calls it on the API server's first request to ``/baseten``).

    :param kwargs: For tests: ``load_task(dag_id, run_id, task_id, map_index)`` reads a task instance's
        :class:`~airflow_provider_baseten.ui.data.TaskRecord` (default: Airflow's database),
        ``hook_factory(conn_id)`` builds the hook, ``connections()`` lists the nav page's connection ids.
    """
    from airflow_provider_baseten.ui.app import create_app as build

    return build(**kwargs)
