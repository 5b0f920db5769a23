"""The batch error budget and early stop, against the emulator over HTTP (counts from its counters)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import (
    BasetenBatchError,
    BasetenModelError,
    BasetenNotFoundError,
    BasetenValidationError,
)
from airflow_provider_baseten.operators.inference import PredictOperator
from tests.dag_support import run_dag, task_states
from tests.integration.conftest import make_hook


def _sent(emu: BasetenEmulator) -> int:
    return emu.counters()["requests"].get("production_predict", 0)


@pytest.mark.parametrize(
    "budget",
    [
        {"max_failures": -1},
        {"max_failures": 1.5},
        {"max_failures": True},
        {"max_error_rate": 1.2},
        {"max_error_rate": "x"},
    ],
)
def test_a_bad_budget_fails_before_any_request(emulator: BasetenEmulator, budget: dict[str, Any]) -> None:
    field = next(iter(budget))
    with pytest.raises(BasetenValidationError) as info:
        PredictOperator(task_id="p", model_inputs=[{"i": 0}], **budget)
    assert info.value.field == field
    with pytest.raises(BasetenValidationError):
        make_hook(emulator).predict_batch([{"i": 0}], **budget)
    assert _sent(emulator) == 0


def test_fail_mode_with_a_budget_stops_once_it_is_spent(emulator: BasetenEmulator) -> None:
    inputs = [{"i": i, "fail": i % 4 == 1, "status": 422} for i in range(400)]
    with pytest.raises(BasetenBatchError, match=r"over the error budget \(max_failures=5\)") as info:
        make_hook(emulator).predict_batch(inputs, max_failures=5, max_concurrency=4)
    assert 6 <= len(info.value.failures) <= 6 + 3  # the 6th, plus what the other workers had in flight
    assert _sent(emulator) < 60


def test_record_mode_that_accepts_everything_sends_everything(emulator: BasetenEmulator) -> None:
    result = make_hook(emulator).predict_batch(
        [{"i": i} for i in range(30)], model_id="nomodel1", on_error="record", max_error_rate=1.0, max_concurrency=4
    )
    assert result.failed == 30 and _sent(emulator) == 30  # the user's choice: no early stop, no budget


def test_wrong_model_fails_the_task_naming_the_error(
    emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out.jsonl"
    with DAG("t_wrong_model", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        PredictOperator(
            task_id="p",
            model_inputs=[{"i": i} for i in range(500)],
            model_id="nomodel1",
            on_error="record",
            output_path=str(out),
            max_concurrency=8,
        )
    run = run_dag(dag)
    assert task_states(run) == {"p": "failed"}
    assert _sent(emulator) <= 10 + 8
    lines = out.read_text().splitlines()
    assert len(lines) == _sent(emulator)  # what was paid for is on disk
    assert all("404" in line and "nomodel1" in line for line in lines)


def test_not_found_is_raised_as_such(emulator: BasetenEmulator) -> None:
    with pytest.raises(BasetenNotFoundError, match="nomodel1"):
        make_hook(emulator).predict_batch([{"i": i} for i in range(50)], model_id="nomodel1", max_concurrency=2)
    assert _sent(emulator) <= 10 + 1  # the tenth failure stops it; the other worker may have one in flight


def test_an_explicit_budget_owns_per_input_rejections(emulator: BasetenEmulator) -> None:
    """The first 10 inputs are rejected (400) but the user allows half to fail: no early stop, all 200 sent."""
    inputs = [{"i": i, "fail": i < 10, "status": 400} for i in range(200)]
    result = make_hook(emulator).predict_batch(inputs, on_error="record", max_error_rate=0.5, max_concurrency=1)
    assert result.failed == 10 and result.succeeded == 190
    assert _sent(emulator) == 200


def test_a_model_that_raises_on_every_input_stops_early(emulator: BasetenEmulator) -> None:
    """A broken deploy (500 application_error on each input): stop after the first few, not 2 x every input."""
    inputs = [{"i": i, "fail": True} for i in range(200)]
    with pytest.raises(BasetenModelError, match=r"stopped early.*190 not attempted"):
        make_hook(emulator).predict_batch(inputs, max_concurrency=1)
    assert _sent(emulator) <= 2 * 10  # 10 items, each tried twice (a model error costs 2 attempts)
