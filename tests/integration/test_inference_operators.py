"""Inference operators in real Airflow (``dag.test()``) against the emulator over HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_baseten.exceptions import BasetenBatchError, BasetenRemoteStateError, BasetenValidationError
from airflow_provider_baseten.operators.inference import (
    AsyncPredictOperator,
    PredictOperator,
    WakeDeploymentOperator,
)
from airflow_provider_baseten.sensors.inference import AsyncPredictSensor
from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger
from tests.dag_support import StateStore, context, run_dag, task_states

START = datetime(2026, 1, 1)


@pytest.fixture
def conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point ``baseten_default`` at the emulator (direct gateway)."""
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    return emulator


def _xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    ti = dag_run.get_task_instance(task_id, map_index=map_index)
    return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=map_index if map_index >= 0 else None)


def test_single_predict_returns_model_output(conn: Any) -> None:
    with DAG("t_single", schedule=None, start_date=START) as dag:
        PredictOperator(task_id="p", model_input={"text": "hi"})
    run = run_dag(dag)
    assert task_states(run) == {"p": "success"}
    out = _xcom(run, "p")
    assert out["output"] == {"text": "hi"} and out["upper"] == "HI"
    assert _xcom(run, "p", "baseten_model_url").endswith(f"/models/{conn.model_id}/overview")


def test_batch_keeps_input_order(conn: Any) -> None:
    inputs = [{"i": i} for i in range(300)]
    with DAG("t_batch", schedule=None, start_date=START) as dag:
        PredictOperator(task_id="p", model_inputs=inputs, max_concurrency=16)
    run = run_dag(dag)
    outs = _xcom(run, "p")
    assert [o["output"]["i"] for o in outs] == list(range(300))
    assert conn.counters()["requests"]["production_predict"] == 300


def test_on_error_fail_names_failed_indices_after_attempting_all(conn: Any, tmp_path: Path) -> None:
    inputs = [{"i": i, "fail": i in (3, 7), "status": 400} for i in range(20)]
    out = tmp_path / "out.jsonl"
    op = PredictOperator(task_id="p", model_inputs=inputs, max_concurrency=4, output_path=str(out))
    with pytest.raises(BasetenBatchError) as info:
        op.execute(context())
    assert "2 of 20" in str(info.value) and "3:" in str(info.value) and "7:" in str(info.value)
    assert conn.counters()["requests"]["production_predict"] == 20  # every item attempted
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(20))
    assert {line["index"] for line in lines if "error" in line} == {3, 7}
    assert all(line["output"]["output"]["i"] == line["index"] for line in lines if "output" in line)


def test_on_error_record_keeps_partial_results(conn: Any) -> None:
    inputs = [{"i": i, "fail": i == 1, "status": 422} for i in range(4)]
    with DAG("t_record", schedule=None, start_date=START) as dag:
        PredictOperator(task_id="p", model_inputs=inputs, on_error="record", max_error_rate=0.25)  # 1 of 4 may fail
    run = run_dag(dag)
    outs = _xcom(run, "p")
    assert outs[1]["index"] == 1 and "422" in outs[1]["error"]
    assert [outs[i]["output"]["i"] for i in (0, 2, 3)] == [0, 2, 3]


def test_jsonl_in_jsonl_out_and_resume(conn: Any, tmp_path: Path) -> None:
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(50)))
    with DAG("t_jsonl", schedule=None, start_date=START) as dag:
        PredictOperator(task_id="p", model_inputs=str(src), output_path=str(dst), max_concurrency=8)
    run = run_dag(dag)
    summary = _xcom(run, "p")
    assert summary["succeeded"] == 50 and summary["failed"] == 0
    lines = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [line["output"]["output"]["i"] for line in lines] == list(range(50))
    # Resume: drop the last 10 lines as if the run had died, then rerun: only those 10 are sent.
    dst.write_text("".join(json.dumps(line) + "\n" for line in lines[:40]))
    conn.reset()
    result = PredictOperator(
        task_id="p2", model_inputs=str(src), output_path=str(dst), resume=True, max_concurrency=8
    ).execute(context())
    assert result["skipped"] == 40 and result["succeeded"] == 10
    assert conn.counters()["requests"]["production_predict"] == 10
    again = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [line["index"] for line in again] == list(range(50))


