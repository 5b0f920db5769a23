"""Cases: a model's own errors are not outages, and a batch has an error budget.

* A model that raises on an input costs two attempts (it cost 18: six attempts times three sequences) and the
  error says the model failed on that input. A 500 without Baseten's model-error mark (a cold start) is still
  retried.
* A record-mode batch against a model that does not exist, or whose every input is rejected, stops after
  the first completed items instead of sending (and paying for) all of them.
* A record-mode batch over its error budget fails, stopping once the budget cannot be met; within budget it
  succeeds and logs the failures at WARNING.

Every count comes from the emulator's counters.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_baseten.client.batch import DEFAULT_RECORD_ERROR_RATE, EARLY_STOP_AFTER
from airflow_provider_baseten.client.transport import MODEL_ERROR_ATTEMPTS, RetryPolicy
from airflow_provider_baseten.emulator import FaultRule
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import (
    BasetenBatchError,
    BasetenModelError,
    BasetenNotFoundError,
    BasetenValidationError,
)
from airflow_provider_baseten.operators.inference import PredictOperator
from tests.chaos._support import FAST_POLICY, context, hook_for
from tests.chaos.report import Row


def _sent(emu: BasetenEmulator) -> int:
    return emu.counters()["requests"].get("production_predict", 0)


def _operator(emu: BasetenEmulator, policy: RetryPolicy | None, **kw: Any) -> PredictOperator:
    op = PredictOperator(task_id="batch", on_error="record", progress_interval=60, **kw)
    op.__dict__["hook"] = hook_for(emu, policy)
    return op


def _model_errors(emu: BasetenEmulator, row: Row, n: int, policy: RetryPolicy | None) -> None:
    hook = hook_for(emu, policy)
    with pytest.raises(BasetenModelError) as info:
        hook.predict({"fail": True})
    single = _sent(emu)
    message = str(info.value)
    assert single == MODEL_ERROR_ATTEMPTS
    assert "model failed on this input" in message and "unavailable" not in message

    failing = set(range(0, n, 10))
    inputs = [{"i": i, "fail": i in failing} for i in range(n)]
    before = _sent(emu)
    result = _operator(emu, policy, model_inputs=inputs, max_concurrency=16).execute(context())
    batch = _sent(emu) - before
    assert batch == n - len(failing) + MODEL_ERROR_ATTEMPTS * len(failing)
    assert sum(1 for r in result if isinstance(r, dict) and "error" in r) == len(failing)

    # A 500 without the model's mark (a cold start that timed out) is still an outage: retried after a wait.
    emu.set_faults([FaultRule("500", times=3, endpoints=["production_predict"])], seed=1)
    before = _sent(emu)
    assert hook.predict({"x": 1})["output"] == {"x": 1}
    cold = _sent(emu) - before
    assert cold == 4
    row.tried = (
        f"predict on an input the model raises on; a {n}-item record batch with {len(failing)} such inputs; "
        "a plain 500 (no model-error mark) three times"
    )
    row.happened = (
        f"single predict: {single} attempts, BasetenModelError '{message[:90]}...'; batch: {batch} requests for "
        f"{n} items ({MODEL_ERROR_ATTEMPTS} per model error; 18 before); plain 500s retried, {cold} requests"
    )
    row.lost = "0; no outage reported for a model error"


def test_model_error_attempts_fast(emulator: BasetenEmulator, chaos_row: Row) -> None:
    chaos_row.case = "10.4 model-error retries (fast)"
    _model_errors(emulator, chaos_row, 200, FAST_POLICY)


@pytest.mark.chaos
def test_model_error_attempts(emulator: BasetenEmulator, chaos_row: Row) -> None:
    chaos_row.case = "10.4 model-error retries (prod policy)"
    _model_errors(emulator, chaos_row, 1000, None)


def _stops_early(emu: BasetenEmulator, row: Row, n: int, concurrency: int, policy: RetryPolicy | None) -> None:
    inputs = [{"i": i} for i in range(n)]
    with pytest.raises(BasetenNotFoundError) as info:
        _operator(emu, policy, model_inputs=inputs, model_id="nomodel1", max_concurrency=concurrency).execute(context())
    wrong_model = _sent(emu)
    message = str(info.value)
    assert wrong_model <= EARLY_STOP_AFTER + concurrency
    assert "404" in message and "first 10 completed predictions all failed" in message

    rejected = [{"i": i, "fail": True, "status": 400} for i in range(n)]
    before = _sent(emu)
    with pytest.raises(BasetenValidationError, match="rejected this input"):
        _operator(emu, policy, model_inputs=rejected, max_concurrency=concurrency).execute(context())
    bad_input = _sent(emu) - before
    assert bad_input <= EARLY_STOP_AFTER + concurrency
    row.tried = (
        f"on_error='record' batch of {n} to a model that does not exist, then {n} inputs the model rejects "
        f"(400), concurrency {concurrency}"
    )
    row.happened = (
        f"wrong model: stopped after {wrong_model} requests with '{message[:230]}...'; every input rejected: "
        f"stopped after {bad_input} requests"
    )
    row.lost = f"{n - wrong_model} and {n - bad_input} requests not paid for"


def test_wrong_model_record_batch_fast(emulator: BasetenEmulator, chaos_row: Row) -> None:
    chaos_row.case = "10.5 wrong-model record batch (fast)"
    _stops_early(emulator, chaos_row, 2000, 32, FAST_POLICY)


@pytest.mark.chaos
def test_wrong_model_record_batch(emulator: BasetenEmulator, chaos_row: Row) -> None:
    chaos_row.case = "10.5 wrong-model record batch (5,000)"
    _stops_early(emulator, chaos_row, 5000, 64, None)


def test_record_budget_fast(emulator: BasetenEmulator, chaos_row: Row, caplog: pytest.LogCaptureFixture) -> None:
    chaos_row.case = "10.6 record error budget (fast)"
    n = 1000
    within = [{"i": i, "fail": i % 25 == 7, "status": 422} for i in range(n)]  # 4%
    log = logging.getLogger("tests.chaos.budget")  # the operator passes its task logger the same way
    with caplog.at_level(logging.WARNING, logger=log.name):
        result = hook_for(emulator, FAST_POLICY).predict_batch(within, on_error="record", max_concurrency=16, log=log)
    assert result.failed == 40 and result.succeeded == n - 40
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "within the error budget" in r.message]
    assert warned and "7:" in warned[0].message

    over = [{"i": i, "fail": i % 5 == 2, "status": 422} for i in range(n)]  # 20%
    before = _sent(emulator)
    with pytest.raises(BasetenBatchError, match="over the error budget") as info:
        _operator(emulator, FAST_POLICY, model_inputs=over, max_concurrency=16).execute(context())
    sent = _sent(emulator) - before
    allowed = int(DEFAULT_RECORD_ERROR_RATE * n)
    assert len(info.value.failures) > allowed
    assert sent < n  # stopped once the budget could not be met, not at the end
    chaos_row.tried = f"record batches of {n} with 4% and 20% of inputs rejected, default budget (10%)"
    chaos_row.happened = (
        f"4%: succeeded, 40 failures logged at WARNING; 20%: failed after {len(info.value.failures)} failures "
        f"and {sent} of {n} requests"
    )
    chaos_row.lost = "0; nothing green with more than 10% errors"
