"""Fault injection, seen both raw (what the wire carries) and through the hook (what retries make of it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.emulator import FaultRule
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenServerError, BasetenTransportError

from .conftest import make_hook

_http = httpx.Client()  # one pooled client: creating one per call is slow


def _get(emu: BasetenEmulator, path: str = "/v1/models", **kw: Any) -> httpx.Response:
    return _http.get(emu.url + path, headers={"Authorization": f"Bearer {emu.api_key}"}, **kw)


def test_429_carries_retry_after_and_the_hook_retries(emulator: BasetenEmulator) -> None:
    emulator.set_faults([FaultRule("429", times=1, retry_after=2)])
    raw = _get(emulator)
    assert raw.status_code == 429 and raw.headers["retry-after"] == "2"
    assert raw.json() == {"error": "Rate limit exceeded; slow down", "retry_after": 2}
    emulator.set_faults([FaultRule("429", times=2, retry_after=0)])
    assert make_hook(emulator).list_models()
    counts = emulator.counters()
    assert counts["faults"] == {"429": 3} and counts["requests"]["list_models"] == 4  # 1 raw + 3 by the hook


@pytest.mark.parametrize("kind", ["500", "502", "503", "504"])
def test_server_errors_are_retried(emulator: BasetenEmulator, kind: str) -> None:
    emulator.set_faults([FaultRule(kind, times=2, endpoints=["production_predict"])])
    hook = make_hook(emulator)
    assert hook.predict({"x": 1})["output"] == {"x": 1}
    assert emulator.counters()["requests"]["production_predict"] == 3
    emulator.set_faults([FaultRule(kind, endpoints=["inference"])])
    with pytest.raises(BasetenServerError):
        hook.predict({"x": 1})
    assert hook.list_models()  # management is not in the filter


def test_dropped_connection(emulator: BasetenEmulator) -> None:
    emulator.set_faults([FaultRule("drop", times=1)])
    with pytest.raises(httpx.RemoteProtocolError):
        _get(emulator)
    emulator.set_faults([FaultRule("drop", times=1)])
    assert make_hook(emulator).list_models()  # idempotent: retried


def test_dropped_async_submit_is_not_repeated(emulator: BasetenEmulator) -> None:
    # "Exactly once": a create whose answer was lost is not blindly sent again.
    emulator.set_faults([FaultRule("drop", endpoints=["production_async_predict"], times=1)])
    with pytest.raises(BasetenTransportError):
        make_hook(emulator).async_predict({"x": 1})
    counts = emulator.counters()
    assert counts["requests"]["production_async_predict"] == 1 and counts["submissions"] == {}


def test_truncated_json_and_html_502(emulator: BasetenEmulator) -> None:
    emulator.set_faults([FaultRule("truncate", times=1)])
    raw = _get(emulator)
    assert raw.status_code == 200
    with pytest.raises(ValueError):
        raw.json()
    emulator.set_faults([FaultRule("html502", times=1)])
    raw = _get(emulator)
    assert raw.status_code == 502 and raw.headers["content-type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in raw.text
    emulator.set_faults([FaultRule("truncate", times=1), FaultRule("html502", times=1)])
    assert make_hook(emulator).list_models()
    assert emulator.counters()["faults"] == {"truncate": 2, "html502": 2}  # raw ones included


def test_slow_answers(emulator: BasetenEmulator) -> None:
    emulator.set_faults([FaultRule("slow", delay=0.5, times=1)])
    with pytest.raises(httpx.ReadTimeout):
        _get(emulator, timeout=0.1)


def _reset_while(emulator: BasetenEmulator, call: Callable[[], Any], held: Callable[[dict[str, Any]], bool]) -> None:
    """Run ``call`` in a thread, reset the emulator once ``held(counters)`` says the server has the request, and
    wait for ``call`` to end."""
    client = threading.Thread(target=call)
    client.start()
    deadline = time.monotonic() + 10
    while not held(emulator.counters()):
        assert time.monotonic() < deadline, "the request never reached the server"
        time.sleep(0.005)
    emulator.reset()
    client.join(10)


def test_a_request_held_across_a_reset_is_dropped_not_counted(emulator: BasetenEmulator) -> None:
    """A slow answer still held when the next test resets the emulator must not act on or be counted in the
    fresh state (it once showed up as a stray request in a later test's server-side count)."""
    emulator.set_faults([FaultRule("slow", delay=0.5, endpoints=["list_models"])])
    dropped = emulator.counters()["reset"]["dropped"]
    seen: list[BaseException] = []

    def call() -> None:
        try:
            _get(emulator, timeout=10)
        except httpx.HTTPError as exc:
            seen.append(exc)

    _reset_while(emulator, call, lambda c: bool(c["faults"].get("slow")))  # once the slow fault holds it
    assert isinstance(seen[0], httpx.RemoteProtocolError)  # closed, unanswered
    counts = emulator.counters()
    # At least this one: the reset may also drop other work still in flight (an earlier test's webhook retry).
    assert counts["reset"]["dropped"] >= dropped + 1
    assert sum(counts["requests"].values()) == 0 and emulator.requests() == []


def test_a_predict_answered_after_a_reset_is_not_logged_in_the_fresh_state(emulator: BasetenEmulator) -> None:
    """A sync predict still computing (its latency) when the next test resets the emulator is answered, but not
    logged or counted in the fresh state."""
    emulator.set_predict_latency(0.5)
    dropped = emulator.counters()["reset"]["dropped"]
    hook = make_hook(emulator)
    answers: list[Any] = []
    # Reset once the server is computing it.
    _reset_while(
        emulator,
        lambda: answers.append(hook.predict({"x": 1})),
        lambda c: bool(c["requests"].get("production_predict")),
    )
    assert answers and answers[0]["output"] == {"x": 1}  # the client got its answer
    counts = emulator.counters()
    assert counts["reset"]["dropped"] >= dropped + 1
    assert counts["responses"] == {} and emulator.requests() == []


def test_rates_are_repeatable_with_a_seed(emulator: BasetenEmulator) -> None:
    def pattern() -> list[int]:
        emulator.set_faults([FaultRule("503", rate=0.5)], seed=7)
        return [_get(emulator).status_code for _ in range(20)]

    first = pattern()
    assert first == pattern() and {200, 503} == set(first)


def test_faults_over_the_admin_api_and_on_the_gateway(emulator: BasetenEmulator) -> None:
    admin = emulator.url + "/__admin"
    rules = {"seed": 1, "rules": [{"kind": "503", "times": 1, "endpoints": ["get_model"]}]}
    assert _http.post(admin + "/faults", json=rules).json()["rules"][0]["kind"] == "503"
    raw = _http.get(emulator.gateway_url + "/v1/models/echo1234", params={"api_token": emulator.api_key})
    assert raw.status_code == 503 and raw.json()["data"] is None and raw.json()["error"]
    assert _http.get(admin + "/faults").json()["rules"][0]["fired"] == 1
    assert _http.delete(admin + "/faults").json()["rules"] == []
    with pytest.raises(ValueError):
        FaultRule("418")
    # A typo in the body must not silently clear every rule.
    _http.post(admin + "/faults", json=rules)
    for bad in ({"faults": rules["rules"]}, {"rulez": []}, {"seed": 2}):
        assert _http.post(admin + "/faults", json=bad).status_code == 422
    assert len(_http.get(admin + "/faults").json()["rules"]) == 1


def test_admin_endpoints(emulator: BasetenEmulator) -> None:
    admin = emulator.url + "/__admin"
    assert _http.get(admin + "/health").json()["status"] == "ok"
    assert _http.post(admin + "/clock", json={"time_scale": 0}).json()["time_scale"] == 0
    before = _http.get(admin + "/clock").json()["epoch"]
    assert _http.post(admin + "/clock", json={"advance": 60}).json()["epoch"] >= before + 60
    assert _http.post(admin + "/gateway", json={"new_format": False}).json() == {
        "new_format": False,
        "unlisted": True,
    }
    raw = _http.get(emulator.gateway_url + "/v1/models/echo1234", params={"api_token": emulator.api_key})
    assert raw.status_code == 404
    dep = _http.post(admin + "/models/echo1234/deployments", json={"name": "v7"}).json()
    assert dep["status"] == "BUILDING"
    assert _http.post(admin + f"/models/echo1234/deployments/{dep['id']}/scale_to_zero").json()["status"] == (
        "SCALED_TO_ZERO"
    )
    assert _http.post(admin + "/config", json={"training_fail": True}).json()["training_fail"] is True
    state = _http.get(admin + "/state").json()
    assert {m["id"] for m in state["models"]} == {"echo1234", "sleepy12"}
    assert "seeded" not in str(state["secrets"])  # secret values are never kept
    log = _http.get(admin + "/requests").json()
    assert log["requests"][-1]["query"] == {"api_token": "***"}
    counts = _http.get(admin + "/counters").json()
    assert counts["requests"] == {"get_model": 1}
    _http.post(admin + "/reset")
    assert _http.get(admin + "/gateway").json() == {"new_format": True, "unlisted": True}
    assert _http.get(admin + "/counters").json()["requests"] == {}
