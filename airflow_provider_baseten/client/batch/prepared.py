"""A predict request built once and sent many times, through the transport's public seam."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from airflow_provider_baseten.client.h1 import RAW, raw_head
from airflow_provider_baseten.client.transport import encode_json
from airflow_provider_baseten.exceptions import (
    BasetenError,
)

if TYPE_CHECKING:
    from airflow_provider_baseten.client.transport import Transport


class Route(Protocol):
    """What the engine needs to know of the call to make per item (the hook's inference routing gives it)."""

    name: str
    params: dict[str, str]
    model_id: str | None


class _Prepared:
    """A predict request built once and re-used with a new body per item (no per-item URL parsing)."""

    def __init__(self, transport: Transport, route: Route) -> None:
        from airflow_provider_baseten.client.routes import endpoint

        self.transport = transport
        self.route = route
        self.ep = endpoint(route.name)
        self._probe_lock = asyncio.Lock()
        self.learn_format()

    def learn_format(self) -> None:
        """Build the template for the URL format known now (LowCodeAPI may need one probe to learn it)."""
        transport = self.transport
        formats = transport.formats(self.ep) if transport.settings.gateway == "lowcodeapi" else ("new",)
        self.template = transport.build(
            self.ep, self.route.params, model_id=self.route.model_id, body={}, url_format=formats[0]
        )
        self._headers = [(k, v) for k, v in self.template.headers.raw if k.lower() != b"content-length"]
        self._head = raw_head(self.template)  # what the lean HTTP/1.1 transport writes before each body
        self.needs_probe = len(formats) > 1

    async def send(
        self, client: httpx.AsyncClient, item: Any, send: _Send | None = None
    ) -> tuple[Any, str | None, BasetenError | None]:
        try:
            body = encode_json(item, "input")
            if self.needs_probe:
                async with self._probe_lock:
                    if self.needs_probe:
                        out = await self.transport.arequest(
                            self.route.name, self.route.params, body=item, model_id=self.route.model_id, client=client
                        )
                        self.learn_format()
                        return out, None, None
            t = self.template
            # The template's headers plus this body's length, and the body as a ready stream: three times
            # cheaper than httpx.Request(content=...) re-validating the headers for every item.
            headers = httpx.Headers([*self._headers, (b"Content-Length", b"%d" % len(body))])
            extensions = {**t.extensions, RAW: (self._head, body)}
            req = httpx.Request(t.method, t.url, headers=headers, stream=httpx.ByteStream(body), extensions=extensions)
            outcome = await self.transport.asend_with_retries(client, self.ep, req, send)
            if outcome.error is not None:
                raise outcome.error
            return outcome.value, None, None
        except BasetenError as exc:
            return None, exc.message, exc


_Send = Callable[[httpx.Request], Awaitable[httpx.Response]]


def _direct_send(client: httpx.AsyncClient) -> _Send:
    """``client.send`` minus the client-level work a prepared batch request never needs.

    ``AsyncClient.send`` wraps the transport call in auth, redirect, cookie-jar, event-hook and per-request
    INFO-logging layers; for a batch request (headers already complete, no client auth, redirects not
    followed, no hooks, and a cookie jar nothing ever reads because prepared requests skip ``build_request``)
    those layers only cost CPU: about a quarter of it per request in the profile. The transport is still the
    client's own (its proxy mounts, limits, SSL context and mocked transports apply), chosen per request
    exactly as ``send`` would. Falls back to ``client.send`` on an httpx without ``_transport_for_url``.
    """
    pick = getattr(client, "_transport_for_url", None)
    if pick is None:  # pragma: no cover - an httpx that reorganised its internals: take the ordinary path
        return client.send

    async def send(request: httpx.Request) -> httpx.Response:
        response: httpx.Response = await pick(request.url).handle_async_request(request)
        response.request = request
        return response

    return send
