"""What the emulator's app and its fault middleware both speak: Baseten's error bodies and the table that
maps a request to its endpoint. Its own module so that :mod:`.faults` does not import :mod:`.app` (which
builds the middleware): neither imports the other's module at any time.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.routing import Match, Route

from airflow_provider_baseten.client.routes import Endpoint

#: An ASGI connection scope.
Scope = MutableMapping[str, Any]
#: (route, endpoint, surface kind) for every generated API route, fewest path parameters first.
RouteTable = list[tuple[Route, Endpoint, str]]

_INFERENCE_CODES = {
    400: "client_error",
    401: "unauthorized",
    404: "model_does_not_exist",
    413: "payload_too_large",
    429: "rate_limited",
    500: "internal_baseten_error",
    502: "model_unavailable",
    503: "model_unavailable",
    504: "timeout",
}


def error_body(kind: str, surface: str, status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """Baseten's (or LowCodeAPI's) error shape for ``kind`` (``direct``/``new``/``old``) and ``surface``."""
    if kind != "direct":
        body: dict[str, Any] = {"data": None, "error": message}
        if code:
            body["error_code"] = code
        return body
    if surface != "management":  # model and chain hosts, Model APIs
        return {"error": message, "error_code": code or _INFERENCE_CODES.get(status, "internal_baseten_error")}
    return {"error": message}


def match_route(routes: RouteTable, scope: Scope) -> tuple[Endpoint, str] | None:
    """The endpoint and surface kind (``direct``/``new``/``old``) a request is for (``None``: not an API route)."""
    for route, ep, kind in routes:
        m, _ = route.matches(scope)
        if m == Match.FULL:
            return ep, kind
    return None
