"""The lean HTTP/1.1 batch transport against a real socket server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from airflow_provider_baseten.client import h1 as _h1

pytestmark = pytest.mark.skipif(not _h1.AVAILABLE, reason="httptools not installed")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


async def _serve(handler: Handler) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def _run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_keep_alive_reuses_one_connection_and_sends_body() -> None:
    connections = 0
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head, body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(head)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        writer.close()

    async def main() -> None:
        server, url = await _serve(handler)
        async with httpx.AsyncClient(transport=_h1.H1Transport()) as client:
            for i in range(3):
                r = await client.post(url + "/predict?x=1", content=b'{"i":%d}' % i, headers={"X-Test": "yes"})
                assert r.status_code == 200 and r.json() == {"i": i}
        server.close()

    _run(main())
    assert connections == 1
    assert seen[0].startswith(b"POST /predict?x=1 HTTP/1.1\r\n")
    assert b"x-test: yes" in seen[0].lower() and b"accept-encoding: identity" in seen[0].lower()


def test_chunked_answer_and_connection_close_reconnects() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\nConnection: close\r\n\r\n")
        writer.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, url = await _serve(handler)
        async with httpx.AsyncClient(transport=_h1.H1Transport()) as client:
            for _ in range(2):
                r = await client.post(url + "/p", content=b"{}")
                assert r.status_code == 503 and r.text == "hello world" and r.headers["retry-after"] == "3"
        server.close()

    _run(main())
    assert connections == 2


def test_dropped_connection_is_remote_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    async def main() -> None:
        server, url = await _serve(handler)
        async with httpx.AsyncClient(transport=_h1.H1Transport()) as client:
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await client.post(url + "/p", content=b"{}")
        server.close()

    _run(main())


def test_truncated_answer_and_timeouts() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await _read_request(reader)
        if b"/slow" in head:
            await asyncio.sleep(5)
            return
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial":')
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, url = await _serve(handler)
        async with httpx.AsyncClient(transport=_h1.H1Transport(), timeout=httpx.Timeout(5.0, read=0.2)) as client:
            with pytest.raises(httpx.RemoteProtocolError, match="before the response was complete"):
                await client.post(url + "/p", content=b"{}")
            with pytest.raises(httpx.ReadTimeout):
                await client.post(url + "/slow", content=b"{}")
        server.close()

    _run(main())


def test_connect_error() -> None:
    async def main() -> None:
        server, url = await _serve(lambda r, w: asyncio.sleep(0))
        server.close()
        await server.wait_closed()
        async with httpx.AsyncClient(transport=_h1.H1Transport()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post(url + "/p", content=b"{}")

    _run(main())


def test_a_prebuilt_batch_head_writes_the_same_request_and_reads_the_whole_answer() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head, body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append((head, body))
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Baseten-Request-Id: r1\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        writer.close()

    async def main() -> None:
        server, url = await _serve(handler)
        transport = _h1.H1Transport()
        headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
        plain = httpx.Request("POST", url + "/predict", headers=headers, content=b'{"i":1}')
        template = httpx.Request("POST", url + "/predict", headers=headers)
        raw = httpx.Request(
            "POST", url + "/predict", headers=plain.headers, extensions={_h1.RAW: (_h1.raw_head(template), b'{"i":1}')}
        )
        for request in (plain, raw):
            response = await transport.handle_async_request(request)
            assert await response.aread() == b'{"i":1}' and response.json() == {"i": 1}
            assert response.headers["x-baseten-request-id"] == "r1"
        await transport.aclose()
        server.close()

    _run(main())
    assert len(seen) == 2 and seen[0] == seen[1]


def test_a_close_delimited_answer_is_read_whole_not_retried() -> None:
    """HTTP/1.1 without Content-Length or chunks: the body ends when the server closes. It was read as a
    RemoteProtocolError and retried as an outage (issue 21 §6); now it is the answer, sent once."""
    from airflow_provider_baseten.client.routes import endpoint
    from airflow_provider_baseten.client.transport import Settings, Transport

    requests = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await _read_request(reader)
        requests += 1
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"id": "dep1", ')
        await writer.drain()
        writer.write(b'"status": "ACTIVE"}')  # the body arrives in two pieces, then the close ends it
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, url = await _serve(handler)
        async with httpx.AsyncClient(transport=_h1.H1Transport()) as client:
            for _ in range(2):  # and the next request reconnects
                r = await client.get(url + "/v1/models/m/deployments/dep1")
                assert r.status_code == 200 and r.json() == {"id": "dep1", "status": "ACTIVE"}
        # Through the provider's transport, on a batch worker's client (this lean path): one request, no retry.
        transport = Transport(Settings(api_key="k", management_url=url))
        ep = endpoint("get_deployment")
        req = transport.build(ep, {"model_id": "m", "deployment_id": "dep1"})
        client = transport.new_async_client()
        try:
            out = await transport.asend_with_retries(client, ep, req)
        finally:
            await client.aclose()
        assert out.error is None and out.value == {"id": "dep1", "status": "ACTIVE"}, out
        server.close()

    _run(main())
    assert requests == 3  # counted on the server: nothing retried
