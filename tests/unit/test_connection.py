"""Connection settings, test_connection() and the provider metadata Airflow reads."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from airflow_provider_baseten import get_provider_info
from airflow_provider_baseten.client.transport import DIRECT_INFERENCE_URL, LOWCODEAPI_URL, Settings
from airflow_provider_baseten.exceptions import BasetenConfigurationError, BasetenValidationError
from airflow_provider_baseten.hooks.baseten import BasetenHook
from tests.unit._support import KEY, Recorder, make_hook


def from_extra(api_key: Any = KEY, host: str | None = None, **extra: Any) -> Settings:
    return Settings.from_extra(api_key=api_key, host=host, extra=extra)


# -- Settings.from_extra ------------------------------------------------------------------------------------
def test_defaults():
    s = from_extra()
    assert (s.gateway, s.auth_scheme, s.url_format, s.model_id) == ("baseten", "Bearer", "auto", None)
    assert s.base_url == "https://api.baseten.co"
    assert s.inference_url == DIRECT_INFERENCE_URL


def test_everything_set_and_normalised():
    s = from_extra(
        api_key=f"  {KEY}\n",
        host="gateway.example.com/baseten/",
        gateway=" LowCodeAPI ",
        auth_scheme="api-key",
        url_format="OLD",
        model_id="abc123",
        inference_url="https://model-{model_id}.eu.baseten.co/",
    )
    assert s.api_key == KEY
    assert (s.gateway, s.auth_scheme, s.url_format, s.model_id) == ("lowcodeapi", "Api-Key", "old", "abc123")
    assert s.base_url == "https://gateway.example.com/baseten"
    assert s.inference_url == "https://model-{model_id}.eu.baseten.co"


def test_lowcodeapi_default_base_url():
    assert from_extra(gateway="lowcodeapi").base_url == LOWCODEAPI_URL


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"api_key": None}, "password"),
        ({"api_key": ""}, "password"),
        ({"api_key": "   "}, "password"),
        ({"gateway": "openai"}, "gateway"),
        ({"gateway": 5}, "gateway"),
        ({"auth_scheme": "Basic"}, "auth_scheme"),
        ({"auth_scheme": "Token"}, "auth_scheme"),
        ({"url_format": "newest"}, "url_format"),
        ({"url_format": True}, "url_format"),
        ({"inference_url": "not a url"}, "inference_url"),
        ({"inference_url": "ftp://model-{model_id}.api.baseten.co"}, "inference_url"),
        ({"inference_url": "https://"}, "inference_url"),
        ({"inference_url": "https://model-{model_id}.{region}.baseten.co"}, "inference_url"),
        ({"inference_url": "https://model {model_id}.api.baseten.co"}, "inference_url"),
        ({"host": "http://exa mple.com"}, "host"),
        ({"model_id": "a/b"}, "model_id"),
        ({"model_id": "x?y"}, "model_id"),
    ],
)
def test_bad_connection_fields_are_configuration_errors(kwargs, field):
    with pytest.raises(BasetenConfigurationError if field != "model_id" else BasetenValidationError) as info:
        from_extra(**kwargs)
    assert info.value.field == field
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_missing_key_message_says_where_to_put_it():
    with pytest.raises(BasetenConfigurationError, match="password field"):
        from_extra(api_key=None)


def test_configuration_error_is_a_validation_error():
    assert issubclass(BasetenConfigurationError, BasetenValidationError)


# -- test_connection() --------------------------------------------------------------------------------------
def test_test_connection_success_direct_asks_who_the_key_is():
    rec = Recorder(lambda r: httpx.Response(200, json={"user_id": "u1", "email": "ops@example.com"}))
    ok, message = make_hook(rec).test_connection()
    assert ok is True
    assert "as ops@example.com" in message and KEY not in message
    assert rec.count == 1 and rec.requests[0].method == "GET"  # one cheap authenticated GET
    assert rec.requests[0].url.path == "/v1/users/me"


def test_test_connection_success_through_the_gateway_lists_models():
    rec = Recorder(lambda r: httpx.Response(200, json={"data": {"models": [{"id": "a"}, {"id": "b"}]}}))
    ok, message = make_hook(rec, gateway="lowcodeapi").test_connection()
    assert ok is True
    assert "2 model(s)" in message
    assert KEY not in message
    assert rec.count == 1 and rec.requests[0].url.path.endswith("/v1/models")  # users/me is not in its reference


@pytest.mark.parametrize("gateway", ["baseten", "lowcodeapi"])
@pytest.mark.parametrize(
    ("respond", "says"),
    [
        (lambda r: httpx.Response(401, json={"error": f"bad key {KEY}"}), "Check the API key"),
        (lambda r: httpx.Response(403, json={"error": "forbidden"}), "Check the API key"),
        (lambda r: httpx.Response(200, text="<html>captive portal</html>"), "not valid JSON"),
    ],
)
def test_test_connection_failure(gateway, respond, says):
    ok, message = make_hook(Recorder(respond), gateway=gateway).test_connection()
    assert ok is False
    assert says in message
    assert KEY not in message


def test_test_connection_when_unreachable():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connection refused: {request.url}", request=request)

    hook = make_hook(Recorder(refuse), gateway="lowcodeapi")
    ok, message = hook.test_connection()
    assert ok is False
    assert "Connection to Baseten failed" in message
    assert KEY not in message


def test_test_connection_reads_the_airflow_connection(monkeypatch):
    conn = {"conn_type": "baseten", "password": KEY, "extra": {"gateway": "lowcodeapi", "model_id": "abc"}}
    monkeypatch.setenv("AIRFLOW_CONN_BASETEN_UNIT", json.dumps(conn))
    rec = Recorder(lambda r: httpx.Response(200, json={"data": {"models": []}}))
    hook = BasetenHook("baseten_unit", http_transport=httpx.MockTransport(rec))
    assert hook.test_connection() == (
        True,
        "Connected to LowCodeAPI at https://api.lowcodeapi.com/baseten: 0 model(s) visible.",
    )
    assert hook.settings.model_id == "abc"
    assert rec.requests[0].url.params["api_token"] == KEY


def test_test_connection_without_a_key(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BASETEN_NOKEY", json.dumps({"conn_type": "baseten", "extra": {}}))
    ok, message = BasetenHook("baseten_nokey", http_transport=httpx.MockTransport(lambda r: None)).test_connection()
    assert ok is False
    assert "no API key" in message


def test_test_connection_with_an_unknown_connection_id():
    ok, message = BasetenHook("baseten_does_not_exist").test_connection()
    assert ok is False
    assert "baseten_does_not_exist" in message


# -- provider metadata --------------------------------------------------------------------------------------
def _airflow_schema() -> dict[str, Any] | None:
    import airflow

    path = Path(airflow.__file__).parent / "provider_info.schema.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_provider_info_validates_against_airflows_schema():
    schema = _airflow_schema()
    if schema is None:  # pragma: no cover - older or slimmer Airflow builds
        pytest.skip("this Airflow has no provider_info.schema.json")
    jsonschema.validate(get_provider_info(), schema)


def test_provider_info_declares_the_connection_form():
    (conn,) = get_provider_info()["connection-types"]
    assert conn["connection-type"] == "baseten"
    module, _, cls = conn["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module), cls) is BasetenHook
    fields = conn["conn-fields"]
    assert set(fields) == {
        "gateway",
        "model_id",
        "inference_url",
        "chain_url",
        "model_apis_url",
        "auth_scheme",
        "url_format",
        "upload_endpoint_url",
    }
    for name, spec in fields.items():
        assert spec["label"] and "type" in spec["schema"], name
    assert fields["gateway"]["schema"]["enum"] == ["baseten", "lowcodeapi"]
    assert fields["auth_scheme"]["schema"]["enum"] == ["Bearer", "Api-Key"]
    assert fields["url_format"]["schema"]["enum"] == ["auto", "new", "old"]
    # Every value the form offers is one the settings accept.
    for gateway in fields["gateway"]["schema"]["enum"]:
        for scheme in fields["auth_scheme"]["schema"]["enum"]:
            for url_format in fields["url_format"]["schema"]["enum"]:
                from_extra(gateway=gateway, auth_scheme=scheme, url_format=url_format)
    behaviour = BasetenHook.get_ui_field_behaviour()
    assert set(behaviour["hidden_fields"]) == {"login", "schema", "port"}
    assert behaviour["relabeling"]["password"] == "API Key"


def test_provider_entry_point_is_registered():
    points = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_baseten")
    ]
    assert len(points) == 1
    assert points[0].load() is get_provider_info


def test_hook_class_attributes():
    assert (BasetenHook.conn_type, BasetenHook.default_conn_name, BasetenHook.conn_name_attr) == (
        "baseten",
        "baseten_default",
        "baseten_conn_id",
    )


def test_chain_and_model_apis_urls_come_from_the_extra_and_are_checked():
    from airflow_provider_baseten.client.transport import Settings
    from airflow_provider_baseten.exceptions import BasetenConfigurationError

    s = Settings.from_extra(
        api_key="k", host=None, extra={"chain_url": "http://c/{chain_id}/", "model_apis_url": "http://m/v1"}
    )
    assert (s.chain_url, s.model_apis_url) == ("http://c/{chain_id}", "http://m/v1")
    default = Settings.from_extra(api_key="k", host=None, extra={})
    assert default.chain_url == "https://chain-{chain_id}.api.baseten.co"
    assert default.model_apis_url == "https://inference.baseten.co/v1"
    for bad in ({"chain_url": "not a url"}, {"model_apis_url": "ftp:/x"}):
        with pytest.raises(BasetenConfigurationError):
            Settings.from_extra(api_key="k", host=None, extra=bad)
