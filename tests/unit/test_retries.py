"""Retries: which failures are retried, how long the transport asks to wait, and when it gives up.

Sleeps are injected (``make_hook`` records them in ``hook.sleeps``): the tests assert the requested
waits, never the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from airflow_provider_baseten.client import settings as _settings
from airflow_provider_baseten.client import transport as _transport
from airflow_provider_baseten.client.transport import RetryPolicy, Settings
from airflow_provider_baseten.exceptions import (
    BasetenAuthError,
    BasetenNotFoundError,
    BasetenRateLimitError,
    BasetenServerError,
    BasetenTimeoutError,
    BasetenTransportError,
    BasetenValidationError,
)
from tests.unit._support import KEY, Recorder, make_hook

MODELS = {"models": [{"id": "m1"}]}
ACCEPTED = {"request_id": "req-1"}


def script(*steps: httpx.Response | type[Exception] | Callable[[], httpx.Response]) -> Recorder:
    """A handler that plays ``steps`` in order (exception classes are raised), repeating the last one."""
    steps_list = list(steps)

    def respond(request: httpx.Request) -> httpx.Response:
        i = min(len(rec.requests) - 1, len(steps_list) - 1)
        step = steps_list[i]
        if isinstance(step, type) and issubclass(step, Exception):
            raise step("simulated failure", request=request)
        return step

    rec = Recorder(respond)
    return rec


def ok(payload=MODELS, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=payload)


def run(hook, mode: str, method: str = "list_models", *args, **kwargs):
    if mode == "sync":
        return getattr(hook, method)(*args, **kwargs)
    return asyncio.run(getattr(hook, "a" + method)(*args, **kwargs))


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@MODES
def test_429_with_retry_after_header_waits_what_it_says(mode):
    rec = script(httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "slow down"}), ok())
    hook = make_hook(rec)
    assert [m.id for m in run(hook, mode)] == ["m1"]
    assert rec.count == 2
    assert hook.sleeps == [2.0]


@pytest.mark.parametrize("gateway", ["baseten", "lowcodeapi"])
def test_retry_after_in_the_body_is_honoured(gateway):
    limited = {"error": "rate limited", "data": {"retry_after": 3}} if gateway == "lowcodeapi" else {"retry_after": 3}
    success = {"data": MODELS} if gateway == "lowcodeapi" else MODELS
    rec = script(httpx.Response(429, json=limited), ok(success))
    hook = make_hook(rec, gateway=gateway)
    hook.list_models()
    assert hook.sleeps == [3.0]


def test_retry_after_is_capped():
    rec = script(httpx.Response(429, headers={"Retry-After": "86400"}), ok())
    hook = make_hook(rec, retry=RetryPolicy(max_retry_after=45))
    hook.list_models()
    assert hook.sleeps == [45.0]


@MODES
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_then_200_succeeds(status, mode):
    rec = script(httpx.Response(status, json={"error": "unavailable"}), ok())
    hook = make_hook(rec)
    assert [m.id for m in run(hook, mode)] == ["m1"]
    assert rec.count == 2
    assert len(hook.sleeps) == 1 and 0 <= hook.sleeps[0] <= RetryPolicy().backoff_base


@MODES
@pytest.mark.parametrize(
    "failure", [httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError, httpx.ReadTimeout, httpx.ConnectTimeout]
)
def test_dropped_connection_or_timeout_then_200_succeeds(failure, mode):
    rec = script(failure, ok())
    hook = make_hook(rec)
    assert [m.id for m in run(hook, mode)] == ["m1"]
    assert rec.count == 2
    assert len(hook.sleeps) == 1


@MODES
@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BasetenValidationError),
        (401, BasetenAuthError),
        (403, BasetenAuthError),
        (404, BasetenNotFoundError),
        (413, BasetenValidationError),
        (422, BasetenValidationError),
    ],
)
def test_client_errors_are_not_retried(status, kind, mode):
    rec = script(httpx.Response(status, json={"error": "no"}), ok())
    hook = make_hook(rec)
    with pytest.raises(kind) as info:
        run(hook, mode)
    assert info.value.status_code == status
    assert rec.count == 1
    assert hook.sleeps == []


@pytest.mark.parametrize("gateway", ["baseten", "lowcodeapi"])
def test_401_says_to_check_the_connections_api_key(gateway):
    rec = script(httpx.Response(401, json={"error": "Invalid API key"}))
    hook = make_hook(rec, gateway=gateway)
    with pytest.raises(BasetenAuthError) as info:
        hook.list_models()
    message = str(info.value)
    assert "Check the API key in the Airflow connection" in message
    assert "password" in message
    assert KEY not in message


def test_attempts_are_bounded():
    rec = script(httpx.Response(503, json={"error": "busy"}))
    hook = make_hook(rec, retry=RetryPolicy(max_attempts=4))
    with pytest.raises(BasetenServerError) as info:
        hook.list_models()
    assert info.value.status_code == 503
    assert rec.count == 4
    assert len(hook.sleeps) == 3


@MODES
def test_defaults_really_retry(mode):
    assert RetryPolicy().max_attempts > 1
    assert Settings(api_key=KEY).retry.max_attempts > 1
    rec = script(httpx.Response(503, json={"error": "busy"}))
    hook = make_hook(rec)  # the default policy
    with pytest.raises(BasetenServerError):
        run(hook, mode)
    assert rec.count == RetryPolicy().max_attempts
    assert len(hook.sleeps) == RetryPolicy().max_attempts - 1


def test_backoff_is_exponential_with_full_jitter(monkeypatch):
    bounds: list[tuple[float, float]] = []

    def uniform(a: float, b: float) -> float:
        bounds.append((a, b))
        return b  # the top of the jitter window

    monkeypatch.setattr(_settings.random, "uniform", uniform)  # RetryPolicy.delay draws the jitter
    rec = script(httpx.Response(502))
    hook = make_hook(rec, retry=RetryPolicy(max_attempts=7, backoff_base=0.5, max_backoff=10))
    with pytest.raises(BasetenServerError):
        hook.list_models()
    assert hook.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert all(a == 0 for a, _ in bounds), "full jitter draws from zero"


class FakeClock:
    """Stands in for the ``time`` module inside the transport; sleeping advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_total_time_budget_stops_retrying(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_transport, "time", clock)
    rec = script(httpx.Response(429, headers={"Retry-After": "4"}, json={"error": "busy"}))
    hook = make_hook(rec, retry=RetryPolicy(max_attempts=100, total_timeout=10))
    hook._transport._sleep = lambda s: (hook.sleeps.append(s), clock.sleep(s))
    with pytest.raises(BasetenRateLimitError) as info:
        hook.list_models()
    # t=0 fail, wait 4; t=4 fail, wait 4; t=8 fail: another 4 s would pass the 10 s budget.
    assert hook.sleeps == [4.0, 4.0]
    assert rec.count == 3
    assert info.value.status_code == 429


