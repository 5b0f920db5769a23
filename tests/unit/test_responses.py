"""Envelope unwrapping and error surfacing: every bad answer becomes a short, redacted BasetenError."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from airflow_provider_baseten.client.transport import RetryPolicy
from airflow_provider_baseten.exceptions import (
    BasetenAuthError,
    BasetenError,
    BasetenNotFoundError,
    BasetenRateLimitError,
    BasetenResponseError,
    BasetenServerError,
    BasetenValidationError,
)
from tests.unit._support import KEY, MODEL, Recorder, make_hook

ONCE = RetryPolicy(max_attempts=1)
PYDANTIC_NOISE = ("pydantic", "errors.pydantic.dev", "validation error for", "Traceback", "input_value")


def hook_answering(status: int, *, gateway: str = "baseten", retry=ONCE, **response_kw):
    rec = Recorder(lambda r: httpx.Response(status, **response_kw))
    return make_hook(rec, gateway=gateway, url_format="new", retry=retry), rec


def assert_clean(exc: BasetenError) -> None:
    text = f"{exc} {exc!r} {exc.body_snippet or ''}"
    assert KEY not in text
    for noise in PYDANTIC_NOISE:
        assert noise not in str(exc), noise
    assert exc.__cause__ is None
    assert exc.body_snippet is None or len(exc.body_snippet) <= 310


# -- LowCodeAPI envelope -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_data_envelope_is_unwrapped(mode):
    hook, _ = hook_answering(200, gateway="lowcodeapi", json={"data": {"id": MODEL, "name": "m"}})
    model = hook.get_model(MODEL) if mode == "sync" else asyncio.run(hook.aget_model(MODEL))
    assert model.id == MODEL and model.name == "m"


def test_data_envelope_with_a_bare_list_is_unwrapped():
    hook, _ = hook_answering(200, gateway="lowcodeapi", json={"data": [{"id": "a"}, {"id": "b"}]})
    assert [m.id for m in hook.list_models()] == ["a", "b"]


def test_error_in_a_200_envelope_is_raised_with_status_and_message():
    hook, _ = hook_answering(200, gateway="lowcodeapi", json={"data": None, "error": "Model is not ready yet"})
    with pytest.raises(BasetenError) as info:
        hook.get_model(MODEL)
    assert info.value.status_code == 200
    assert "Model is not ready yet" in str(info.value)
    assert_clean(info.value)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BasetenValidationError),
        (401, BasetenAuthError),
        (403, BasetenAuthError),
        (404, BasetenNotFoundError),
        (422, BasetenValidationError),
        (429, BasetenRateLimitError),
        (500, BasetenServerError),
    ],
)
def test_error_in_a_4xx_5xx_envelope_is_raised_as_the_right_class(status, kind):
    hook, _ = hook_answering(status, gateway="lowcodeapi", json={"error": "upstream said no"})
    with pytest.raises(kind) as info:
        hook.get_model(MODEL)
    assert info.value.status_code == status
    assert "upstream said no" in str(info.value)
    assert_clean(info.value)


def test_missing_envelope_is_a_response_error():
    hook, _ = hook_answering(200, gateway="lowcodeapi", json={"id": MODEL})
    with pytest.raises(BasetenResponseError) as info:
        hook.get_model(MODEL)
    assert info.value.status_code == 200
    assert "envelope" in str(info.value)
    assert MODEL in info.value.body_snippet
    assert_clean(info.value)


def test_error_code_and_request_id_are_kept():
    hook, _ = hook_answering(
        400,
        json={"error": "bad input", "error_code": "client_error"},
        headers={"X-BASETEN-REQUEST-ID": "rid-42"},
    )
    with pytest.raises(BasetenValidationError) as info:
        hook.predict({"x": 1})
    assert (info.value.error_code, info.value.request_id) == ("client_error", "rid-42")
    assert "request_id=rid-42" in str(info.value)


@pytest.mark.parametrize("key", ["error", "message", "detail"])
def test_management_error_text_is_found_under_error_message_or_detail(key):
    hook, _ = hook_answering(422, json={key: "min_replica too large"})
    with pytest.raises(BasetenValidationError, match="min_replica too large"):
        hook.list_models()


# -- damaged answers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gateway", ["baseten", "lowcodeapi"])
def test_html_502_is_a_server_error_with_a_short_snippet(gateway):
    html = "<html><head><title>502 Bad Gateway</title></head><body>" + "x" * 5000 + KEY + "</body></html>"
    hook, _ = hook_answering(502, gateway=gateway, text=html, headers={"content-type": "text/html"})
    with pytest.raises(BasetenServerError) as info:
        hook.list_models()
    exc = info.value
    assert exc.status_code == 502
    assert "502 Bad Gateway" in exc.body_snippet
    assert len(str(exc)) < 800, "the message must not carry the whole page"
    assert_clean(exc)


@pytest.mark.parametrize("gateway", ["baseten", "lowcodeapi"])
def test_truncated_json_is_a_response_error(gateway):
    hook, _ = hook_answering(200, gateway=gateway, text='{"data": {"models": [{"id": "abc", "na')
    with pytest.raises(BasetenResponseError) as info:
        hook.list_models()
    assert info.value.status_code == 200
    assert "not valid JSON" in str(info.value)
    assert info.value.body_snippet.startswith('{"data"')
    assert_clean(info.value)


@pytest.mark.parametrize("gateway", ["baseten", "lowcodeapi"])
@pytest.mark.parametrize(
    ("call", "payload"),
    [
        (lambda h: h.list_models(), {"models": [{"id": 123, "name": ["not", "a", "string"]}]}),
        (lambda h: h.list_models(), {"models": "nope"}),
        (lambda h: h.get_model(MODEL), {"name": "no id"}),
        (lambda h: h.get_async_request("r1"), {"request_id": "r1", "status": {"nested": True}}),
        (lambda h: h.cancel_async_request("r1"), {"canceled": "maybe"}),
    ],
)
def test_wrong_field_types_are_a_response_error_with_status_and_no_pydantic_noise(gateway, call, payload):
    body = {"data": payload} if gateway == "lowcodeapi" else payload
    hook, _ = hook_answering(200, gateway=gateway, json=body, headers={"X-BASETEN-REQUEST-ID": "rid-7"})
    with pytest.raises(BasetenResponseError) as info:
        call(hook)
    exc = info.value
    assert exc.status_code == 200
    assert exc.request_id == "rid-7"
    assert "expected shape" in str(exc) or "list" in str(exc)
    assert exc.body_snippet
    assert_clean(exc)


def test_wrong_field_types_async_twin_too():
    hook, _ = hook_answering(201, json={"not_request_id": 1})
    with pytest.raises(BasetenResponseError) as info:
        asyncio.run(hook.aasync_predict({"x": 1}))
    assert info.value.status_code == 201
    assert_clean(info.value)


def test_empty_2xx_body_is_none_and_unknown_fields_are_kept():
    hook, _ = hook_answering(202)
    assert hook.wake() is None
    hook2, _ = hook_answering(200, json={"id": MODEL, "brand_new_field": {"x": 1}})
    assert hook2.get_model(MODEL).brand_new_field == {"x": 1}


def test_status_fields_are_open_strings():
    hook, _ = hook_answering(200, json={"request_id": "r1", "status": "SOMETHING_NEW", "errors": []})
    assert hook.get_async_request("r1").status == "SOMETHING_NEW"
