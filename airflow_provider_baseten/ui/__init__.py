"""The Baseten pages in Airflow's UI: a task-instance tab and a navigation page (see :mod:`.app`).

Importing this package builds nothing and reads nothing: :func:`create_app` builds the app, and the plugin
(:mod:`airflow_provider_baseten.plugin`) calls it on the API server's first request to ``/baseten``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]


def create_app(**kwargs: Any) -> FastAPI:
    """Build the pages' FastAPI app; see :func:`airflow_provider_baseten.ui.app.create_app` for the arguments."""
    from airflow_provider_baseten.ui.app import create_app as build

    return build(**kwargs)
