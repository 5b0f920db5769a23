"""The Baseten pages: a FastAPI app the plugin mounts at ``/baseten`` on Airflow's API server.

Routes (each declares Airflow's auth dependency: no token is 401, a Dag the user may not read is 403):

* ``GET /baseten/ti?dag_id=&run_id=&task_id=&map_index=``: the task-instance tab (an iframe in Airflow's UI).
* ``GET /baseten/``: the navigation page, per connection the user may read.
* ``GET /baseten/static/<file>``: the chart library and the page script, shipped in the wheel.

Pages are rendered on the server with Jinja2 (autoescape on), so a model name or a log line holding HTML
is shown as text; the chart's data goes into the page as escaped JSON. No API key, password or presigned
URL is put in a page: the views carry ids, statuses and Baseten UI links only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

import airflow_provider_baseten.ui.data as data
from airflow_provider_baseten.ui.data import TaskRecord

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = HERE / "static"
#: The files ``/static`` serves, with their MIME types: nothing else under the package is reachable.
STATIC_FILES = {
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
    "baseten.js": "text/javascript; charset=utf-8",
    "baseten.css": "text/css; charset=utf-8",
}
#: The files are versioned with the provider, but a page must not keep an old script after an upgrade:
#: the browser revalidates (cheap) instead of caching blindly.
STATIC_CACHE = "no-cache"


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(default=True), cache_size=50
    )
    return env


def _default_hook(conn_id: str) -> Any:
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    return BasetenHook(conn_id)


def _airflow_auth() -> tuple[Any, Any, Callable[[Any, str], bool]]:
    """Airflow's dependencies: read the Dag's task instances; see the plugin pages; may read a connection."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        AccessView,
        ConnectionDetails,
        DagAccessEntity,
    )
    from airflow.api_fastapi.core_api.security import requires_access_dag, requires_access_view

    def may_read_connection(user: Any, conn_id: str) -> bool:
        return bool(
            get_auth_manager().is_authorized_connection(
                method="GET", details=ConnectionDetails(conn_id=conn_id), user=user
            )
        )

    return (
        requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE),
        requires_access_view(AccessView.PLUGINS),
        may_read_connection,
    )


def _get_user() -> Any:
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def create_app(
    *,
    load_task: Callable[[str, str, str, int], TaskRecord | None] | None = None,
    hook_factory: Callable[[str], Any] | None = None,
    connections: Callable[[], list[str]] | None = None,
) -> FastAPI:
    """Build the pages' app (the plugin calls it on the API server's first request to ``/baseten``).

    :param load_task: Reads a task instance's record (default: Airflow's database, :mod:`.records`).
    :param hook_factory: Builds the hook for a connection id (default: :class:`BasetenHook`).
    :param connections: Lists the connection ids the nav page shows (default: the ``baseten`` connections in
        Airflow's database, and ``baseten_default``).
    """
    import airflow_provider_baseten.ui.records as records

    load = load_task or records.load_task
    make_hook = hook_factory or _default_hook
    list_conns = connections or (lambda: sorted({"baseten_default", *records.baseten_connections()}))
    read_ti, see_plugins, may_read_connection = _airflow_auth()
    get_user = _get_user()
    templates = _templates()

    app = FastAPI(title="Baseten", docs_url=None, redoc_url=None, openapi_url=None)
    # Tests override these (``app.dependency_overrides``); the routes depend on exactly these objects.
    app.state.read_ti, app.state.see_plugins, app.state.get_user = read_ti, see_plugins, get_user
    app.state.may_read_connection = may_read_connection

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(static="static", **context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    @app.get("/ti", response_class=HTMLResponse, dependencies=[Depends(read_ti)])
    def task_instance_tab(dag_id: str, run_id: str, task_id: str, map_index: str = Query("-1")) -> HTMLResponse:
        """The task-instance tab."""
        try:
            index = int(map_index)
        except ValueError:
            index = -1  # Airflow leaves ``{MAP_INDEX}`` unreplaced on some views
        record = load(dag_id, run_id, task_id, index)
        kind = data.task_kind(record) if record is not None else data.OTHER
        if record is None or kind == data.OTHER:
            return page("empty.html", record=record, task_id=task_id)
        if record.conn_id is None and kind != data.BATCH:
            return page("empty.html", record=record, task_id=task_id, reason="no Baseten connection recorded")
        try:
            view = _view(kind, record, make_hook)
        except Exception as exc:  # Baseten down or a job deleted: say so in the tab, never a stack trace
            from airflow_provider_baseten.client.redact import redact

            log.warning("Baseten tab for %s/%s/%s: %s", dag_id, run_id, task_id, redact(str(exc)))
            return page("error.html", record=record, kind=kind, error=redact(f"{type(exc).__name__}: {exc}"))
        return page(f"{kind}.html", record=record, kind=kind, view=view)

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(see_plugins)])
    def nav_page(user: Any = Depends(get_user)) -> HTMLResponse:  # noqa: B008 (a local dependency)
        """The navigation page: per connection the user may read, what Baseten holds."""
        sections = []
        for conn_id in list_conns():
            if not app.state.may_read_connection(user, conn_id):
                continue
            try:
                sections.append(data.nav_view(conn_id, make_hook(conn_id)))
            except Exception as exc:  # one unreachable connection must not hide the others
                from airflow_provider_baseten.client.redact import redact

                sections.append({"conn_id": conn_id, "error": redact(f"{type(exc).__name__}: {exc}")})
        return page("nav.html", sections=sections)

    @app.get("/static/{name}", dependencies=[Depends(get_user)])
    def static(name: str) -> Response:
        """One of :data:`STATIC_FILES`, with its MIME type."""
        media = STATIC_FILES.get(name)
        if media is None:
            raise HTTPException(status_code=404, detail="Not found")
        return Response((STATIC / name).read_bytes(), media_type=media, headers={"Cache-Control": STATIC_CACHE})

    return app


def _view(kind: str, record: TaskRecord, make_hook: Callable[[str], Any]) -> dict[str, Any]:
    if kind == data.BATCH:
        return data.batch_view(record)
    hook = make_hook(record.conn_id or "")
    try:
        if kind == data.TRAINING:
            return data.training_view(record, hook)
        if kind == data.DEPLOY:
            return data.deploy_view(record, hook)
        return data.async_view(record, hook)
    finally:
        hook.close()
