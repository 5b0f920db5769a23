"""Case 6: bad responses. Each becomes a BasetenError carrying the status and a short redacted snippet, with
no raw pydantic traceback; an unknown status is waited on (bounded by the timeout), as API-FACTS.md says."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.client.transport import RetryPolicy, Settings
from airflow_provider_baseten.exceptions import BasetenError, BasetenResponseError, BasetenServerError
from airflow_provider_baseten.hooks.baseten import BasetenHook
from airflow_provider_baseten.triggers.baseten import (
    AsyncPredictTrigger,
    DeploymentStatusTrigger,
    TrainingJobTrigger,
)
from tests.chaos.report import Row

KEY = "sk-chaos-bad-responses-0123456789abcdef"
POLICY = RetryPolicy(max_attempts=3, backoff_base=0.001, max_backoff=0.005, total_timeout=5)
HTML = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    + "<p>upstream said: Authorization: Bearer "
    + KEY
    + "</p>"
    + "<!-- padding -->" * 400
    + "</body></html>"
)


def _hook(gateway: str, answer: Callable[[httpx.Request], httpx.Response], calls: list[str]) -> BasetenHook:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return answer(request)

    mock = httpx.MockTransport(handler)
    settings = Settings(
        api_key=KEY,
        gateway=gateway,  # type: ignore[arg-type]
        management_url="https://api.baseten.test",
        inference_url="https://model-{model_id}.baseten.test",
        gateway_url="https://gw.lowcodeapi.test/baseten",
        url_format="new",
        model_id="abcd1234",
        retry=POLICY,
    )
    return BasetenHook(settings=settings, http_transport=mock, async_http_transport=mock)


def _json(status: int, body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda r: httpx.Response(status, json=body)


def _text(status: int, text: str, ctype: str = "text/html") -> Callable[[httpx.Request], httpx.Response]:
    return lambda r: httpx.Response(status, text=text, headers={"content-type": ctype})


# (case, gateway, answer, call, expected error type, expected status)
ERRORS: list[tuple[str, str, Any, Callable[[BasetenHook], Any], type[BasetenError], int]] = [
    ("HTML 502 page", "baseten", _text(502, HTML), lambda h: h.list_models(), BasetenServerError, 502),
    ("HTML 502 page (gateway)", "lowcodeapi", _text(502, HTML), lambda h: h.list_models(), BasetenServerError, 502),
    (
        "truncated JSON",
        "baseten",
        _text(200, '{"id": "dep1", "status": "ACT', "application/json"),
        lambda h: h.get_deployment("dep1"),
        BasetenResponseError,
        200,
    ),
    (
        "missing data envelope (gateway)",
        "lowcodeapi",
        _json(200, {"models": [{"id": "m1"}], "echo": f"api_token={KEY}"}),
        lambda h: h.list_models(),
        BasetenResponseError,
        200,
    ),
    (
        "wrong field types",
        "baseten",
        _json(200, {"id": ["not", "a", "string"], "status": {"x": 1}, "active_replica_count": "many"}),
        lambda h: h.get_deployment("dep1"),
        BasetenResponseError,
        200,
    ),
    (
        "wrong list shape",
        "baseten",
        _json(200, {"models": {"id": "m1"}}),
        lambda h: h.list_models(),
        BasetenResponseError,
        200,
    ),
    (
        "200 with an error field (gateway)",
        "lowcodeapi",
        _json(200, {"data": None, "error": f"quota exceeded for api_token={KEY}"}),
        lambda h: h.list_models(),
        BasetenError,
        200,
    ),
    (
        "async status missing its status",
        "baseten",
        _json(200, {"request_id": "r1", "errors": "none"}),
        lambda h: h.get_async_request("r1"),
        BasetenResponseError,
        200,
    ),
]

_rows: list[str] = []


@pytest.mark.parametrize(("case", "gateway", "answer", "call", "kind", "status"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_response(case: str, gateway: str, answer: Any, call: Any, kind: type, status: int) -> None:
    calls: list[str] = []
    hook = _hook(gateway, answer, calls)
    with pytest.raises(BasetenError) as info:
        call(hook)
    exc = info.value
    text = str(exc)
    shown = "".join(traceback.format_exception(exc))
    _rows.append(f"{case}: {type(exc).__name__} status={exc.status_code}, {len(calls)} attempt(s)")
    assert isinstance(exc, kind), f"{type(exc).__name__}: {text}"
    assert exc.status_code == status
    assert exc.body_snippet and len(exc.body_snippet) <= 310
    assert len(exc.message) < 600
    for where in (text, repr(exc), exc.body_snippet, shown):
        assert KEY not in where
    # No raw pydantic traceback: no chained ValidationError, no pydantic frames in what Airflow would print.
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    assert "pydantic" not in shown and "validation error for" not in shown.lower()


# -- unknown statuses: waited on, bounded by the timeout -------------------------------------------------
def _status_hook(body: dict[str, Any], calls: list[str]) -> BasetenHook:
    return _hook("baseten", _json(200, body), calls)


def _wait(trigger: Any, hook: BasetenHook) -> dict[str, Any]:
    trigger._hook = lambda: hook
    return asyncio.run(trigger.wait())


UNKNOWN = "TOTALLY_NEW_STATUS"


def test_unknown_async_status_keeps_waiting_until_timeout() -> None:
    calls: list[str] = []
    hook = _status_hook({"request_id": "r1", "status": UNKNOWN, "errors": []}, calls)
    trig = AsyncPredictTrigger(conn_id="x", request_ids=["r1"], poll_interval=0.02, end_time=time.time() + 1.0)
    event = _wait(trig, hook)
    assert event["status"] == "timeout" and len(calls) >= 2, (event, len(calls))
    _rows.append(f"async status {UNKNOWN}: kept waiting ({len(calls)} polls), then timeout event")


def test_unknown_deployment_status_keeps_waiting_until_timeout() -> None:
    calls: list[str] = []
    hook = _status_hook({"id": "dep1", "status": UNKNOWN}, calls)
    trig = DeploymentStatusTrigger(
        conn_id="x", model_id="abcd1234", deployment_id="dep1", poll_interval=0.02, end_time=time.time() + 1.0
    )
    event = _wait(trig, hook)
    assert event["status"] == "timeout" and len(calls) >= 2, (event, len(calls))
    _rows.append(f"deployment status {UNKNOWN}: kept waiting ({len(calls)} polls), then timeout event")


def test_unknown_training_status_is_logged_and_waited_on(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    hook = _status_hook({"training_job": {"id": "job1", "current_status": "TRAINING_JOB_" + UNKNOWN}}, calls)
    trig = TrainingJobTrigger(
        conn_id="x", training_project_id="p1", training_job_id="job1", poll_interval=0.02, end_time=time.time() + 1.0
    )
    with caplog.at_level(logging.WARNING):
        event = _wait(trig, hook)
    assert event["status"] == "timeout" and len(calls) >= 2, (event, len(calls))
    # Airflow's logging may go through structlog (stdout) or the stdlib (caplog): count both.
    out = capfd.readouterr()
    said = (out.out + out.err).count("has unknown status") + sum(
        "has unknown status" in r.getMessage() for r in caplog.records
    )
    assert said == 1  # logged once, not once per poll
    _rows.append(f"training status TRAINING_JOB_{UNKNOWN}: logged once, kept waiting ({len(calls)} polls), timeout")


def test_bad_responses_summary(chaos_row: Row) -> None:
    chaos_row.case = "6 bad responses"
    chaos_row.tried = (
        "HTML 502 (direct, gateway), truncated JSON, missing data envelope, wrong field types, wrong list shape, "
        "200 + error on the gateway, status without status field; unknown async/deployment/training status"
    )
    chaos_row.happened = "; ".join(_rows)
    chaos_row.lost = "0 raw pydantic tracebacks, 0 keys in messages/snippets"
    assert len(_rows) == len(ERRORS) + 3
