"""The provider's Airflow plugin: the Baseten pages and the webhook receiver, mounted on Airflow's API server.

Registered through the ``airflow.plugins`` entry point, so it loads without configuration. Task runners,
schedulers and triggerers import plugins too, so importing this module does no database or network I/O and
imports no web framework: each app is built on its first request, on the API server only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class LazyASGIApp:
    """An ASGI app that builds the real one with ``factory`` on its first request.

    The factory runs in a thread (it may read a connection through a secrets backend), once. If it fails (say the
    webhook receiver's connection is not configured yet), the error is logged and requests get a plain 503 for
    :attr:`RETRY_SECONDS` before the next try, so anonymous traffic cannot make every request repeat the lookup.

    :param factory: a callable with no arguments that returns the ASGI app; it runs on the API server only.
    """

    #: Seconds to answer 503 after a failed build, before building again.
    RETRY_SECONDS = 60.0

    def __init__(self, factory: Callable[[], ASGIApp]) -> None:
        self._factory = factory
        self._app: ASGIApp | None = None
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Serve one ASGI connection, building the app first if this is the first one."""
        app = self._app or await self._build()
        if app is None:
            if scope.get("type") == "http":
                body = b"Not available: this Baseten app could not be built; the API server's log says why.\n"
                headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"60")]
                await send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    async def _build(self) -> ASGIApp | None:
        async with self._lock:
            if self._app is None and time.monotonic() >= self._retry_at:
                try:
                    self._app = await asyncio.to_thread(self._factory)
                except Exception:
                    self._retry_at = time.monotonic() + self.RETRY_SECONDS
                    log.exception("%r could not be built; answering 503 for %.0f s", self, self.RETRY_SECONDS)
        return self._app

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
