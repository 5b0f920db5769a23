"""A model's own error is not an outage: at most two attempts, and the error says the model failed.

How Baseten marks one: the inference error body's ``error_code: application_error``, or the Truss server's
``X-BASETEN-ERROR-SOURCE: 04`` / ``X-BASETEN-ERROR-CODE: 600`` headers with its "(in model/chainlet)" text.
A 500 without a mark (a cold start that timed out) keeps the full retry policy.
"""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_baseten.client.transport import MODEL_ERROR_ATTEMPTS, model_failed
from airflow_provider_baseten.exceptions import BasetenModelError, BasetenServerError, BasetenValidationError
from tests.unit._support import Recorder, make_hook
from tests.unit.test_retries import MODES, run

TRUSS_HEADERS = {"X-BASETEN-ERROR-SOURCE": "04", "X-BASETEN-ERROR-CODE": "600"}
MARKED = [
    pytest.param({"error": "boom", "error_code": "application_error"}, {}, id="error_code"),
    pytest.param({"error": "Internal Server Error (in model/chainlet)."}, TRUSS_HEADERS, id="truss-headers"),
    pytest.param({"error": "Internal Server Error (in model/chainlet)."}, {}, id="truss-text"),
]


@MODES
@pytest.mark.parametrize(("body", "headers"), MARKED)
def test_model_error_costs_two_attempts_and_says_so(mode: str, body: dict, headers: dict) -> None:
    rec = Recorder(lambda r: httpx.Response(500, json=body, headers=headers))
    hook = make_hook(rec)
    with pytest.raises(BasetenModelError) as info:
        run(hook, mode, "predict", {"x": 1})
    assert rec.count == MODEL_ERROR_ATTEMPTS == 2
    assert isinstance(info.value, BasetenServerError)  # still caught as a 5xx by existing code
    assert "model failed on this input" in info.value.message
    assert "unavailable" not in info.value.message


@MODES
@pytest.mark.parametrize(
    "body",
    [{"error": "Timed out waiting for the deployment to wake up", "error_code": "model_not_ready"}, {"error": "x"}],
)
def test_unmarked_500_stays_retryable_after_a_wait(mode: str, body: dict) -> None:
    rec = Recorder(lambda r: httpx.Response(500, json=body))
    hook = make_hook(rec)
    with pytest.raises(BasetenServerError) as info:
        run(hook, mode, "predict", {"x": 1})
    assert not isinstance(info.value, BasetenModelError)
    policy = hook.settings.retry
    assert rec.count == policy.max_attempts  # the whole policy
    assert len(hook.sleeps) == rec.count - 1
    if body.get("error_code") == "model_not_ready":  # a cold start Baseten gave up on: wait before trying again
        assert hook.sleeps == [min(30.0, policy.max_retry_after)] * (rec.count - 1)


@MODES
@pytest.mark.parametrize("status", [400, 422])
def test_model_4xx_is_one_attempt_naming_the_input(mode: str, status: int) -> None:
    rec = Recorder(lambda r: httpx.Response(status, json={"error": "bad prompt"}))
    hook = make_hook(rec)
    with pytest.raises(BasetenValidationError, match="rejected this input") as info:
        run(hook, mode, "predict", {"x": 1})
    assert rec.count == 1 and info.value.status_code == status


def test_marks_need_a_500() -> None:
    assert not model_failed(503, {"error_code": "application_error"})  # the model not ready: retry
    assert not model_failed(500, None, httpx.Headers({"X-BASETEN-ERROR-SOURCE": "04", "X-BASETEN-ERROR-CODE": "500"}))
    assert model_failed(500, {"data": None, "error": {"error_code": "application_error", "error": "x"}})