def test_bad_jsonl_line_fails_before_any_request(conn: Any, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"i": 0}\n{"i": 1\n{"i": 2}\n')
    with pytest.raises(BasetenValidationError, match="line 2"):
        PredictOperator(task_id="p", model_inputs=str(src)).execute(context())
    assert sum(conn.counters()["requests"].values()) == 0


def test_dynamic_task_mapping_expand(conn: Any) -> None:
    with DAG("t_expand", schedule=None, start_date=START) as dag:
        PredictOperator.partial(task_id="p").expand(model_input=[{"text": "a"}, {"text": "b"}, {"text": "c"}])
    run = run_dag(dag)
    states = task_states(run)
    assert states == {"p[0]": "success", "p[1]": "success", "p[2]": "success"}
    assert [_xcom(run, "p", map_index=i)["upper"] for i in range(3)] == ["A", "B", "C"]


def test_inputs_from_xcomarg(conn: Any) -> None:
    with DAG("t_xcomarg", schedule=None, start_date=START) as dag:

        @task
        def make() -> list[dict[str, int]]:
            return [{"i": i} for i in range(5)]

        PredictOperator(task_id="p", model_inputs=make())
    run = run_dag(dag)
    assert [o["output"]["i"] for o in _xcom(run, "p")] == list(range(5))


@pytest.mark.parametrize("deferrable", [False, True], ids=["inline", "deferrable"])
def test_async_submit_and_wait(conn: Any, deferrable: bool) -> None:
    with DAG(f"t_async_{deferrable}", schedule=None, start_date=START) as dag:
        submit = AsyncPredictOperator(
            task_id="submit",
            model_inputs=[{"i": i} for i in range(3)],
            priority=1,
            wait_for_completion=True,
            deferrable=deferrable,
            poke_interval=0.2,
        )
        AsyncPredictSensor(
            task_id="sense", request_ids=submit.output, deferrable=deferrable, poke_interval=0.2, timeout=60
        )
    run = run_dag(dag)
    assert task_states(run) == {"submit": "success", "sense": "success"}
    ids = _xcom(run, "submit", "request_ids")
    assert len(ids) == 3 and conn.counters()["submissions"]["async_predict"] == 3


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_sensor_fails_with_baseten_error_codes(conn: Any, deferrable: bool) -> None:
    hook = conn.hook()
    ok = hook.async_predict({"x": 1}).request_id
    bad = hook.async_predict({"fail": True}).request_id
    with DAG(f"t_sense_fail_{deferrable}", schedule=None, start_date=START) as dag:
        AsyncPredictSensor(task_id="sense", request_ids=[ok, bad], deferrable=deferrable, poke_interval=0.2, timeout=60)
    run = run_dag(dag)
    assert task_states(run) == {"sense": "failed"}
    # The same verdict, read directly from the trigger, names the request and Baseten's code.
    event = asyncio.run(_trigger([ok, bad], conn).wait())
    assert event["status"] == "failed"
    assert bad in event["message"] and "MODEL_PREDICT_ERROR" in event["message"] and ok not in event["errors"]


def test_canceled_and_expired_requests_fail(emulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_baseten.emulator import Durations

    emu = emulator_factory(time_scale=0, durations=Durations(async_queued=100.0))
    for key, value in emu.connection_env().items():
        monkeypatch.setenv(key, value)
    hook = emu.hook()
    canceled = hook.async_predict({"x": 1}).request_id
    assert hook.cancel_async_request(canceled).canceled
    expiring = hook.async_predict({"x": 2}, max_time_in_queue_seconds=10).request_id
    emu.advance(60)  # past its 10 s queue limit while the queue needs 100 s
    event = asyncio.run(_trigger([canceled, expiring], emu).wait())
    assert event["status"] == "failed"
    assert f"{canceled} CANCELED" in event["message"] and f"{expiring} EXPIRED" in event["message"]
    assert event["states"] == {canceled: "CANCELED", expiring: "EXPIRED"}


def test_trigger_serialize_round_trips(conn: Any) -> None:
    trig = _trigger(["r1", "r2"], conn, submitted_ids=["r1"], cancel_on_kill=True)
    path, kwargs = trig.serialize()
    json.dumps(kwargs)  # JSON primitives only
    assert path == "airflow_provider_baseten.triggers.baseten.AsyncPredictTrigger"
    again = AsyncPredictTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)


def test_trigger_on_kill_cancels_only_its_own_queued_requests(conn: Any) -> None:
    conn.set_time_scale(0)
    hook = conn.hook()
    mine = [hook.async_predict({"i": i}).request_id for i in range(2)]
    other = hook.async_predict({"i": 99}).request_id
    trig = _trigger([*mine, other], conn, submitted_ids=mine, cancel_on_kill=True)
    asyncio.run(trig.on_kill())
    assert conn.counters()["cancellations"]["async_request"] == 2
    states = {r: hook.get_async_request(r).status for r in [*mine, other]}
    assert states == {mine[0]: "CANCELED", mine[1]: "CANCELED", other: "QUEUED"}
    # Without cancel_on_kill nothing is touched.
    asyncio.run(_trigger([other], conn, submitted_ids=[other], cancel_on_kill=False).on_kill())
    assert hook.get_async_request(other).status == "QUEUED"


def test_operator_on_kill_cancels_only_what_it_submitted(conn: Any) -> None:
    conn.set_time_scale(0)
    hook = conn.hook()
    other = hook.async_predict({"i": 99}).request_id
    op = AsyncPredictOperator(task_id="a", model_inputs=[{"i": 1}, {"i": 2}], wait_for_completion=False)
    ids = op.execute(context())
    op.on_kill()
    assert {hook.get_async_request(r).status for r in ids} == {"CANCELED"}
    assert hook.get_async_request(other).status == "QUEUED"


def test_resume_on_retry_submits_exactly_once(conn: Any) -> None:
    pytest.importorskip("airflow.sdk.bases.resumablejobmixin")
    conn.set_time_scale(0)  # the requests stay QUEUED across the "crash"
    store = StateStore()
    first = AsyncPredictOperator(task_id="a", model_inputs=[{"i": 1}, {"i": 2}], wait_for_completion=False)
    ids = first.execute(context(task_state_store=store))
    retry = AsyncPredictOperator(task_id="a", model_inputs=[{"i": 1}, {"i": 2}], wait_for_completion=False)
    again = retry.execute(context(task_state_store=store))
    assert again == ids
    assert conn.counters()["submissions"]["async_predict"] == 2  # two inputs, submitted once


def test_async_options_validated_before_sending(conn: Any) -> None:
    for kwargs, field in (
        ({"priority": 3}, "priority"),
        ({"max_time_in_queue_seconds": 5}, "max_time_in_queue_seconds"),
        ({"inference_retry_config": {"max_attempts": 11}}, "inference_retry_config.max_attempts"),
        ({"model_inputs": [{"ok": 1}, {"big": "x" * 300_000}]}, "model_inputs"),
    ):
        kwargs.setdefault("model_inputs", [{"i": 1}])
        op = AsyncPredictOperator(task_id="a", **kwargs)
        with pytest.raises(BasetenValidationError) as info:
            op.execute(context())
        assert info.value.field == field
    assert conn.counters()["submissions"].get("async_predict", 0) == 0


def test_wake_operator_waits_for_active(conn: Any) -> None:
    model = conn.model_id
    prod = conn.hook().get_deployment("production")
    conn.scale_to_zero(model, prod.id)
    with DAG("t_wake", schedule=None, start_date=START) as dag:
        WakeDeploymentOperator(task_id="w", poke_interval=0.2, timeout=60)
    run = run_dag(dag)
    assert task_states(run) == {"w": "success"}
    assert _xcom(run, "w") == prod.id
    assert conn.hook().get_deployment(prod.id).status == "ACTIVE"


def test_failed_wait_raises_remote_state_error(conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    op = AsyncPredictOperator(task_id="a", model_input={"fail": True}, wait_for_completion=True, poke_interval=0.2)
    with caplog.at_level(logging.INFO), pytest.raises(BasetenRemoteStateError, match="MODEL_PREDICT_ERROR"):
        op.execute(context())


def _trigger(ids: list[str], emulator: Any, **kwargs: Any) -> AsyncPredictTrigger:
    return AsyncPredictTrigger(request_ids=ids, conn_id="baseten_default", poll_interval=0.1, end_time=None, **kwargs)
