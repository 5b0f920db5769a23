"""The provider's Airflow plugin: the Baseten pages and the webhook receiver, mounted on Airflow's API server.

Registered through the ``airflow.plugins`` entry point, so it loads without configuration. Task runners,
schedulers and triggerers import plugins too, so importing this module does no database or network I/O and
imports no web framework: each app is built on its first request, on the API server only.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class LazyASGIApp:
    """An ASGI app that builds the real one with ``factory`` on its first request.

    :param factory: a callable with no arguments that returns the ASGI app; it runs once, on the API server.
    """

    def __init__(self, factory: Callable[[], ASGIApp]) -> None:
        self._factory = factory
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Serve one ASGI connection, building the app first if this is the first one."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._factory()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return f"LazyASGIApp({getattr(self._factory, '__qualname__', self._factory)!r})"


#: Where the pages' app is mounted on the API server.
UI_PREFIX = "/baseten"
#: The task-instance tab; Airflow fills in the placeholders (other issues link to this URL too).
TI_TAB_HREF = f"{UI_PREFIX}/ti?dag_id={{DAG_ID}}&run_id={{RUN_ID}}&task_id={{TASK_ID}}&map_index={{MAP_INDEX}}"


def _pages() -> ASGIApp:
    """Build the Baseten pages (imported here, not at module level: only the API server needs FastAPI)."""
    from airflow_provider_baseten.ui import create_app

    return create_app()


def webhook_receiver_app() -> ASGIApp:
    """The webhook receiver, configured by the ``baseten_webhooks`` connection (built on its first request).

    This is the provider's one deliberately unauthenticated route: Baseten cannot log in to Airflow, so each
    delivery is authenticated by its HMAC signature instead (``airflow_provider_baseten.webhooks.app``).
    """
    from airflow_provider_baseten.webhooks.app import create_app
    from airflow_provider_baseten.webhooks.settings import settings_from_connection

    return create_app(settings_from_connection())


class BasetenPlugin(AirflowPlugin):
    """Adds the Baseten pages and the webhook receiver to Airflow's API server."""

    name = "baseten"
    fastapi_apps: list[Any] = [
        {"app": LazyASGIApp(_pages), "url_prefix": UI_PREFIX, "name": "Baseten"},
        {"app": LazyASGIApp(webhook_receiver_app), "url_prefix": "/baseten-webhooks", "name": "Baseten webhooks"},
    ]
    external_views: list[Any] = [
        # An iframe tab on every task instance (Airflow 3.1 - 3.3 cannot scope it to the provider's
        # operators; the page shows a one-line empty state for other tasks).
        {
            "name": "Baseten",
            "destination": "task_instance",
            "url_route": "baseten",
            "href": TI_TAB_HREF,
        },
        {"name": "Baseten", "destination": "nav", "url_route": "baseten-overview", "href": f"{UI_PREFIX}/"},
    ]
