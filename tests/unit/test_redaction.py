"""No API key in any log record (DEBUG included), exception text, traceback or repr, on the whole surface.

Every endpoint case runs on both gateways (LowCodeAPI carries the key in the URL query), sync and async,
answering successfully and then through each error path, while every log record is captured at DEBUG.
The keys are planted where a careless implementation would echo them: error bodies, HTML pages,
connection-error messages (which quote the URL), truncated and wrongly shaped answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Callable, Iterator

import httpx
import pytest

from airflow_provider_baseten.client.transport import RetryPolicy, Transport
from airflow_provider_baseten.exceptions import BasetenError, BasetenGatewayUnsupportedError
from tests.unit._support import CASES, KEY, MODEL, NEW_KEY, Case, Recorder, direct_only, make_hook, settings

SECRETS = (KEY, NEW_KEY)
LOGGERS = ("", "httpx", "httpcore", "airflow_provider_baseten", "airflow", "airflow.task")


class Capture(logging.Handler):
    """Keeps the fully formatted text of every record (message, args, traceback)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))
        self.texts.append(repr(record.args))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.disabled))
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        logger.addHandler(handler)
    yield handler
    for logger, level, disabled in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled


def exception_texts(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, BasetenError):
        texts += [exc.message, exc.body_snippet or "", repr(exc.args)]
    return texts


