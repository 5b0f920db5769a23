"""The two httpx private names the batch path relies on, pinned: this fails if an httpx release changes them.

Both are kept for speed, where the public API costs per-request work the batch engine is measured on
(``make bench``): ``AsyncClient._transport_for_url`` lets a prepared request skip ``send``'s auth, redirect,
cookie and event-hook layers (``_batch/prepared.py``'s ``_direct_send``), and ``Response._content`` hands a
body the lean HTTP/1.1 path has already read to httpx without decoding it again (``_h1.py``).
pyproject.toml bounds httpx below 1.0 as well; a new minor release must pass this file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from airflow_provider_baseten.client.batch.prepared import _direct_send


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


def test_transport_for_url_is_the_transport_send_would_use() -> None:
    default, mounted = httpx.MockTransport(_ok), httpx.MockTransport(_ok)
    client = httpx.AsyncClient(transport=default, mounts={"all://proxied.example": mounted})
    pick = client._transport_for_url
    assert pick(httpx.URL("https://api.example/v1")) is default
    assert pick(httpx.URL("https://proxied.example/v1")) is mounted  # proxy mounts apply, as in send
    assert isinstance(pick(httpx.URL("https://api.example/")), httpx.AsyncBaseTransport)


def test_direct_send_goes_through_the_clients_own_transport() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _ok(request)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
            send = _direct_send(client)
            assert send != client.send, "httpx lost _transport_for_url: the batch path fell back to send"
            request = httpx.Request("POST", "https://api.example/predict", content=b"{}")
            return await send(request)

    response = asyncio.run(go())
    assert len(seen) == 1 and response.request is seen[0]
    assert response.json() == {"ok": True}


class _Unread(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:  # pragma: no cover - must not be reached
        raise AssertionError("httpx read the stream although _content was set")
        yield b""


@pytest.mark.parametrize("body", [b'{"a": 1}', b""])
def test_a_set_content_is_the_body_without_reading_the_stream(body: bytes) -> None:
    response = httpx.Response(200, stream=_Unread(), request=httpx.Request("GET", "https://api.example/"))
    response._content = body
    assert asyncio.run(response.aread()) == body
    assert response.content == body
    if body:
        assert response.json() == {"a": 1}


def test_pyproject_bounds_httpx_below_1() -> None:
    from pathlib import Path

    import airflow_provider_baseten

    text = (Path(airflow_provider_baseten.__file__).parents[1] / "pyproject.toml").read_text()
    assert '"httpx>=0.27,<1"' in text, "pin httpx below 1.0: the batch path relies on the names tested here"