# -- async submits are not blindly repeated -------------------------------------------------------------------
def submit(hook, mode: str):
    return run(hook, mode, "async_predict", {"prompt": "hi"})


@MODES
@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (httpx.ReadTimeout, BasetenTimeoutError),
        (httpx.WriteTimeout, BasetenTimeoutError),
        (httpx.RemoteProtocolError, BasetenTransportError),
        (httpx.ReadError, BasetenTransportError),
    ],
)
def test_async_submit_is_not_repeated_once_it_may_have_been_sent(failure, kind, mode):
    rec = script(failure, ok(ACCEPTED, 201))
    hook = make_hook(rec)
    with pytest.raises(kind) as info:
        submit(hook, mode)
    assert rec.count == 1
    assert hook.sleeps == []
    assert "not repeated" in str(info.value)


@MODES
@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ConnectTimeout])
def test_async_submit_is_retried_after_a_connect_error(failure, mode):
    rec = script(failure, ok(ACCEPTED, 201))
    hook = make_hook(rec)
    assert submit(hook, mode).request_id == "req-1"
    assert rec.count == 2


@MODES
def test_async_submit_is_retried_on_429_capacity_exceeded(mode):
    rec = script(
        httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "CAPACITY_EXCEEDED"}), ok(ACCEPTED, 201)
    )
    hook = make_hook(rec)
    assert submit(hook, mode).request_id == "req-1"
    assert hook.sleeps == [1.0]


def test_other_creates_are_not_repeated_either():
    for method, args in [
        ("create_api_key", ("PERSONAL",)),
        ("create_environment", ("staging",)),
        ("create_training_job", ("tp1", {"image": {"base_image": "x"}})),
        ("recreate_training_job", ("tp1", "tj1")),
    ]:
        rec = script(httpx.ReadTimeout)
        hook = make_hook(rec)
        with pytest.raises(BasetenTimeoutError) as info:
            getattr(hook, method)(*args)
        assert info.value.maybe_created, method
        # One create; a reconcilable one is followed by lookups (GETs), never by a second POST.
        assert [r.method for r in rec.requests].count("POST") == 1, method


# -- timeouts --------------------------------------------------------------------------------------------------
def timeouts_of(request: httpx.Request) -> dict[str, float]:
    return request.extensions["timeout"]


def test_timeouts_long_for_predict_short_for_management():
    rec = Recorder(lambda r: ok({"o": 1}) if r.url.path.endswith("predict") else ok())
    hook = make_hook(rec)
    hook.predict({"x": 1})
    hook.list_models()
    predict, manage = (timeouts_of(r) for r in rec.requests)
    assert predict["connect"] == 10 and predict["read"] >= 1200
    assert manage["connect"] == 10 and manage["read"] == 60


def test_a_timeout_message_is_readable_and_typed():
    rec = script(httpx.ReadTimeout)
    hook = make_hook(rec, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(BasetenTimeoutError) as info:
        hook.list_models()
    assert info.value.status_code is None
    assert "did not answer in time" in str(info.value)
    assert rec.count == 2


@MODES
def test_a_deadline_already_past_sends_nothing_and_raises_a_timeout(mode):
    """A wait's check that starts after its deadline (a slow machine, a late poll) is a typed timeout.

    Regression: the retry loop ended before its first step and the sender's ``next()`` leaked
    ``StopIteration``, which an async check turned into ``RuntimeError: coroutine raised StopIteration``.
    """
    import time

    rec = script(ok())
    hook = make_hook(rec)

    async def in_async() -> object:
        with _transport.until(time.time() - 1):
            return await hook.alist_models()

    with pytest.raises(BasetenTimeoutError, match="deadline passed before GET"):
        if mode == "sync":
            with _transport.until(time.time() - 1):
                hook.list_models()
        else:
            asyncio.run(in_async())
    assert rec.requests == []
