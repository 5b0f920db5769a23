"""``max_concurrency="auto"`` against the emulator over HTTP: it finds a capacity it is not told.

The emulator's ``predict_capacity`` refuses (503) any sync predict that arrives while that many are being
served, and counts the refusals and the most it served at once itself: the tests count on the server.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenValidationError
from airflow_provider_baseten.operators.inference import PredictOperator
from tests.dag_support import context, run_dag, task_states
from tests.integration.conftest import make_hook


def _predicts(emu: BasetenEmulator) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["endpoint"] == "production_predict"]


def _limit_log(caplog: pytest.LogCaptureFixture) -> str:
    lines = [r.getMessage() for r in caplog.records if "max_concurrency='auto'" in r.getMessage()]
    assert len(lines) == 1, lines
    return lines[0]


def test_auto_backs_off_on_503_and_keeps_every_result_in_order(
    emulator: BasetenEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.set_predict_latency(0.02)
    emulator.set_predict_capacity(6)  # below where auto starts (8): it must be refused, then back off
    inputs = [{"i": i} for i in range(600)]
    with caplog.at_level(logging.INFO, logger="airflow_provider_baseten"):
        result = make_hook(emulator).predict_batch(
            inputs, max_concurrency="auto", log=logging.getLogger("airflow_provider_baseten")
        )
    assert result.failed == 0 and [r["output"]["i"] for r in result.results or []] == list(range(600))
    capacity = emulator.counters()["capacity"]
    assert capacity["peak_inflight"] == 6 and capacity["rejected"] >= 1  # it reached the capacity, and was told
    sent = _predicts(emulator)
    assert len(sent) == 600 + capacity["rejected"]  # each refusal resent once: nothing lost, nothing twice
    assert capacity["rejected"] < 0.05 * len(sent)
    assert "'cuts': 0" not in _limit_log(caplog)


def test_after_converging_it_is_rarely_refused(emulator: BasetenEmulator) -> None:
    emulator.set_predict_latency(0.02)
    emulator.set_predict_capacity(12)
    make_hook(emulator).predict_batch([{"i": i} for i in range(1500)], max_concurrency="auto")
    statuses = [r["status"] for r in _predicts(emulator)]
    settled = statuses[len(statuses) // 5 :]  # after the first fifth of the requests
    refused = statuses.count(503)
    assert refused >= 1 and settled.count(503) <= 0.03 * len(settled), (refused, settled.count(503))
    assert emulator.counters()["capacity"]["peak_inflight"] == 12  # it used all of it


def test_auto_grows_while_latency_holds(emulator: BasetenEmulator) -> None:
    emulator.set_predict_latency(0.05)  # no capacity limit: latency stays flat as concurrency grows
    result = make_hook(emulator).predict_batch([{"i": i} for i in range(800)], max_concurrency="auto")
    assert result.succeeded == 800
    capacity = emulator.counters()["capacity"]
    assert capacity["rejected"] == 0 and capacity["peak_inflight"] >= 32  # it started at 8


def _keep_first(out: Path, n: int) -> None:
    """Keep only the first ``n`` result lines of ``out``."""
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:n]))


def test_auto_keeps_per_item_errors_and_resumes(emulator: BasetenEmulator, tmp_path: Path) -> None:
    emulator.set_predict_capacity(5)
    emulator.set_predict_latency(0.01)
    out = tmp_path / "out.jsonl"
    inputs = [{"i": i, "fail": i % 50 == 7, "status": 422} for i in range(300)]
    first = make_hook(emulator).predict_batch(
        inputs, max_concurrency="auto", on_error="record", output_path=out, max_error_rate=0.1
    )
    assert first.failed == 6 and sorted(first.failures) == [7, 57, 107, 157, 207, 257]
    _keep_first(out, 200)  # as if the run had stopped after 200 results (resume is for the same inputs)
    before = len(_predicts(emulator))
    second = make_hook(emulator).predict_batch(
        inputs, max_concurrency="auto", on_error="record", output_path=out, resume=True, max_error_rate=0.1
    )
    # resume skips what succeeded and sends the rest, the 4 failed items again among them
    assert second.skipped == 196 and second.succeeded == 98 and second.failed == 6
    ok = [r for r in _predicts(emulator)[before:] if r["status"] != 503]
    assert len(ok) == 104
    lines = out.read_text().splitlines()
    assert len(lines) == 300 and all(f'"index": {i}' in line or f'"index":{i}' in line for i, line in enumerate(lines))


@pytest.mark.parametrize("value", ["fast", 0, 2000, 1.5])
def test_a_bad_max_concurrency_fails_before_any_request(emulator: BasetenEmulator, value: Any) -> None:
    with pytest.raises(BasetenValidationError):
        make_hook(emulator).predict_batch([{"i": 0}], max_concurrency=value)
    with pytest.raises(BasetenValidationError):
        PredictOperator(task_id="p", model_inputs=[{"i": 0}], max_concurrency=value)
    assert not _predicts(emulator)


def test_predict_operator_accepts_auto(emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_predict_capacity(4)
    emulator.set_predict_latency(0.01)
    with DAG("t_auto", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        PredictOperator(task_id="p", model_inputs=[{"i": i} for i in range(200)], max_concurrency="auto")
    run = run_dag(dag)
    assert task_states(run) == {"p": "success"}
    ti = run.get_task_instance("p")
    outs = ti.xcom_pull(task_ids="p")
    assert [o["output"]["i"] for o in outs] == list(range(200))
    assert emulator.counters()["capacity"]["peak_inflight"] == 4


def test_the_emulator_capacity_can_be_set_by_config_and_admin(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(predict_capacity=3)
    assert emu.core.predict_capacity == 3
    with pytest.raises(ValueError, match="predict_capacity"):
        emu.set_predict_capacity(0)
    emu.set_predict_capacity(None)
    assert emu.core.predict_capacity is None
    emu.reset()
    assert emu.core.predict_capacity == 3  # back to the start config


def test_an_outage_still_stops_an_auto_batch_early_keeping_what_succeeded(
    emulator: BasetenEmulator, tmp_path: Path
) -> None:
    from airflow_provider_baseten.emulator.config import FaultRule
    from airflow_provider_baseten.exceptions import BasetenServerError

    out = tmp_path / "out.jsonl"
    hook = make_hook(emulator)
    inputs = [{"i": i} for i in range(1000)]
    first = hook.predict_batch(inputs, max_concurrency="auto", output_path=out)
    assert first.succeeded == 1000
    _keep_first(out, 100)  # as if the run had stopped after 100 results (resume is for the same inputs)
    emulator.set_faults([FaultRule("503", rate=1.0, endpoints=["production_predict"])])
    before = len(_predicts(emulator))
    with pytest.raises(BasetenServerError, match="Batch stopped") as info:
        hook.predict_batch(inputs, max_concurrency="auto", output_path=out, resume=True)
    sent = len(_predicts(emulator)) - before
    assert "rerun with resume=True" in str(info.value)
    assert sent < 600  # the circuit breaker stopped it: not 900 items x 4 attempts x 3 rounds
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["index"] for line in lines if "output" in line] == list(range(100))  # what succeeded is kept
    assert all("error" in line for line in lines if line["index"] >= 100)


def _batch_operators() -> list[type[PredictOperator]]:
    """Every batch operator: ``PredictOperator`` and its subclasses (they take its batch options)."""
    import airflow_provider_baseten.operators.openai  # noqa: F401  (registers the subclasses)

    found, todo = [], [PredictOperator]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return [c for c in found if not c.__name__.startswith("_")]


def test_every_batch_operator_accepts_auto(emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """``max_concurrency="auto"`` is accepted by each batch operator and runs its batch (counted on the server)."""
    from airflow_provider_baseten.operators.openai import ChatCompletionsOperator, EmbeddingsOperator, RunChainOperator

    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    batches: dict[type[PredictOperator], dict[str, Any]] = {
        PredictOperator: {"model_inputs": [{"i": i} for i in range(20)]},
        EmbeddingsOperator: {"texts": [f"t{i}" for i in range(20)], "batch_size": 4, "environment": "production"},
        ChatCompletionsOperator: {
            "requests": [{"messages": [{"role": "user", "content": "a"}]}] * 3,
            "model": "l",
            "model_apis": True,
        },
        RunChainOperator: {"chain_inputs": [{"n": i} for i in range(5)], "chain_id": "chain123"},
    }
    assert set(batches) == set(_batch_operators())  # a new batch operator must be added here
    for cls, args in batches.items():
        cls(task_id=cls.__name__, max_concurrency="auto", **args).execute(context())
    served = emulator.counters()["requests"]
    assert served["production_predict"] == 20 and served["environment_sync"] == 5  # 20 texts, 4 per request
    assert served["chain_production_run_remote"] == 5 and served["model_apis_request"] == 3
