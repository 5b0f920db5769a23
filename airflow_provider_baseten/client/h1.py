"""A lean HTTP/1.1 transport for batch workers: one keep-alive connection, one request at a time.

httpx's default transport (httpcore + h11 + anyio) spends most of a batch's CPU per request on work a batch
worker does not need: pool bookkeeping, cancel scopes, pure-Python parsing and two socket writes per
request. This transport plugs into the same ``httpx.AsyncClient`` seam, writes each request in one call,
parses answers with ``httptools`` (C, installed with Airflow through uvicorn[standard]) and raises httpx's
own exception types, so retries and error handling upstream are unchanged. Proxy routes stay with httpx
(the client mounts its proxy transports before this one is consulted).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, cast

import httpx

#: A request extension a batch request may carry: ``(head, body)``, the request line and headers (all but
#: ``Content-Length``, ending in ``\r\n``) built once for the whole batch by :func:`raw_head`, and the body.
#: Requests without it are serialised from their ``httpx`` headers as usual.
RAW = "baseten_h1_raw"

try:
    import httptools
except ImportError:  # pragma: no cover - httptools comes with Airflow; without it batch uses httpx's transport
    AVAILABLE = False
else:
    AVAILABLE = True


class _Protocol(asyncio.Protocol):
    """Feeds bytes to httptools and resolves one response future at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bool]] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._started = False
        self._until_close = False  # the answer's body has no length and no chunks: it ends when the server closes

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_connection with a TCP socket always hands a stream transport (typeshed: BaseTransport)
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"Malformed HTTP response: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._started and self._until_close and exc is None:
            # A close-delimited body (HTTP/1.1 allows it): the server's close is its end, not a failure.
            # httptools cannot be told the stream ended, so the message is completed here.
            self.on_message_complete()
            return
        if self._started:
            what = "Server disconnected before the response was complete."
        else:
            what = "Server disconnected without sending a response."
        self._fail(httpx.RemoteProtocolError(what) if exc is None else httpx.ReadError(str(exc) or what))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._started = True
        self._until_close = False
        self._headers, self._body = [], []

    def on_headers_complete(self) -> None:
        framed = any(
            n == b"content-length" or (n == b"transfer-encoding" and b"chunked" in v.lower())
            for n, v in ((name.lower(), value) for name, value in self._headers)
        )
        self._until_close = not framed

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._started = False
        keep_alive = self._parser.should_keep_alive() and not self.closed
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self._parser.get_status_code(), self._headers, b"".join(self._body), keep_alive))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)


def raw_head(request: httpx.Request) -> bytes:
    """``request``'s request line and headers as this transport writes them, less ``Content-Length`` and the
    blank line that ends the head (the same for every request of a batch: build it once)."""
    url = request.url
    lines = [
        b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (request.method.encode(), url.raw_path, request.headers["host"].encode())
    ]
    for name, value in request.headers.raw:
        lname = name.lower()
        if lname in (b"host", b"content-length"):
            continue
        if lname == b"accept-encoding":  # answers come back as sent: no decoding step needed
            value = b"identity"
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


class H1Transport(httpx.AsyncBaseTransport):
    """One HTTP/1.1 keep-alive connection (reconnects when the server closes it).

    :param ssl_context: Used for ``https`` URLs (share one across workers: building one costs ~40 ms).
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._proto: _Protocol | None = None
        self._origin: tuple[bytes, bytes, int] | None = None

    async def _connect(
        self, request: httpx.Request, origin: tuple[bytes, bytes, int], timeout: float | None
    ) -> _Protocol:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = None
        if scheme == b"https":
            if self._ssl is None:
                from airflow_provider_baseten.client.http import shared_ssl_context

                self._ssl = shared_ssl_context()
            context = self._ssl
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(_Protocol, host.decode("ascii"), port, ssl=context),
                timeout,
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout("Timed out connecting", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        self._origin = origin
        return proto

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on the kept-alive connection and return the complete response."""
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80))
        timeouts = request.extensions.get("timeout", {})
        proto = self._proto
        if proto is None or proto.closed or self._origin != origin:
            await self._drop()
            proto = self._proto = await self._connect(request, origin, timeouts.get("connect"))
        raw = request.extensions.get(RAW)
        if raw is not None:  # a batch request: its head was built once for the batch
            head, body = raw
        else:
            head, body = raw_head(request), await request.aread()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        proto.waiter = waiter
        assert proto.transport is not None
        proto.transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
        # One timer on the answer's own future: asyncio.wait_for would add a second future, a callback and
        # a loop step to every request.
        read_timeout = timeouts.get("read")
        timer = loop.call_later(read_timeout, _expire, waiter) if read_timeout is not None else None
        try:
            status, headers, content, keep_alive = await waiter
        except asyncio.TimeoutError:
            await self._drop()
            raise httpx.ReadTimeout("Timed out reading the response", request=request) from None
        except httpx.HTTPError as exc:
            await self._drop()
            exc.request = request
            raise
        finally:
            proto.waiter = None
            if timer is not None:
                timer.cancel()
        if not keep_alive:
            await self._drop()
        # The body is complete: hand it over as read. (Response(content=...) would stream it through the
        # decoders again; an httpx without ``_content`` just reads the stream.)
        response = httpx.Response(status, headers=headers, stream=httpx.ByteStream(content), request=request)
        response._content = content
        return response

    async def _drop(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None

    async def aclose(self) -> None:
        """Close the connection."""
        await self._drop()
