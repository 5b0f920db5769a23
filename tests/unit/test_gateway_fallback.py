"""LowCodeAPI: new format first, old format on 404, the choice remembered per process and logged once."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from airflow_provider_baseten.exceptions import BasetenNotFoundError, BasetenValidationError
from tests.unit._support import CHAIN, KEY, MODEL, Recorder, make_hook

LOGGER = "airflow_provider_baseten"


def old_only(request: httpx.Request) -> httpx.Response:
    """A gateway that only knows the old format (sanitized path + params in the query)."""
    path = request.url.path
    if path == "/baseten/v1/models/modelid" and request.url.params.get("model_id") == MODEL:
        return httpx.Response(200, json={"data": {"id": MODEL}})
    if path == "/baseten/v1/chains/chainid" and request.url.params.get("chain_id") == CHAIN:
        return httpx.Response(200, json={"data": {"id": CHAIN}})
    if path == "/baseten/v1/models":
        return httpx.Response(200, json={"data": {"models": []}})
    return httpx.Response(404, json={"error": "Not found"})


def new_only(request: httpx.Request) -> httpx.Response:
    if request.url.path == f"/baseten/v1/models/{MODEL}":
        return httpx.Response(200, json={"data": {"id": MODEL}})
    return httpx.Response(404, json={"error": "Not found"})


def format_logs(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "URL format" in r.getMessage()]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_404_on_new_format_falls_back_to_old_and_remembers(mode, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    rec = Recorder(old_only)
    hook = make_hook(rec, gateway="lowcodeapi", url_format="auto")
    call = hook.get_model if mode == "sync" else lambda m: asyncio.run(hook.aget_model(m))

    assert call(MODEL).id == MODEL
    assert [r.url.path for r in rec.requests] == [f"/baseten/v1/models/{MODEL}", "/baseten/v1/models/modelid"]
    assert dict(rec.requests[1].url.params) == {"model_id": MODEL, "api_token": KEY}

    assert call(MODEL).id == MODEL
    assert rec.count == 3, "the second call goes straight to the old format"
    assert rec.requests[2].url.path == "/baseten/v1/models/modelid"

    logs = format_logs(caplog)
    assert len(logs) == 1, logs
    assert "get_model" in logs[0] and "old" in logs[0]
    assert hook.sleeps == [], "a format fallback is not a retry"


def test_memory_is_per_process_not_per_hook():
    rec = Recorder(old_only)
    make_hook(rec, gateway="lowcodeapi").get_model(MODEL)
    assert rec.count == 2
    make_hook(rec, gateway="lowcodeapi").get_model(MODEL)
    assert rec.count == 3
    assert rec.requests[-1].url.path == "/baseten/v1/models/modelid"


def test_memory_is_per_endpoint():
    rec = Recorder(old_only)
    hook = make_hook(rec, gateway="lowcodeapi")
    hook.get_model(MODEL)
    hook.get_chain(CHAIN)
    # get_chain was not remembered by get_model's fallback: it tried the new format first too.
    assert [r.url.path for r in rec.requests] == [
        f"/baseten/v1/models/{MODEL}",
        "/baseten/v1/models/modelid",
        f"/baseten/v1/chains/{CHAIN}",
        "/baseten/v1/chains/chainid",
    ]


def test_new_format_that_works_is_remembered_and_logged_once(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    rec = Recorder(new_only)
    hook = make_hook(rec, gateway="lowcodeapi")
    hook.get_model(MODEL)
    hook.get_model(MODEL)
    hook.get_model(MODEL)
    assert rec.count == 3
    assert all(r.url.path == f"/baseten/v1/models/{MODEL}" for r in rec.requests)
    logs = format_logs(caplog)
    assert len(logs) == 1 and "new" in logs[0]


def test_404_on_both_formats_raises_not_found_and_remembers_nothing():
    rec = Recorder(lambda r: httpx.Response(404, json={"error": "no such model"}))
    hook = make_hook(rec, gateway="lowcodeapi")
    with pytest.raises(BasetenNotFoundError) as info:
        hook.get_model(MODEL)
    assert info.value.status_code == 404
    assert "no such model" in str(info.value)
    assert rec.count == 2
    with pytest.raises(BasetenNotFoundError):
        hook.get_model(MODEL)
    assert rec.count == 4, "nothing was remembered, so both formats are tried again"


def test_endpoint_without_path_params_has_no_old_format_to_fall_back_to():
    rec = Recorder(lambda r: httpx.Response(404, json={"error": "gone"}))
    hook = make_hook(rec, gateway="lowcodeapi")
    with pytest.raises(BasetenNotFoundError):
        hook.list_models()
    assert rec.count == 1


@pytest.mark.parametrize(
    ("url_format", "path"), [("new", f"/baseten/v1/models/{MODEL}"), ("old", "/baseten/v1/models/modelid")]
)
def test_explicit_url_format_never_falls_back(url_format, path):
    rec = Recorder(lambda r: httpx.Response(404, json={"error": "nope"}))
    hook = make_hook(rec, gateway="lowcodeapi", url_format=url_format)
    with pytest.raises(BasetenNotFoundError):
        hook.get_model(MODEL)
    assert [r.url.path for r in rec.requests] == [path]


def test_direct_gateway_never_falls_back():
    rec = Recorder(lambda r: httpx.Response(404, json={"error": "no such model"}))
    hook = make_hook(rec)
    with pytest.raises(BasetenNotFoundError):
        hook.get_model(MODEL)
    assert rec.count == 1


def test_fallback_does_not_hide_other_errors():
    # A 400 on the new format is an answer, not a "wrong format" signal.
    rec = Recorder(lambda r: httpx.Response(400, json={"error": "bad"}))
    hook = make_hook(rec, gateway="lowcodeapi")
    with pytest.raises(BasetenValidationError, match="bad"):
        hook.get_model(MODEL)
    assert rec.count == 1