def assert_no_secret(texts: list[str], where: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{where}: secret found in {text[:300]!r}"


# -- the failure modes each call goes through -----------------------------------------------------------------
def _wrap(gateway: bool, payload):
    return {"data": payload} if gateway else payload


def failures(case: Case, gateway: bool) -> dict[str, Callable[[httpx.Request], httpx.Response]]:
    def echo_401(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": f"Invalid key {KEY} for {request.url}", "error_code": "unauthorized"})

    def html_502(request: httpx.Request) -> httpx.Response:
        page = f"<html><body>Bad gateway for {request.url} Authorization: Bearer {KEY}</body></html>"
        return httpx.Response(502, text=page, headers={"content-type": "text/html"})

    def rate_limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "1"}, json={"error": f"slow down {request.url}"})

    def detail_422(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": [{"msg": f"bad value {KEY}"}, {"msg": str(request.url)}]})

    def not_found(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": f"nothing at {request.url}"})

    def connect_error(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url} ({KEY})", request=request)

    def dropped(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(f"peer closed connection for {request.url}", request=request)

    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timed out reading {request.url}", request=request)

    def truncated(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=json.dumps(_wrap(gateway, {"id": KEY, "api_key": NEW_KEY}))[:-3])

    def wrong_shape(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_wrap(gateway, {"models": KEY, "id": [KEY], "status": {"k": KEY}}))

    def enveloped_error(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"api_key": NEW_KEY}, "error": f"failed for {request.url}"})

    modes = {
        "401": echo_401,
        "502": html_502,
        "429": rate_limited,
        "422": detail_422,
        "404": not_found,
        "connect": connect_error,
        "dropped": dropped,
        "timeout": read_timeout,
        "truncated": truncated,
        "wrong_shape": wrong_shape,
    }
    if gateway:
        modes["enveloped_error"] = enveloped_error
    return modes


def run(case: Case, hook, mode: str):
    return case.call(hook) if mode == "sync" else asyncio.run(case.acall(hook))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("gateway", ["baseten", "lowcodeapi"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_no_key_anywhere_on_the_whole_surface(name, gateway, mode, captured):
    case = CASES[name]
    is_gateway = gateway == "lowcodeapi"
    texts: list[str] = []

    # 1. Success (create_api_key's answer holds the new key).
    def success(request: httpx.Request) -> httpx.Response:
        if case.response is None and not is_gateway:
            return httpx.Response(case.status)
        return httpx.Response(case.status, json=_wrap(is_gateway, case.response))

    hook = make_hook(Recorder(success), gateway=gateway)
    if is_gateway and direct_only(name):  # refused before anything is sent: the error must not show the key
        with pytest.raises(BasetenGatewayUnsupportedError) as refused:
            run(case, hook, mode)
        assert_no_secret([*exception_texts(refused.value), repr(hook.settings)], f"{name}/{gateway}/{mode}")
        return
    result = run(case, hook, mode)
    texts += [repr(result), str(result)]
    if name == "create_api_key":
        assert result.api_key == NEW_KEY  # the caller gets it; nothing else shows it

    # 2. Every failure mode (two attempts so retry logging runs too).
    for label, handler in failures(case, is_gateway).items():
        hook = make_hook(Recorder(handler), gateway=gateway, retry=RetryPolicy(max_attempts=2))
        try:
            # A permissive model may accept the planted payload: what Baseten returns is the caller's.
            run(case, hook, mode)
        except BasetenError as exc:
            texts += exception_texts(exc)
        except Exception as exc:  # pragma: no cover - any other error is a bug in itself
            pytest.fail(f"{label}: {type(exc).__name__} is not a BasetenError: {exc}")

    texts += [repr(hook), repr(hook.settings), str(hook.settings), repr(hook.get_transport())]
    assert_no_secret(texts, f"{name}/{gateway}/{mode}")
    assert_no_secret(captured.texts, f"{name}/{gateway}/{mode} logs")
    assert captured.texts, "log capture works (httpx logs every request)"


def test_the_created_key_is_masked_from_then_on(captured):
    # After create_api_key returned it, the new key is scrubbed wherever it is echoed later.
    responses = iter(
        [
            httpx.Response(200, json={"api_key": NEW_KEY}),
            httpx.Response(400, json={"error": f"key {NEW_KEY} is not allowed here"}),
        ]
    )
    hook = make_hook(Recorder(lambda r: next(responses)))
    created = hook.create_api_key("PERSONAL")
    assert NEW_KEY not in repr(created) and NEW_KEY not in str(created)
    with pytest.raises(BasetenError) as info:
        hook.list_models()
    assert_no_secret(exception_texts(info.value), "echo after create")
    assert_no_secret(captured.texts, "logs")


def test_upserted_secret_value_is_masked_too():
    value = "hf-super-secret-value-98765"
    hook = make_hook(
        Recorder(lambda r: httpx.Response(500, json={"error": f"could not store {value}"})),
        retry=RetryPolicy(max_attempts=1),
    )
    with pytest.raises(BasetenError) as info:
        hook.upsert_secret("hf_token", value)
    assert value not in str(info.value) and value not in (info.value.body_snippet or "")


def test_reprs_hide_the_key():
    s = settings(gateway="lowcodeapi")
    hook = make_hook(Recorder(lambda r: httpx.Response(200)), gateway="lowcodeapi")
    for text in (repr(s), str(s), repr(hook), str(hook), repr(Transport(s)), repr(hook.get_transport())):
        assert KEY not in text
    assert "***" in repr(s)


def test_the_gateway_key_travels_only_in_the_query():
    rec = Recorder(lambda r: httpx.Response(200, json={"data": {"models": []}}))
    hook = make_hook(rec, gateway="lowcodeapi")
    hook.list_models()
    (req,) = rec.requests
    assert req.url.params["api_token"] == KEY
    assert all(KEY not in value for value in req.headers.values())


def test_config_errors_do_not_echo_the_key():
    from airflow_provider_baseten.client.transport import Settings

    with pytest.raises(BasetenError) as info:
        Settings.from_extra(api_key=KEY, host=f"https://x/?api_token={KEY}", extra={"inference_url": f"ftp://{KEY}"})
    assert_no_secret(exception_texts(info.value), "config")


def test_model_id_in_messages_is_fine_but_key_is_not():
    hook = make_hook(Recorder(lambda r: httpx.Response(404, json={"error": f"no model {MODEL}"})))
    with pytest.raises(BasetenError) as info:
        hook.get_model(MODEL)
    assert MODEL in str(info.value)
    assert KEY not in str(info.value)


def test_keys_are_handed_to_airflows_secrets_masker(monkeypatch):
    import uuid

    import airflow.sdk.log

    masked: list[str] = []
    monkeypatch.setattr(airflow.sdk.log, "mask_secret", masked.append)
    conn_key, created_key = f"sk-{uuid.uuid4().hex}", f"bt-{uuid.uuid4().hex}"
    from airflow_provider_baseten.client.transport import Settings
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    s = Settings.from_extra(api_key=conn_key, host=None, extra={})
    assert conn_key in masked
    rec = Recorder(lambda r: httpx.Response(200, json={"api_key": created_key}))
    BasetenHook(settings=s, http_transport=httpx.MockTransport(rec)).create_api_key("PERSONAL")
    assert created_key in masked


def test_aregister_secret_masks_without_the_blocking_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The async path (triggers) never calls the sync ``mask_secret``, and still masks everywhere."""
    from airflow.sdk import log as sdk_log
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    from airflow_provider_baseten.client.redact import aregister_secret, redact

    def blocking(*_: object, **__: object) -> None:
        raise AssertionError("the sync mask_secret blocks the triggerer's event loop")

    monkeypatch.setattr(sdk_log, "mask_secret", blocking)
    asyncio.run(aregister_secret("async-path-secret-4711"))
    assert redact("key async-path-secret-4711 here") == "key *** here"
    assert "async-path-secret-4711" not in str(_secrets_masker().redact("key async-path-secret-4711 here"))


def test_a_directly_built_settings_key_is_masked() -> None:
    """``Settings(api_key=...)`` built in code (no connection) still keeps the key out of errors and logs."""
    import secrets

    from airflow_provider_baseten.client.redact import redact
    from airflow_provider_baseten.client.transport import Settings
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    key = f"sk-direct-{secrets.token_hex(12)}"
    rec = Recorder(lambda r: httpx.Response(404, json={"error": f"no model for key {key}"}))
    hook = BasetenHook(settings=Settings(api_key=key), http_transport=httpx.MockTransport(rec))
    with pytest.raises(BasetenError) as info:
        hook.get_model(MODEL)
    assert len(rec.requests) == 1  # the server saw the key: it is a live one
    assert key not in str(info.value)
    assert redact(f"logged {key}") == "logged ***"
