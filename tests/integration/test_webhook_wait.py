"""Waits that listen (issue 27): AsyncPredictOperator / AsyncPredictSensor wait on the receiver's store.

The emulator delivers each async result to a small receiver on 127.0.0.1 that stores it with the provider's
``ResultStore``; the status calls are counted on the emulator. Its clock is frozen: a test submits, then moves
the clock so the requests finish, then waits for the emulator's delivery counter (an event, not luck).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.exceptions import BasetenBatchError, BasetenValidationError
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.sensors.inference import AsyncPredictSensor
from airflow_provider_baseten.triggers.baseten import wait_inline
from airflow_provider_baseten.triggers.webhooks import WebhookResultTrigger
from airflow_provider_baseten.webhooks.store import ResultStore
from tests.dag_support import FakeTI, StateStore

N = 5


class Receiver:
    """Stores every delivery in a ResultStore; answers 500 to the request ids in ``refuse`` (a receiver that
    is down for both of Baseten's attempts)."""

    def __init__(self, root: Path) -> None:
        self.store = ResultStore(root)
        self.refuse: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = json.loads(body)["request_id"] not in receiver.refuse
                if ok:
                    receiver.store.put(body)
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/baseten-webhooks/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path / "store")
    yield r
    r.close()


@pytest.fixture
def conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(0)
    return emulator


def _finish(emu: Any, n: int) -> None:
    """Move the clock past every request's end, then until the emulator has finished ``n`` deliveries
    (delivered, or failed after both attempts: its retry waits 2 s on the frozen clock, so the clock moves on)."""
    emu.advance(60)
    ends = time.monotonic() + 10
    while (c := emu.counters()["webhooks"]).get("delivered", 0) + c.get("failed", 0) < n:
        assert time.monotonic() < ends, c
        emu.advance(0.5)
        time.sleep(0.01)


def _status_calls(emu: Any) -> int:
    return int(emu.counters()["requests"].get("get_async_request", 0))


