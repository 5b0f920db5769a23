"""LazyASGIApp: the plugin's apps are built once, off the event loop; a failed build answers 503 for a while
instead of repeating the lookup on every (possibly anonymous) request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from airflow_provider_baseten.plugin import LazyASGIApp


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def get(app: LazyASGIApp) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get("/")


async def test_the_app_is_built_once_on_the_first_request() -> None:
    built: list[int] = []

    def factory() -> Any:
        built.append(1)
        return ok_app

    app = LazyASGIApp(factory)
    assert built == []  # nothing at construction (the plugin's import)
    assert [(await get(app)).status_code for _ in range(3)] == [200, 200, 200]
    assert built == [1]


async def test_a_failed_build_answers_503_and_is_retried_only_after_a_while(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    now = [1000.0]
    monkeypatch.setattr("airflow_provider_baseten.plugin.time.monotonic", lambda: now[0])

    def factory() -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise LookupError("The conn_id `baseten_webhooks` isn't defined")
        return ok_app

    app = LazyASGIApp(factory)
    first, second = await get(app), await get(app)
    assert (first.status_code, second.status_code) == (503, 503) and first.headers["retry-after"] == "60"
    assert calls == [1]  # the second request did not build again
    assert "could not be built" in caplog.text and "baseten_webhooks" not in first.text
    now[0] += LazyASGIApp.RETRY_SECONDS
    assert (await get(app)).status_code == 200 and calls == [1, 1]