def _deferred(op: AsyncPredictOperator, ctx: dict[str, Any]) -> Any:
    """Run ``execute`` up to its deferral; return the trigger it deferred with."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    return deferred.value.trigger


def _op(receiver: Receiver, tmp_path: Path, **kw: Any) -> AsyncPredictOperator:
    return AsyncPredictOperator(
        task_id="submit",
        model_inputs=[{"i": i} for i in range(N)],
        webhook_endpoint=receiver.url,
        wait_for_completion=True,
        deferrable=True,
        results_path=str(tmp_path / "store"),
        output_path=str(tmp_path / "out.jsonl"),
        poke_interval=0.01,
        **kw,
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_all_stored_are_gathered_in_input_order_with_no_status_call(
    conn: Any, receiver: Receiver, tmp_path: Path
) -> None:
    op = _op(receiver, tmp_path)
    ctx = {"ti": FakeTI(), "task_state_store": StateStore()}
    trigger = _deferred(op, ctx)
    assert isinstance(trigger, WebhookResultTrigger)
    _finish(conn, N)
    summary = op.execute_complete(ctx, wait_inline(trigger))
    assert summary["succeeded"] == N and summary["failed"] == 0
    rows = _lines(tmp_path / "out.jsonl")
    assert [r["index"] for r in rows] == list(range(N))
    assert [r["output"]["output"] for r in rows] == [{"i": i} for i in range(N)]  # each in its input's place
    assert _status_calls(conn) == 0  # listened: Baseten's status API was never asked


def test_a_lost_result_is_asked_about_after_the_grace_and_reported_by_index(
    conn: Any, receiver: Receiver, tmp_path: Path
) -> None:
    op = _op(receiver, tmp_path, webhook_grace=0)
    ctx = {"ti": FakeTI(), "task_state_store": StateStore()}
    trigger = _deferred(op, ctx)
    ids = ctx["ti"].xcoms["request_ids"]
    receiver.refuse.add(ids[2])  # both deliveries of input 2 fail: Baseten marks it WEBHOOK_FAILED
    _finish(conn, N)
    before = _status_calls(conn)  # (grace 0: the check before deferring asked about all five, then queued)
    event = wait_inline(trigger)
    assert event["status"] == "failed" and "index 2" in event["message"] and "WEBHOOK_FAILED" in event["message"]
    assert _status_calls(conn) - before == 1  # the missing one only, not the four stored
    with pytest.raises(BasetenBatchError) as failed:
        op.execute_complete(ctx, event)
    assert list(failed.value.failures) == [2] and "WEBHOOK_FAILED" in failed.value.failures[2]
    rows = _lines(tmp_path / "out.jsonl")  # the others are kept, in order
    assert [r["index"] for r in rows] == list(range(N)) and "error" in rows[2] and "output" in rows[3]


def test_a_failed_request_is_a_per_item_error_within_the_budget(conn: Any, receiver: Receiver, tmp_path: Path) -> None:
    op = AsyncPredictOperator(
        task_id="submit",
        model_inputs=[{"i": 0}, {"i": 1, "fail": True}, {"i": 2}],
        webhook_endpoint=receiver.url,
        wait_for_completion=True,
        deferrable=True,
        results_path=str(tmp_path / "store"),
        output_path=str(tmp_path / "out.jsonl"),
        on_error="record",
        max_error_rate=0.5,
        poke_interval=0.01,
    )
    ctx = {"ti": FakeTI(), "task_state_store": StateStore()}
    trigger = _deferred(op, ctx)
    _finish(conn, 3)
    summary = op.execute_complete(ctx, wait_inline(trigger))
    assert (summary["succeeded"], summary["failed"], summary["failed_indices"]) == (2, 1, [1])
    assert "MODEL_PREDICT_ERROR" in _lines(tmp_path / "out.jsonl")[1]["error"]  # the webhook's errors
    assert _status_calls(conn) == 0


def test_resume_after_a_kill_keeps_what_was_gathered(
    conn: Any, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = _op(receiver, tmp_path, resume=True)
    ctx = {"ti": FakeTI(), "task_state_store": StateStore()}
    trigger = _deferred(op, ctx)
    _finish(conn, N)
    event = wait_inline(trigger)
    reads: list[str] = []
    real_get = ResultStore.get

    def dies_at_the_fourth(self: ResultStore, rid: str) -> Any:
        reads.append(rid)
        if len(reads) == 4:
            raise KeyboardInterrupt  # the worker is killed mid-gather
        return real_get(self, rid)

    monkeypatch.setattr(ResultStore, "get", dies_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        op.execute_complete(ctx, event)
    monkeypatch.setattr(ResultStore, "get", lambda self, rid: reads.append(rid) or real_get(self, rid))
    reads.clear()
    summary = op.execute_complete(ctx, event)
    assert summary["skipped"] == 3 and summary["succeeded"] == 2  # the three gathered before the kill are kept
    assert len(reads) == 2
    assert [r["index"] for r in _lines(tmp_path / "out.jsonl")] == list(range(N))


def test_sensor_listens_to_the_store(conn: Any, receiver: Receiver, tmp_path: Path) -> None:
    hook = conn.hook()
    ids = [hook.async_predict({"i": i}, webhook_endpoint=receiver.url).request_id for i in range(3)]
    _finish(conn, 3)
    sensor = AsyncPredictSensor(
        task_id="wait",
        request_ids=ids,
        results_path=str(tmp_path / "store"),
        output_path=str(tmp_path / "sensed.jsonl"),
        deferrable=False,
        poke_interval=0.01,
    )
    summary = sensor.execute({"ti": FakeTI()})
    assert summary["succeeded"] == 3
    assert [r["output"]["output"] for r in _lines(tmp_path / "sensed.jsonl")] == [{"i": i} for i in range(3)]
    assert _status_calls(conn) == 0


def test_webhook_url_from_a_connection_never_carries_its_secret(conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "whsec-not-for-urls"
    monkeypatch.setenv(
        "AIRFLOW_CONN_RECEIVER",
        json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": 8080, "schema": "http", "login": "u", "password": secret}
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_PLAIN_HTTP", json.dumps({"conn_type": "http", "host": "airflow.example.com", "schema": "http"})
    )
    op = AsyncPredictOperator(task_id="a", model_input={"i": 1}, webhook_conn_id="receiver")
    ctx = {"ti": FakeTI(), "task_state_store": StateStore()}
    op.execute(ctx)
    assert op.webhook_endpoint == "http://127.0.0.1:8080/baseten-webhooks/"
    sent = [r.webhook_endpoint for r in conn.state.async_requests.values()]
    assert sent == ["http://127.0.0.1:8080/baseten-webhooks/"]  # what Baseten was given
    assert secret not in json.dumps(conn.requests()) and secret not in json.dumps(ctx["ti"].xcoms)
    before = conn.counters()["submissions"].get("async_predict", 0)
    with pytest.raises(BasetenValidationError, match="localhost"):  # Baseten requires HTTPS beyond loopback
        AsyncPredictOperator(task_id="b", model_input={"i": 1}, webhook_conn_id="plain_http").execute(ctx)
    assert conn.counters()["submissions"].get("async_predict", 0) == before  # refused before any request


def test_bad_webhook_wait_arguments_are_refused_at_parse_time() -> None:
    with pytest.raises(ValueError, match="results_path"):
        AsyncPredictOperator(task_id="a", model_input={}, wait_for_completion=True, output_path="/tmp/o.jsonl")
    with pytest.raises(ValueError, match="wait_for_completion"):
        AsyncPredictOperator(task_id="b", model_input={}, results_path="/tmp/store", output_path="/tmp/o.jsonl")
    with pytest.raises(ValueError, match="not both"):
        AsyncPredictOperator(task_id="c", model_input={}, webhook_endpoint="https://x/", webhook_conn_id="r")
    with pytest.raises(BasetenValidationError):
        AsyncPredictOperator(
            task_id="d", model_input={}, wait_for_completion=True, results_path="/s", output_path="/o", webhook_grace=-1
        )
    # Listening without gathering would let a wait whose requests all failed succeed: refused.
    with pytest.raises(ValueError, match="output_path"):
        AsyncPredictOperator(task_id="e", model_input={}, wait_for_completion=True, results_path="/s")
    with pytest.raises(ValueError, match="output_path"):
        AsyncPredictSensor(task_id="f", request_ids=["r"], results_path="/s")
